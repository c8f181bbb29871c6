"""The corpus, per target: raw IR (as clang -Oz optimizes it) of Debian projects' units and of
csmith programs, split into training and held-out projects by data/projects.toml.

Nothing third-party is committed: sources are fetched from Debian (fleetforge/debian_source.py:
sha256-checked, cached once) and compiled here.
"""
from __future__ import annotations

import json
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import toolchains
from fleetforge import debian_source
from fleetforge.errors import UserError
from fleetforge.paths import CACHE_DIR
from fleetforge.progress import step_progress
from fleetforge.tools import ToolFailedError, run_tool
from ml_tuner.build import emit_raw_ir
from ml_tuner.graph import count_ir_instructions
from ml_tuner.measure import Subject

PROJECTS_FILE = Path(__file__).parent / "data" / "projects.toml"
CORPUS_DIR = CACHE_DIR / "ml_tuner" / "corpus-v2"
# Every corpus unit is compiled as the bench's baseline build compiles (issue 15's flags).
UNIT_FLAGS = ("-ffunction-sections", "-fdata-sections", "-w")
# Units the tuner must handle within its time bound are up to this size; larger ones only slow
# the training's measurements down.
MAX_INSTRUCTIONS = 20000
MIN_INSTRUCTIONS = 10
CSMITH_INCLUDE = Path("/usr/include/csmith")
CSMITH_ARGS = ("--max-funcs", "8", "--no-volatiles")


@dataclass(frozen=True)
class Project:
    """One Debian source package and how to compile its translation units."""

    name: str
    version: str
    split: str
    sources: tuple[str, ...]
    include: tuple[str, ...] = ()
    defines: tuple[str, ...] = ()
    os_defines: dict[str, tuple[str, ...]] = field(default_factory=dict)  # by target os
    exclude: tuple[str, ...] = ()

    def cflags(self, tree: Path, target: str) -> tuple[str, ...]:
        """-I and -D flags of this project for a target."""
        os_name = toolchains.target(target).os
        defines = (*self.defines, *self.os_defines.get(os_name, ()))
        return (*(f"-I{tree / d}" for d in self.include), *(f"-D{d}" for d in defines))

    def files(self, tree: Path, patterns: tuple[str, ...] | None = None) -> list[Path]:
        found: list[Path] = []
        for pattern in patterns or self.sources:
            found += sorted(p for p in tree.glob(pattern) if p.is_file())
        excluded = {tree / e for e in self.exclude}
        return [f for f in dict.fromkeys(found) if f not in excluded]


@dataclass(frozen=True)
class CorpusEntry:
    """One unit of the corpus: its raw IR for one target and the flags it was compiled with."""

    dataset: str  # "debian" or "csmith"
    project: str
    split: str  # "train" or "test"
    name: str
    target: str
    ir: Path
    cflags: tuple[str, ...]
    source: Path
    instructions: int

    def subject(self) -> Subject:
        return Subject.unit(f"{self.dataset}/{self.project}/{self.name}", self.ir, self.target,
                            self.cflags)


def load_projects(path: Path = PROJECTS_FILE) -> list[Project]:
    """Read the project table; a bad entry is reported with the file and the project name."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UserError(str(error), where=str(path)) from None
    projects = []
    for item in table.get("project", []):
        try:
            project = Project(
                name=item["name"], version=item["version"], split=item["split"],
                sources=tuple(item["sources"]), include=tuple(item.get("include", ())),
                defines=tuple(item.get("defines", ())),
                os_defines={k: tuple(v) for k, v in item.get("os_defines", {}).items()},
                exclude=tuple(item.get("exclude", ())))
        except KeyError as missing:
            raise UserError(f"project {item.get('name', '?')}: missing key {missing}",
                            where=str(path)) from None
        if project.split not in ("train", "test"):
            raise UserError(f"project {project.name}: split must be train or test",
                            where=str(path))
        projects.append(project)
    return projects


def project(name: str) -> Project:
    for candidate in load_projects():
        if candidate.name == name:
            return candidate
    raise UserError(f"no project '{name}'", where=str(PROJECTS_FILE))


def fetch_source(project: Project) -> Path:
    """The project's upstream tree at its pinned version (fleetforge/debian_source.py downloads
    it once, sha256-verified, into the shared cache); Debian's patches are not applied."""
    package = debian_source.fetch_source(project.name, project.version)
    return debian_source.unpack_source(package, patched=False)


