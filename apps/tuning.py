"""Size-tuned compilation of one C/C++ unit for a build: the tuner (contract B,
`ml_tuner.api.tune_unit`) picks clang's -Oz settings for it, and the unit's real `clang -Oz`
object comes along (compiled from the unit's IR, byte-identical to `clang -Oz` of the source), so
the build can report both and never ship a tuned object or program larger than -Oz.

Both objects are stored by the unit's IR digest, the target, the LLVM version and the flags that
still matter after preprocessing: an unchanged unit is never tuned again, and a rebuild with a
warm store only runs clang's front end and copies two objects (the tuner's own cache would
recompile the unit with its kept settings).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import toolchains
from apps.sizes import SectionSizes, section_sizes
from fleetforge.paths import CACHE_DIR
from fleetforge.tools import run_tool

DEFAULT_STORE = CACHE_DIR / "apps" / "tuned"
# Bump when what a stored result means changes (codegen flags, selection rule, the tuner's API).
STORE_FORMAT = "2"
CPLUSPLUS_SUFFIXES = (".cc", ".cpp", ".cxx", ".C")
# Sections per function and per object, so the link's --gc-sections drops what nothing uses.
SECTION_FLAGS = ("-ffunction-sections", "-fdata-sections")
# The IR clang -Oz hands to its optimizer: what the store's key digests, and the -Oz baseline's
# input (clang -Oz of this IR is clang -Oz of the source).
IR_FLAGS = ("-Oz", "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-S")
CODEGEN_FLAG_PREFIXES = ("-f", "-m", "-g")
# The tuner runs one module at a time in this process (torch is not shared across threads).
_TUNER_LOCK = threading.Lock()


@dataclass(frozen=True)
class UnitResult:
    """One unit's outcome. `kept` says which object `out` holds: 'tuned', or 'Oz' when the tuned
    one was not smaller (the floor)."""

    source: str
    ir_digest: str
    settings: tuple[str, ...]  # the clang flags of the tuner's kept -Oz settings
    kept: str
    oz: SectionSizes
    tuned: SectionSizes
    cached: bool
    seconds: float

    def as_json(self) -> dict:
        return {"source": self.source, "ir_digest": self.ir_digest, "settings": list(self.settings),
                "kept": self.kept, "oz": self.oz.as_dict(), "tuned": self.tuned.as_dict(),
                "cached": self.cached, "seconds": round(self.seconds, 3)}


def is_cplusplus(source: Path) -> bool:
    return source.suffix in CPLUSPLUS_SUFFIXES


def compile_ir(source: Path, target: toolchains.Target, cflags: Sequence[str], out: Path) -> None:
    """The unit's IR as `clang -Oz` produces it before optimizing."""
    clang = target.clang_args(cplusplus=is_cplusplus(source))
    run_tool([*clang, *IR_FLAGS, *cflags, str(source), "-o", str(out)],
             debian_package=toolchains.llvm().packages[clang[0]])


def ir_digest(ll: Path) -> str:
    """Digest of the IR's content: the module's name and source file name are left out, so the
    same unit compiled in another folder (a clean build, another checkout) hits the store."""
    digest = hashlib.sha256()
    with ll.open("rb") as handle:
        for line in handle:
            if not line.startswith((b"; ModuleID = ", b"source_filename = ")):
                digest.update(line)
    return digest.hexdigest()


def compile_oz(ir: Path, target: toolchains.Target, cflags: Sequence[str], out: Path) -> None:
    """The -Oz baseline object: clang's whole -Oz pipeline and code generator on the unit's IR."""
    clang = target.clang_args()
    run_tool([*clang, "-Oz", "-Wno-unused-command-line-argument", *SECTION_FLAGS, *cflags, "-c",
              str(ir), "-o", str(out)], debian_package=toolchains.llvm().packages[clang[0]])


class TunedStore:
    """Tuned and -Oz objects and their result, one folder per key, written atomically (a folder
    renamed into place), so concurrent builds and interrupted ones never see half a result."""

    def __init__(self, root: Path = DEFAULT_STORE) -> None:
        self.root = Path(root)

    def key(self, digest: str, target: toolchains.Target, cflags: Sequence[str],
            budget: int) -> str:
        """The IR digest already holds what preprocessor flags (-I, -D, -std) did; of the
        flags only those that can still change code generation (-f, -m, -g) join the key, so a
        unit built in another folder (other -I paths) is the same entry."""
        codegen_flags = [f for f in cflags if f.startswith(CODEGEN_FLAG_PREFIXES)]
        raw = json.dumps([STORE_FORMAT, digest, target.name, target.clang_args(),
                          toolchains.llvm().version, codegen_flags, budget])
        return hashlib.sha256(raw.encode()).hexdigest()

    def folder(self, key: str) -> Path:
        return self.root / key[:2] / key

    def load(self, key: str) -> dict | None:
        try:
            return json.loads((self.folder(key) / "result.json").read_text())
        except (OSError, ValueError):
            return None

    def save(self, key: str, result: dict, tuned: Path, oz: Path) -> None:
        self._save(key, result, {"tuned.o": tuned, "oz.o": oz})

    def save_program(self, key: str, result: dict, program: Path) -> None:
        self._save(key, result, {"program": program})

    def verdict(self, programs: Sequence[Path], selftest: Sequence[str]) -> tuple[str, bool | None]:
        """Whether two programs' self-tests agreed (None: never compared), and the key to
        record it under: by content, so a clean rebuild does not run them again."""
        digest = hashlib.sha256(json.dumps(list(selftest)).encode())
        for program in programs:
            digest.update(hashlib.sha256(program.read_bytes()).digest())
        key = digest.hexdigest()
        stored = self.load(key)
        return key, stored["same"] if stored is not None else None

    def save_verdict(self, key: str, same: bool) -> None:
        self._save(key, {"same": same}, {})

    def _save(self, key: str, result: dict, files: dict[str, Path]) -> None:
        final = self.folder(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=final.parent))
        for name, path in files.items():
            shutil.copyfile(path, staging / name)
        (staging / "result.json").write_text(json.dumps(result))
        try:
            os.rename(staging, final)
        except OSError:  # another build stored the same key first: theirs is as good
            shutil.rmtree(staging, ignore_errors=True)


