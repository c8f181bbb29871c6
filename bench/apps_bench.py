"""Apps: flash of each binary at clang -Oz vs tuned, the image total, and rebuild cost.

    python bench/apps_bench.py [--budget 45] [--only NAME,...] [--json]

Builds, with the shipped SCons path (apps/build.py), the example apps (the test app of
tests/apps and DiaSpec's mobile_robot C example) and real programs from Debian sources
(bench/apps_programs.toml): plain `clang -Oz` (-ffunction-sections -fdata-sections,
--gc-sections: the baseline users run) and tuned, in the same run. Per binary: flash (text +
rodata + data) of -Oz, of the tuned units linked and of the tuner's whole program, what ships
(never larger than -Oz), and whether a tuned build's self-test output differed from the -Oz
one's under qemu-user / the MPS2 board (then it does not ship: a miscompile caught). Time: a
plain -Oz build, the tuned build from a cold tuner cache, and a clean rebuild with the warm
cache, as a ratio to the plain build. Cold runs use a fresh FLEETFORGE_CACHE, so the tuner's
own measurement cache starts empty too.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import toolchains
from apps.build import AppBuild, build_app
from apps.description import load_app
from fleetforge import debian_source

REPO = Path(__file__).resolve().parent.parent
PROGRAMS = Path(__file__).with_name("apps_programs.toml")
SAMPLE = REPO / "tests" / "apps" / "data" / "layers" / "app" / "sample"
ROBOT = REPO / "diaspec" / "examples" / "mobile_robot"
BOARD = "aarch64-linux-gnu"
CORTEX_M = "thumbv7em-none-eabi"


@dataclass
class Row:
    program: str
    origin: str
    target: str
    units: int
    oz_flash: int
    units_flash: int  # the tuned units linked
    whole_flash: int  # the tuner's whole program
    shipped_flash: int
    kept: str
    note: str
    plain_s: float
    cold_s: float
    warm_s: float

    @property
    def gain(self) -> float:
        return 100.0 * (self.oz_flash - self.shipped_flash) / self.oz_flash

    @property
    def warm_ratio(self) -> float:
        return self.warm_s / self.plain_s


def machine() -> str:
    load = os.getloadavg()
    return (f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, load "
            f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, LLVM {toolchains.llvm().version}")


def test_input(path: Path) -> Path:
    """256 KiB of deterministic text (robot log lines) for the compressors and hashers."""
    rng = random.Random(20261130)
    words = ["sonar", "front", "left", "right", "drive", "stop", "battery", "pack", "ok", "warn",
             "motor", "current", "heading", "odometry", "bumper", "pressed", "clear", "tick"]
    lines = []
    while sum(len(line) for line in lines) < 256 * 1024:
        stamp = len(lines) * 20
        lines.append(f"{stamp:08d} " + " ".join(rng.choice(words) for _ in range(8))
                     + f" {rng.randint(0, 4095)}\n")
    path.write_text("".join(lines))
    return path


def debian_app(entry: dict, folder: Path, input_file: Path) -> Path:
    """An app folder for a Debian program: its upstream tree linked in as src/, an app.toml."""
    package = debian_source.fetch_source(entry["debian"], entry["version"])
    tree = debian_source.unpack_source(package, patched=False)
    folder.mkdir(parents=True)
    (folder / "src").symlink_to(tree)
    selftest = [str(input_file) if a == "@INPUT@" else a for a in entry["selftest"]]
    (folder / "app.toml").write_text(
        f'[app]\nname = "{entry["name"]}"\ninclude = {json.dumps(["src/" + i for i in entry["include"]])}\n'
        f'cflags = ["-w"]\n\n[[program]]\nname = "{entry["name"]}"\n'
        f'sources = {json.dumps(["src/" + s for s in entry["sources"]])}\n'
        f'selftest = {json.dumps(selftest)}\n')
    return folder


def robot_app(folder: Path) -> Path:
    """DiaSpec's mobile_robot C example as an app: the generated framework plus its user code."""
    from diaspec.cgen import generate_c
    from diaspec.compiler import check_spec

    shutil.copytree(ROBOT / "c", folder / "c", ignore=shutil.ignore_patterns("cortex_m"))
    checked = check_spec(str(ROBOT / "mobile_robot.diaspec"))
    generate_c(checked, folder / "c")
    (folder / "app.toml").write_text(
        '[app]\nname = "mobile_robot"\ninclude = ["c"]\ncflags = ["-std=c11"]\n\n'
        '[[program]]\nname = "robot"\nsources = ["c/*.c"]\nselftest = []\n')
    return folder


def timed_build(app_folder: Path, out: Path, target: str, optimize: str, budget: int,
                store: Path, cache: Path | None) -> tuple[AppBuild, float]:
    env_before = os.environ.get("FLEETFORGE_CACHE")
    if cache is not None:
        os.environ["FLEETFORGE_CACHE"] = str(cache)  # the tuner's measurement cache starts empty
    try:
        started = time.perf_counter()
        (build,) = build_app(load_app(app_folder), out, targets=[toolchains.target(target)],
                             optimize=optimize, budget=budget, store=store)
        return build, time.perf_counter() - started
    finally:
        if cache is not None:
            if env_before is None:
                os.environ.pop("FLEETFORGE_CACHE")
            else:
                os.environ["FLEETFORGE_CACHE"] = env_before


