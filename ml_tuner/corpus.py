"""Build the corpus: Debian source packages per translation unit, plus csmith and llvm-stress IR.

Nothing third-party is committed: sources are fetched from Debian (fleetforge/debian_source.py:
sha256-checked, cached once) and compiled to unoptimized IR here.
"""
from __future__ import annotations

import json
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from fleetforge import debian_source
from fleetforge.errors import UserError
from fleetforge.paths import CACHE_DIR
from fleetforge.progress import step_progress
from fleetforge.tools import ToolFailedError, run_tool
from ml_tuner import llvm
from ml_tuner.measure import Module, count_ir_instructions

PROJECTS_FILE = Path(__file__).parent / "data" / "projects.toml"
CORPUS_DIR = CACHE_DIR / "ml_tuner" / "corpus"
CORPUS_TRIPLE = "aarch64-linux-gnu"
# Keeps one measurement well under a second on a shared machine.
MAX_O0_INSTRUCTIONS = 12000
O0_FLAGS = ("-O0", "-Xclang", "-disable-O0-optnone", "-emit-llvm", "-S", "-w")
# What `clang -Oz` itself hands to the optimizer: unoptimized IR whose functions carry
# optsize/minsize (which -O0 IR lacks, and which changes what default<Oz> does). Kept beside
# each C module as the realistic reference the evaluation also reports.
CLANG_OZ_FLAGS = ("-Oz", "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-S", "-w")


@dataclass(frozen=True)
class Project:
    """One Debian source package and how to compile its translation units."""

    name: str
    version: str
    split: str
    sources: tuple[str, ...]
    include: tuple[str, ...] = ()
    defines: tuple[str, ...] = ()


@dataclass(frozen=True)
class CorpusEntry:
    """One module of the corpus, with the dataset and project it belongs to."""

    dataset: str
    project: str
    split: str
    name: str
    path: Path
    clang_oz_path: Path | None = None  # the same source as `clang -Oz` emits it (see above)

    def module(self) -> Module:
        return Module.from_file(self.path, f"{self.dataset}/{self.project}/{self.name}")


def load_projects(path: Path = PROJECTS_FILE) -> list[Project]:
    """Read the project table; a bad entry is reported with the file and the project name."""
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise UserError(str(error), where=str(path)) from None
    projects = []
    for item in table.get("project", []):
        try:
            projects.append(Project(
                name=item["name"], version=item["version"], split=item["split"],
                sources=tuple(item["sources"]), include=tuple(item.get("include", ())),
                defines=tuple(item.get("defines", ())),
            ))
        except KeyError as missing:
            raise UserError(f"project {item.get('name', '?')}: missing key {missing}",
                            where=str(path)) from None
        if projects[-1].split not in ("train", "test"):
            raise UserError(f"project {item['name']}: split must be train or test",
                            where=str(path))
    return projects


def fetch_source(project: Project) -> Path:
    """The project's upstream tree at its pinned version (fleetforge/debian_source.py downloads
    it once, sha256-verified, into the shared cache); Debian's patches are not applied."""
    package = debian_source.fetch_source(project.name, project.version)
    return debian_source.unpack_source(package, patched=False)


def compile_to_ir(
    source: Path, output: Path, triple: str, include: tuple[Path, ...] = (),
    defines: tuple[str, ...] = (), flags: tuple[str, ...] = O0_FLAGS,
) -> None:
    """Compile one C file to unoptimized, optimizable IR for `triple` (as CompilerGym does)."""
    target = llvm.target_for(triple)
    args: list[str | Path] = [llvm.CLANG, f"--target={triple}", *target.clang_flags, *flags]
    args += [f"-I{d}" for d in include] + [f"-D{d}" for d in defines]
    run_tool([*args, source, "-o", output], debian_package=llvm.CLANG_PACKAGE, timeout=120)


def _keep(path: Path) -> bool:
    """Keep modules with some code that stay cheap to measure."""
    count = count_ir_instructions(path.read_text(errors="replace"))
    return 10 <= count <= MAX_O0_INSTRUCTIONS


def build_project(project: Project, out_dir: Path, max_units: int, workers: int) -> list[CorpusEntry]:
    """Compile up to `max_units` translation units of a project; skip ones that fail."""
    tree = fetch_source(project)
    files: list[Path] = []
    for pattern in project.sources:
        files += sorted(p for p in tree.glob(pattern) if p.is_file())
    includes = tuple(tree / d for d in project.include)
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(source: Path) -> CorpusEntry | None:
        rel = str(source.relative_to(tree))
        name = rel.replace("/", "__").removesuffix(".c")
        output = out_dir / f"{name}.ll"
        if not output.is_file():
            try:
                compile_to_ir(source, output, CORPUS_TRIPLE, includes, project.defines)
            except ToolFailedError:
                return None
        if not _keep(output):
            return None
        reference = out_dir / f"{name}.clang-oz.ll"
        if not reference.is_file():
            compile_to_ir(source, reference, CORPUS_TRIPLE, includes, project.defines,
                          CLANG_OZ_FLAGS)
        return CorpusEntry("debian", project.name, project.split, name, output, reference)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        entries = [e for e in pool.map(one, files) if e is not None]
    # A deterministic subset spread over the project (not just the first files alphabetically).
    if len(entries) > max_units:
        step = len(entries) / max_units
        entries = [entries[int(i * step)] for i in range(max_units)]
    return entries