def tune_object(source: Path, target: toolchains.Target, cflags: Sequence[str], budget: int,
                out: Path) -> tuple[str, ...]:
    """The tuner's object for `source` (never larger than its clang -Oz); its settings' flags."""
    from ml_tuner.api import MeasureCache, tune_unit as tuner

    with _TUNER_LOCK, MeasureCache() as cache:
        result = tuner(source, target.name, cflags=[*cflags, *SECTION_FLAGS], out=out,
                       budget=budget, cache=cache)
    return tuple(result.flags)


def tune_unit(source: Path, target: toolchains.Target, *, cflags: Sequence[str] = (),
              out: Path, oz_out: Path, budget: int = 45,
              store: TunedStore | None = None) -> UnitResult:
    """Compile `source` for `target`: the smaller of tuned and -Oz to `out`, -Oz to `oz_out`."""
    started = time.perf_counter()
    store = store or TunedStore()
    with tempfile.TemporaryDirectory(prefix="fleetforge-unit-") as scratch_dir:
        scratch = Path(scratch_dir)
        ll = scratch / (source.stem + ".ll")
        compile_ir(source, target, cflags, ll)
        digest = ir_digest(ll)
        key = store.key(digest, target, cflags, budget)
        stored = store.load(key)
        if stored is not None:
            shutil.copyfile(store.folder(key) / "tuned.o", out)
            shutil.copyfile(store.folder(key) / "oz.o", oz_out)
            return UnitResult(str(source), digest, tuple(stored["settings"]), stored["kept"],
                              SectionSizes.from_dict(stored["oz"]),
                              SectionSizes.from_dict(stored["tuned"]), True,
                              time.perf_counter() - started)
        compile_oz(ll, target, cflags, oz_out)
        oz = section_sizes(oz_out)
        candidate = scratch / "tuned.o"
        settings = tune_object(source, target, cflags, budget, candidate)
        tuned = section_sizes(candidate)
        kept = "tuned" if tuned.flash < oz.flash else "Oz"
        shutil.copyfile(candidate if kept == "tuned" else oz_out, out)
        result = UnitResult(str(source), digest, settings, kept, oz, tuned, False,
                            time.perf_counter() - started)
        store.save(key, result.as_json(), out, oz_out)
        return result


def tune_whole_program(sources: Sequence[Path], digests: Sequence[str],
                       target: toolchains.Target, *, cflags: Sequence[str],
                       ldflags: Sequence[str], out: Path, budget: int,
                       selftest: Sequence[str] | None, store: TunedStore | None = None) -> dict:
    """The tuner's whole-program build (its units' IR merged, contract B `tune_program`) into
    `out`, never larger than its own -Oz link; stored by every unit's IR digest (`digests`, as
    tune_unit found them), the link inputs and the flags, so an unchanged program is not tuned
    again. Returns its result."""
    from ml_tuner.api import MeasureCache, args_check, tune_program

    store = store or TunedStore()
    inputs = [hashlib.sha256(Path(f).read_bytes()).hexdigest() if Path(f).is_file() else f
              for f in ldflags]
    key = store.key(json.dumps([list(digests), inputs, list(selftest or ())]), target, cflags,
                    budget)
    stored = store.load(key)
    if stored is not None:
        shutil.copyfile(store.folder(key) / "program", out)
        out.chmod(0o755)
        return {**stored, "cached": True}
    check = args_check(target.name, [list(selftest)], name=out.name) if selftest is not None else None
    with _TUNER_LOCK, MeasureCache() as cache:
        result = tune_program(list(sources), target.name, cflags=[*cflags, *SECTION_FLAGS],
                              ldflags=ldflags, out=out, lto=False, budget=budget, cache=cache,
                              check=check, mode="whole-program")
    outcome = {"settings": list(result.flags), "fell_back": result.fell_back,
               "reason": result.reason, "seconds": round(result.seconds, 3), "cached": False}
    store.save_program(key, outcome, out)
    return outcome