def _unit(dataset: str, project_name: str, split: str, source: Path, name: str, target: str,
          cflags: tuple[str, ...], out_dir: Path) -> CorpusEntry | None:
    """Raw IR of one source (made once, then reused); None if it does not compile or is out of
    the size range."""
    ir = out_dir / f"{name}.ll"
    failed = ir.with_suffix(".failed")
    if failed.exists():
        return None
    if not ir.is_file():
        try:
            emit_raw_ir(source, target, cflags, ir)
        except ToolFailedError as error:
            failed.write_text(str(error))
            return None
    count = count_ir_instructions(ir.read_text(encoding="utf-8", errors="replace"))
    if not MIN_INSTRUCTIONS <= count <= MAX_INSTRUCTIONS:
        return None
    return CorpusEntry(dataset, project_name, split, name, target, ir, cflags, source, count)


def build_project(project: Project, target: str, out_dir: Path, max_units: int,
                  workers: int) -> list[CorpusEntry]:
    """Up to `max_units` units of a project (spread over it); units that fail are skipped."""
    tree = fetch_source(project)
    cflags = (*project.cflags(tree, target), *UNIT_FLAGS)
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(source: Path) -> CorpusEntry | None:
        name = str(source.relative_to(tree)).replace("/", "__").removesuffix(".c")
        return _unit("debian", project.name, project.split, source, name, target, cflags,
                     out_dir)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        entries = [e for e in pool.map(one, project.files(tree)) if e is not None]
    return spread(entries, max_units)


def spread(items: list, limit: int) -> list:
    """At most `limit` items evenly spread over the list (deterministic)."""
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def csmith_source(seed: int, folder: Path) -> Path:
    """csmith's program for `seed` (generated once; it prints a checksum of its globals)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"csmith_{seed}.c"
    if not source.is_file():
        partial = source.with_suffix(".part.c")
        run_tool(["csmith", "--seed", str(seed), *CSMITH_ARGS, "--output", partial],
                 debian_package="csmith")
        partial.replace(source)
    return source


CSMITH_FLAGS = (f"-I{CSMITH_INCLUDE}", *UNIT_FLAGS)


def build_csmith(target: str, out_dir: Path, seeds: range, test_seeds: int,
                 workers: int) -> list[CorpusEntry]:
    """csmith programs of `seeds` compiled for target; the last `test_seeds` are held out."""
    sources_dir = CORPUS_DIR / "csmith-src"
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(seed: int) -> CorpusEntry | None:
        split = "test" if seed >= seeds.stop - test_seeds else "train"
        return _unit("csmith", "csmith", split, csmith_source(seed, sources_dir),
                     f"csmith_{seed}", target, CSMITH_FLAGS, out_dir)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [e for e in pool.map(one, seeds) if e is not None]


def manifest_path(target: str, corpus_dir: Path = CORPUS_DIR) -> Path:
    return corpus_dir / target / "manifest.json"


def build_corpus(target: str, max_units: int = 30, generated: int = 60, workers: int = 2,
                 corpus_dir: Path = CORPUS_DIR) -> list[CorpusEntry]:
    """Build every dataset for one target and write the manifest the other steps read."""
    toolchains.target(target).require(with_llvm=True)
    chosen = load_projects()
    entries: list[CorpusEntry] = []
    with step_progress() as progress:
        task = progress.add_task(f"corpus {target}", total=len(chosen) + 1)
        for item in chosen:
            progress.update(task, description=f"corpus {target}: {item.name}")
            entries += build_project(item, target, corpus_dir / target / "debian" / item.name,
                                     max_units, workers)
            progress.advance(task)
        progress.update(task, description=f"corpus {target}: csmith")
        entries += build_csmith(target, corpus_dir / target / "csmith", range(1, generated + 1),
                                generated // 3, workers)
        progress.advance(task)
    manifest = manifest_path(target, corpus_dir)
    manifest.write_text(json.dumps([{**asdict(e), "ir": str(e.ir), "source": str(e.source)}
                                    for e in entries], indent=1))
    return entries


def load_corpus(target: str, corpus_dir: Path = CORPUS_DIR) -> list[CorpusEntry]:
    """Read the manifest written by `build_corpus`."""
    manifest = manifest_path(target, corpus_dir)
    if not manifest.is_file():
        raise UserError(f"no corpus for {target} yet: run `fleetforge tune.corpus --target "
                        f"{target}`", where=str(manifest))
    return [CorpusEntry(**{**item, "ir": Path(item["ir"]), "source": Path(item["source"]),
                           "cflags": tuple(item["cflags"])})
            for item in json.loads(manifest.read_text())]