def build_csmith(out_dir: Path, count: int, test_fraction: float) -> list[CorpusEntry]:
    """Generate csmith programs (seeded, reproducible) and compile them to IR."""
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    n_test = int(count * test_fraction)
    for seed in range(1, count + 1):
        c_file = out_dir / f"csmith_{seed}.c"
        ll_file = c_file.with_suffix(".ll")
        if not ll_file.is_file():
            run_tool(["csmith", "--seed", str(seed), "--max-funcs", "8", "--no-volatiles",
                      "--output", c_file], debian_package="csmith")
            try:
                compile_to_ir(c_file, ll_file, CORPUS_TRIPLE, (Path("/usr/include/csmith"),))
            except ToolFailedError:
                continue
        if _keep(ll_file):
            split = "test" if seed > count - n_test else "train"
            reference = c_file.with_suffix(".clang-oz.ll")
            if not reference.is_file():
                compile_to_ir(c_file, reference, CORPUS_TRIPLE, (Path("/usr/include/csmith"),),
                              (), CLANG_OZ_FLAGS)
            entries.append(CorpusEntry("csmith", "csmith", split, f"csmith_{seed}", ll_file,
                                       reference))
    return entries


def build_llvm_stress(out_dir: Path, count: int, test_fraction: float) -> list[CorpusEntry]:
    """Generate llvm-stress modules (seeded); they are IR already."""
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    n_test = int(count * test_fraction)
    for seed in range(1, count + 1):
        ll_file = out_dir / f"stress_{seed}.ll"
        if not ll_file.is_file():
            run_tool([llvm.LLVM_STRESS, f"-seed={seed}", "-size=400", "-o", ll_file],
                     debian_package=llvm.LLVM_PACKAGE)
            # llvm-stress emits no triple; pin the corpus triple so llc and opt agree.
            text = ll_file.read_text()
            ll_file.write_text(f'target triple = "{CORPUS_TRIPLE}"\n' + text)
        if _keep(ll_file):
            split = "test" if seed > count - n_test else "train"
            entries.append(CorpusEntry("llvm-stress", "llvm-stress", split, f"stress_{seed}",
                                       ll_file))
    return entries


def build_corpus(
    max_units: int = 30, generated: int = 40, workers: int = 2, corpus_dir: Path = CORPUS_DIR,
    projects: list[str] | None = None,
) -> list[CorpusEntry]:
    """Build every dataset and write the manifest the other steps read."""
    chosen = [p for p in load_projects() if projects is None or p.name in projects]
    entries: list[CorpusEntry] = []
    with step_progress() as progress:
        task = progress.add_task("corpus", total=len(chosen) + 2)
        for project in chosen:
            progress.update(task, description=f"corpus: {project.name}")
            entries += build_project(project, corpus_dir / "debian" / project.name, max_units,
                                     workers)
            progress.advance(task)
        progress.update(task, description="corpus: csmith")
        entries += build_csmith(corpus_dir / "csmith", generated, 1 / 3)
        progress.advance(task)
        progress.update(task, description="corpus: llvm-stress")
        entries += build_llvm_stress(corpus_dir / "llvm-stress", generated, 1 / 3)
        progress.advance(task)
    manifest = corpus_dir / "manifest.json"
    manifest.write_text(json.dumps(
        [{**asdict(e), "path": str(e.path),
          "clang_oz_path": str(e.clang_oz_path) if e.clang_oz_path else None} for e in entries],
        indent=1))
    return entries


def load_corpus(corpus_dir: Path = CORPUS_DIR) -> list[CorpusEntry]:
    """Read the manifest written by `build_corpus`."""
    manifest = corpus_dir / "manifest.json"
    if not manifest.is_file():
        raise UserError("no corpus yet: run `fleetforge tune.corpus`", where=str(manifest))
    return [CorpusEntry(**{**item, "path": Path(item["path"]),
                           "clang_oz_path": Path(item["clang_oz_path"])
                           if item.get("clang_oz_path") else None})
            for item in json.loads(manifest.read_text())]


def select(entries: list[CorpusEntry], split: str) -> list[CorpusEntry]:
    """Entries of one split."""
    return [e for e in entries if e.split == split]