def measure(name: str, origin: str, app_folder: Path, target: str, budget: int,
            scratch: Path) -> Row:
    work = scratch / f"{name}-{target}"
    store = work / "store"
    _, plain_s = timed_build(app_folder, work / "plain", target, "Oz", budget, store, None)
    cold, cold_s = timed_build(app_folder, work / "cold", target, "tuned", budget, store,
                               work / "cache")
    warm, warm_s = timed_build(app_folder, work / "warm", target, "tuned", budget, store, None)
    assert all(u["cached"] for b in warm.binaries for u in b.units), "warm rebuild re-tuned"
    binary = cold.binaries[0]
    candidates = json.loads((cold.build_dir / "size-report.json").read_text())["binaries"][0][
        "candidates"]
    row = Row(name, origin, target, len(binary.units), binary.oz.flash,
              candidates["tuned"]["flash"], candidates["whole-program"]["flash"],
              binary.shipped.flash, binary.kept, binary.note, plain_s, cold_s, warm_s)
    print(f"  {row}", file=sys.stderr)
    return row


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def report(rows: list[Row], budget: int) -> str:
    lines = [f"machine: {machine()}", f"tuner budget: {budget} compilations per unit; baseline: "
             f"clang -Oz -ffunction-sections -fdata-sections, linked with --gc-sections", "",
             f"{'binary':10}{'origin':28}{'target':21}{'units':>5}{'-Oz':>8}{'units':>8}"
             f"{'whole':>8}{'ships':>8}{'gain':>8} {'kept':>14} {'plain s':>8}{'cold s':>8}"
             f"{'warm s':>8}{'warm/plain':>11}"]
    for r in rows:
        lines.append(f"{r.program:10}{r.origin:28}{r.target:21}{r.units:>5}{r.oz_flash:>8}"
                     f"{r.units_flash:>8}{r.whole_flash:>8}{r.shipped_flash:>8}{r.gain:>7.2f}% "
                     f"{r.kept:>14} {r.plain_s:>8.1f}{r.cold_s:>8.1f}{r.warm_s:>8.1f}"
                     f"{r.warm_ratio:>11.2f}" + (f"  ({r.note})" if r.note else ""))
    for target in sorted({r.target for r in rows}):
        chosen = [r for r in rows if r.target == target]
        oz = sum(r.oz_flash for r in chosen)
        shipped = sum(r.shipped_flash for r in chosen)
        lines.append(f"total {target}: -Oz {oz} B, shipped {shipped} B, delta {shipped - oz:+d} B "
                     f"({100.0 * (shipped - oz) / oz:+.2f}%)")
    caught = [r for r in rows if "self-test" in r.note]
    for label, attr in (("units tuned", "units_flash"), ("whole program", "whole_flash")):
        ratio = geomean([min(getattr(r, attr), r.oz_flash) / r.oz_flash for r in rows])
        lines.append(f"geomean flash gain of {label} alone: {100 * (1 - ratio):.2f}%")
    lines.append(f"geomean flash gain (shipped): {100 * (1 - geomean([r.shipped_flash / r.oz_flash for r in rows])):.2f}%;"
                 f" never larger than -Oz: {all(r.shipped_flash <= r.oz_flash for r in rows)};"
                 f" self-test differences caught (shipped -Oz): {len(caught)}")
    lines.append(f"warm rebuild / plain build: geomean {geomean([r.warm_ratio for r in rows]):.2f}"
                 f" (max {max(r.warm_ratio for r in rows):.2f})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=45, help="tuner compilations per unit")
    parser.add_argument("--only", default="", help="comma-separated binaries to measure")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    options = parser.parse_args()
    only = set(filter(None, options.only.split(",")))
    scratch = Path(tempfile.mkdtemp(prefix="apps-bench-"))
    print(f"machine: {machine()}", file=sys.stderr)
    try:
        input_file = test_input(scratch / "input.txt")
        jobs: list[tuple[str, str, Path, str]] = []
        sample = scratch / "apps" / "sample"
        shutil.copytree(SAMPLE, sample)  # the suite's copy tunes units only; here both ways
        toml = sample / "app.toml"
        toml.write_text(toml.read_text().replace("whole_program = false", "whole_program = true"))
        for target in (BOARD, "arm-linux-gnueabihf", CORTEX_M):
            jobs.append(("sample", "tests/apps example app", sample, target))
        robot = robot_app(scratch / "apps" / "mobile_robot")
        for target in (BOARD, CORTEX_M):
            jobs.append(("robot", "DiaSpec mobile_robot", robot, target))
        for entry in tomllib.loads(PROGRAMS.read_text())["program"]:
            if only and entry["name"] not in only:
                continue
            folder = debian_app(entry, scratch / "apps" / entry["name"], input_file)
            origin = f"Debian {entry['debian']} ({entry['tuner_split']})"
            jobs.append((entry["name"], origin, folder, BOARD))
        rows = [measure(name, origin, folder, target, options.budget, scratch)
                for name, origin, folder, target in jobs if not only or name in only]
        if options.json:
            print(json.dumps({"machine": machine(), "budget": options.budget,
                              "rows": [{**r.__dict__, "gain_percent": round(r.gain, 3),
                                        "warm_over_plain": round(r.warm_ratio, 3)} for r in rows]}))
        else:
            print(report(rows, options.budget))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
