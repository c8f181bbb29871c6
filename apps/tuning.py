"""Size-tuned compilation of one C/C++ unit: clang to IR, the tuner's pass list, codegen.

The shape of contract B's `ml_tuner.api.tune_unit` (CONTRACTS.md), over `ml_tuner.tune.tune_file`
and opt until that API lands. Every unit also yields its real `clang -Oz` object, compiled from
the same IR (byte-identical to `clang -Oz` of the source), so the build can report both and never
ship a tuned object or program larger than -Oz. Results are stored by the unit's IR digest, the
target, the LLVM version and the flags: an unchanged unit is never re-tuned, and a warm rebuild
only runs clang's front end and copies two objects.
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
# Bump when what a stored result means changes (codegen flags, selection rule).
STORE_FORMAT = "1"
OZ_PASSES: tuple[str, ...] = ("default<Oz>",)
CPLUSPLUS_SUFFIXES = (".cc", ".cpp", ".cxx", ".C")
# Sections per function and per object, so the link's --gc-sections drops what nothing uses.
SECTION_FLAGS = ("-ffunction-sections", "-fdata-sections")
# The IR clang -Oz hands to its optimizer (functions carry minsize); the tuner optimizes it.
IR_FLAGS = ("-Oz", "-Xclang", "-disable-llvm-passes", "-emit-llvm", "-S")
# Codegen only, with clang's own codegen settings (relocation model, features) for the target.
CODEGEN_FLAGS = ("-Oz", "-Xclang", "-disable-llvm-passes", "-Wno-unused-command-line-argument")
CODEGEN_FLAG_PREFIXES = ("-f", "-m", "-g")
# The tuner runs one module at a time in this process (torch is not shared across threads).
_TUNER_LOCK = threading.Lock()


@dataclass(frozen=True)
class UnitResult:
    """One unit's outcome. `kept` says which object `out` holds: 'tuned', or 'Oz' when the tuned
    one was not smaller (the floor)."""

    source: str
    ir_digest: str
    passes: tuple[str, ...]
    kept: str
    oz: SectionSizes
    tuned: SectionSizes
    cached: bool
    seconds: float

    def as_json(self) -> dict:
        return {"source": self.source, "ir_digest": self.ir_digest, "passes": list(self.passes),
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


def codegen(ir: Path, target: toolchains.Target, cflags: Sequence[str], out: Path, *,
            optimize: bool) -> None:
    """IR -> object. optimize=True runs clang's whole -Oz pipeline (the baseline); False only
    its code generator (for IR the tuner's pass list has already optimized)."""
    flags = ("-Oz", "-Wno-unused-command-line-argument") if optimize else CODEGEN_FLAGS
    clang = target.clang_args()
    run_tool([*clang, *flags, *SECTION_FLAGS, *cflags, "-c", str(ir), "-o", str(out)],
             debian_package=toolchains.llvm().packages[clang[0]])


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
        final = self.folder(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:8]}-", dir=final.parent))
        shutil.copyfile(tuned, staging / "tuned.o")
        shutil.copyfile(oz, staging / "oz.o")
        (staging / "result.json").write_text(json.dumps(result))
        try:
            os.rename(staging, final)
        except OSError:  # another build stored the same key first: theirs is as good
            shutil.rmtree(staging, ignore_errors=True)


def tune_passes(ll: Path, target: toolchains.Target, budget: int) -> tuple[str, ...]:
    """The tuner's pass list for a module (the -Oz floor included in its search)."""
    from ml_tuner.cache import MeasureCache  # torch: only when a unit is really tuned
    from ml_tuner.tune import tune_file

    with _TUNER_LOCK, MeasureCache() as cache:
        return tune_file(ll, target.name, budget=budget, cache=cache).passes


def optimize_with(passes: tuple[str, ...], ll: Path, out: Path) -> None:
    """Run a pass list over a module. The always-inliner goes first: `always_inline` is a
    contract a pass list must not drop (issue 15: some tuned sequences did)."""
    llvm = toolchains.llvm()
    pipeline = ",".join(("always-inline", *passes))
    run_tool([llvm.opt, f"-passes={pipeline}", str(ll), "-o", str(out)],
             debian_package=llvm.packages[llvm.opt])


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
            return UnitResult(str(source), digest, tuple(stored["passes"]), stored["kept"],
                              SectionSizes.from_dict(stored["oz"]),
                              SectionSizes.from_dict(stored["tuned"]), True,
                              time.perf_counter() - started)
        codegen(ll, target, cflags, oz_out, optimize=True)
        oz = section_sizes(oz_out)
        passes = tune_passes(ll, target, budget)
        tuned, kept = oz, "Oz"
        if passes != OZ_PASSES:
            optimized = scratch / "tuned.bc"
            optimize_with(passes, ll, optimized)
            candidate = scratch / "tuned.o"
            codegen(optimized, target, cflags, candidate, optimize=False)
            tuned = section_sizes(candidate)
            if tuned.flash < oz.flash:
                shutil.copyfile(candidate, out)
                kept = "tuned"
        if kept == "Oz":
            shutil.copyfile(oz_out, out)
        result = UnitResult(str(source), digest, passes, kept, oz, tuned, False,
                            time.perf_counter() - started)
        store.save(key, result.as_json(), out, oz_out)
        return result
