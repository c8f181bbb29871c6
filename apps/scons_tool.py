"""FleetForge's SCons tool: C/C++ programs and libraries for a target of toolchains/targets.toml.

In an SConstruct:

    from apps import scons_tool
    env = Environment(tools=[], FLEETFORGE_TARGET="aarch64-linux-gnu", FLEETFORGE_OPTIMIZE="tuned")
    env.Tool(scons_tool.generate)
    lib = env.FleetLibrary("lib/robotmath", Glob("lib/*.c"))
    rover = env.FleetProgram("bin/rover", Glob("src/*.c"), libraries=[lib], LIBS=["m"])
    env.FleetSizeReport("size-report.json", [rover])

FLEETFORGE_OPTIMIZE is an optimization level (`Oz`, `Os`, `O2`, ...: the plain compiler) or
`tuned`: the tuner picks clang's -Oz settings for each unit (apps/tuning.py, contract B); the
program is linked twice, from the tuned objects and from the real `clang -Oz` ones, and the
smaller ships (the -Oz one too when the program's self-test prints anything different). Every
program is linked by the table's link rule (clang + lld) with --gc-sections and gets a size
report (`PROGRAM.size.json`: text, rodata, data, bss; -Oz and tuned side by side).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import SCons.Action
import SCons.Builder
import SCons.Errors
import SCons.Tool

import toolchains
from apps import tuning
from apps.sizes import SectionSizes, section_sizes
from ml_tuner.run import args_check

TUNED = "tuned"
PLAIN_LEVELS = ("O0", "O1", "O2", "O3", "Os", "Oz")
SELFTEST_TIMEOUT = 60  # seconds; a self-test that hangs fails the comparison
# Where the tuned path's candidate programs are linked (beside the shipped program's folder): the
# -Oz baseline, the tuned units linked, and the tuner's whole program (when asked for).
COMPARE_DIR = "compare"
PER_UNIT = "tuned"
WHOLE_PROGRAM = "whole-program"
# What clang++ adds to a C++ program's link.
CPLUSPLUS_LIBS = ("-lstdc++", "-lm")
# Construction variables a program's or library's keywords may set for its units' compilation.
COMPILE_VARIABLES = ("CFLAGS", "CXXFLAGS", "CCFLAGS", "CPPFLAGS", "CPPPATH", "CPPDEFINES")


def exists(env) -> bool:
    return True


def generate(env, **overrides) -> None:
    """Set up `env` for FLEETFORGE_TARGET (name in targets.toml) and FLEETFORGE_OPTIMIZE."""
    env.Replace(**overrides)
    target = toolchains.target(env.get("FLEETFORGE_TARGET") or toolchains.host_target().name)
    optimize = env.get("FLEETFORGE_OPTIMIZE", TUNED)
    if optimize != TUNED and optimize not in PLAIN_LEVELS:
        raise SCons.Errors.UserError(
            f"FLEETFORGE_OPTIMIZE must be '{TUNED}' or one of {', '.join(PLAIN_LEVELS)} "
            f"(got '{optimize}')")
    target.require()
    for tool in ("cc", "cxx", "link", "ar"):
        env.Tool(tool)
    env.SetDefault(FLEETFORGE_BUDGET=45, FLEETFORGE_STORE=str(tuning.DEFAULT_STORE))
    # The compiler command includes the target's flags, so $CCFLAGS stays the program's own. The
    # link is the table's one rule (clang + lld, toolchains.Target.clang_link_parts): its runtime
    # libraries come after the program's objects and libraries.
    link, link_libs = target.clang_link_parts()
    env.Replace(FLEETFORGE_TARGET=target.name, FLEETFORGE_OPTIMIZE=optimize,
                CC=target.clang_args(), CXX=target.clang_args(cplusplus=True), LINK=link,
                FLEETFORGE_LINK_LIBS=link_libs, AR=target.gnu_tool("ar"),
                RANLIB=target.gnu_tool("ranlib"), PROGSUFFIX="")
    env.Append(LINKCOM=" $FLEETFORGE_LINK_LIBS")
    env.Append(CCFLAGS=list(tuning.SECTION_FLAGS), LINKFLAGS=["-Wl,--gc-sections"])
    if optimize != TUNED:
        env.Append(CCFLAGS=[f"-{optimize}"])
    env["BUILDERS"]["FleetTunedObject"] = SCons.Builder.Builder(
        action=SCons.Action.Action(_tuned_object, _tuned_object_message,
                                   varlist=["FLEETFORGE_TARGET", "FLEETFORGE_BUDGET",
                                            "FLEETFORGE_STORE"]),
        emitter=_tuned_object_emitter, suffix=".o",
        src_suffix=[".c", *tuning.CPLUSPLUS_SUFFIXES],
        source_scanner=SCons.Tool.SourceFileScanner, single_source=True)
    env.AddMethod(fleet_program, "FleetProgram")
    env.AddMethod(fleet_library, "FleetLibrary")
    env.AddMethod(fleet_size_report, "FleetSizeReport")


# ---- tuned objects ------------------------------------------------------------------------------
def _tuned_object_emitter(target, source, env):
    obj = Path(str(target[0]))
    base = obj.with_suffix("")
    return [target[0], env.File(f"{base}.Oz.o"), env.File(f"{base}.unit.json")], source


def _unit_flags(env, target, source) -> list[str]:
    """The unit's own compile flags (defines, includes, warnings, -std): the tuned path picks the
    optimization itself, so -O flags are left out."""
    language = "$CXXFLAGS" if tuning.is_cplusplus(Path(str(source[0]))) else "$CFLAGS"
    flags = env.subst_list(f"{language} $CCFLAGS $_CCCOMCOM", target=target, source=source)[0]
    return [str(f) for f in flags if not str(f).startswith("-O")]


def _tuned_object(target, source, env) -> int:
    result = tuning.tune_unit(
        Path(str(source[0])), toolchains.target(env["FLEETFORGE_TARGET"]),
        cflags=_unit_flags(env, target, source), out=Path(str(target[0])),
        oz_out=Path(str(target[1])), budget=int(env["FLEETFORGE_BUDGET"]),
        store=tuning.TunedStore(Path(env["FLEETFORGE_STORE"])))
    Path(str(target[2])).write_text(json.dumps(result.as_json(), indent=1))
    return 0


def _tuned_object_message(target, source, env) -> str:
    return f"Tuning {source[0]} for {env['FLEETFORGE_TARGET']}"


# ---- programs and libraries ---------------------------------------------------------------------
def _language_overrides(env, sources) -> dict:
    """C++ programs link with clang++ (libstdc++); C ones with clang."""
    if any(tuning.is_cplusplus(Path(str(s))) for s in sources):
        target = toolchains.target(env["FLEETFORGE_TARGET"])
        return {"LINK": target.clang_link_parts(cplusplus=True)[0]}
    return {}


def fleet_program(env, name, sources, libraries=(), selftest=None, whole_program=True, **kw):
    """Build program `name` from `sources` (and FleetLibrary nodes in `libraries`); returns the
    shipped program's node. `selftest`: arguments that make the program test itself and exit;
    the tuned path then ships a tuned program only when its output equals the -Oz one's.
    `whole_program`: the tuned path also asks the tuner for the whole program (its units' IR
    merged) and ships the smallest of the three builds (-Oz, units tuned, whole program)."""
    sources = env.Flatten([env.File(s) if isinstance(s, str) else s for s in env.Flatten(sources)])
    program = env.File(name)
    report = env.File(f"{program}.size.json")
    kw = {**_language_overrides(env, sources), **kw}
    libraries = env.Flatten(list(libraries))
    if env["FLEETFORGE_OPTIMIZE"] != TUNED:
        built = env.Program(program, [*sources, *libraries], **kw)
        env.Command(report, built, SCons.Action.Action(_plain_report, None),
                    FLEETFORGE_PROGRAM_NAME=Path(name).name)
        return built
    tuned_objects, oz_objects, unit_reports = [], [], []
    for source in sources:
        obj, oz_obj, unit = env.FleetTunedObject(source, **_compile_overrides(kw))
        tuned_objects.append(obj)
        oz_objects.append(oz_obj)
        unit_reports.append(unit)
    oz_libraries = [env["FLEETFORGE_OZ_TWIN"][str(lib)] for lib in libraries]
    compare = program.dir.Dir(COMPARE_DIR)
    oz_program = env.Program(compare.Dir("Oz").File(program.name), [*oz_objects, *oz_libraries],
                             **kw)
    candidates = env.Program(compare.Dir(PER_UNIT).File(program.name),
                             [*tuned_objects, *libraries], **kw)
    labels = [PER_UNIT]
    selftest = list(selftest) if selftest is not None else None
    if whole_program:
        candidates += env.Command(
            compare.Dir(WHOLE_PROGRAM).File(program.name), [*unit_reports, *libraries],
            SCons.Action.Action(_tuned_whole_program, "Tuning the whole program $TARGET",
                                varlist=["FLEETFORGE_TARGET", "FLEETFORGE_BUDGET"]),
            FLEETFORGE_SELFTEST=selftest, FLEETFORGE_UNITS=[str(u) for u in sources], **kw)
        labels.append(WHOLE_PROGRAM)
    shipped = env.Command(
        [program, report], [oz_program, *candidates, *unit_reports],
        SCons.Action.Action(_choose_program, "Choosing the smallest build: $TARGET"),
        FLEETFORGE_SELFTEST=selftest, FLEETFORGE_CANDIDATES=labels,
        FLEETFORGE_PROGRAM_NAME=program.name)
    return shipped[:1]


def _tuned_whole_program(target, source, env) -> int:
    """The tuner's whole-program build: the program's units (their IR digests from the unit
    reports) with its libraries and link flags."""
    units = [Path(u) for u in env["FLEETFORGE_UNITS"]]
    reports = [json.loads(Path(str(s)).read_text()) for s in source[:len(units)]]
    libraries = [str(s) for s in source[len(units):]]
    link_flags = env.subst_list("$LINKFLAGS $_LIBDIRFLAGS $_LIBFLAGS", target=target,
                                source=source)[0]
    if any(tuning.is_cplusplus(u) for u in units):
        link_flags = [*link_flags, *CPLUSPLUS_LIBS]  # the tuner links with clang, not clang++
    result = tuning.tune_whole_program(
        units, [r["ir_digest"] for r in reports], toolchains.target(env["FLEETFORGE_TARGET"]),
        cflags=_unit_flags(env, target, [env.File(str(units[0]))]),
        ldflags=[*libraries, *map(str, link_flags)], out=Path(str(target[0])),
        budget=int(env["FLEETFORGE_BUDGET"]), selftest=env.get("FLEETFORGE_SELFTEST"),
        store=tuning.TunedStore(Path(env["FLEETFORGE_STORE"])))
    Path(f"{target[0]}.json").write_text(json.dumps(result, indent=1))
    return 0


def _compile_overrides(kw) -> dict:
    return {key: kw[key] for key in COMPILE_VARIABLES if key in kw}


def fleet_library(env, name, sources, **kw):
    """A static library; in the tuned path its -Oz twin is built too (for the -Oz programs)."""
    sources = env.Flatten([env.File(s) if isinstance(s, str) else s for s in env.Flatten(sources)])
    if env["FLEETFORGE_OPTIMIZE"] != TUNED:
        return env.StaticLibrary(name, sources, **kw)
    objects = [env.FleetTunedObject(s, **_compile_overrides(kw)) for s in sources]
    library = env.StaticLibrary(name, [o[0] for o in objects])
    folder, base = os.path.split(str(name))
    twin = env.StaticLibrary(os.path.join(folder, COMPARE_DIR, "Oz", base), [o[1] for o in objects])
    twins = dict(env.get("FLEETFORGE_OZ_TWIN", {}))
    twins[str(library[0])] = twin[0]
    env["FLEETFORGE_OZ_TWIN"] = twins
    return library


# ---- choosing, self-tests, reports --------------------------------------------------------------
def _choose_program(target, source, env) -> int:
    """Ship the smallest candidate that is smaller than -Oz and, with a self-test, behaves as
    the -Oz program does; else the -Oz program."""
    shipped, report = Path(str(target[0])), Path(str(target[1]))
    labels = list(env["FLEETFORGE_CANDIDATES"])
    oz_program = Path(str(source[0]))
    candidates = {label: Path(str(s)) for label, s in zip(labels, source[1:])}
    units = [json.loads(Path(str(s)).read_text()) for s in source[1 + len(labels):]]
    oz = section_sizes(oz_program)
    sizes = {label: section_sizes(path) for label, path in candidates.items()}
    ranked = sorted((label for label in labels if sizes[label].flash < oz.flash),
                    key=lambda label: sizes[label].flash)
    kept, notes = "Oz", [] if ranked else ["no tuned build is smaller"]
    selftest = env.get("FLEETFORGE_SELFTEST")
    if ranked and selftest is not None:
        for label in ranked:
            same = _same_selftest(env, oz_program, candidates[label], selftest, shipped.name)
            if same is None:
                notes.append("the -Oz program's self-test fails")
                break
            if same:
                kept = label
                break
            notes.append(f"the {label} program's self-test differs from -Oz's: not shipped")
    elif ranked:
        kept = ranked[0]
    for note in notes:
        if "self-test" in note:
            print(f"warning: {shipped.name}: {note}")
    shutil.copy2(candidates[kept] if kept != "Oz" else oz_program, shipped)
    best = min(labels, key=lambda label: sizes[label].flash)
    report.write_text(json.dumps({
        "program": env["FLEETFORGE_PROGRAM_NAME"], "target": env["FLEETFORGE_TARGET"],
        "optimize": TUNED, "kept": kept, "note": "; ".join(notes), "oz": oz.as_dict(),
        "tuned": sizes[best].as_dict(), "shipped": (sizes[kept] if kept != "Oz" else oz).as_dict(),
        "candidates": {label: sizes[label].as_dict() for label in labels},
        "units": units}, indent=1))
    return 0


def _same_selftest(env, oz_program: Path, candidate: Path, selftest, name: str) -> bool | None:
    """Whether `candidate` tests itself as the -Oz program does (None: the -Oz program's own
    self-test fails). Both run under one name (a program may print its own), as the tuner's
    checks do; the verdict is stored by both programs' content."""
    store = tuning.TunedStore(Path(env["FLEETFORGE_STORE"]))
    key, same = store.verdict([oz_program, candidate], selftest)
    if same is not None:
        return same
    check = args_check(env["FLEETFORGE_TARGET"], [selftest], timeout=SELFTEST_TIMEOUT, name=name)
    expected = check(oz_program)
    if expected.status != 0:
        return None
    same = check(candidate).same_as(expected)
    store.save_verdict(key, same)
    return same


def _plain_report(target, source, env) -> int:
    sizes = section_sizes(Path(str(source[0])))
    Path(str(target[0])).write_text(json.dumps({
        "program": env["FLEETFORGE_PROGRAM_NAME"], "target": env["FLEETFORGE_TARGET"],
        "optimize": env["FLEETFORGE_OPTIMIZE"], "kept": env["FLEETFORGE_OPTIMIZE"], "note": "",
        "shipped": sizes.as_dict(), "units": []}, indent=1))
    return 0


def fleet_size_report(env, name, programs):
    """One report over `programs` (FleetProgram nodes): each binary and the image total."""
    reports = [env.File(f"{p}.size.json") for p in env.Flatten(programs)]
    return env.Command(name, reports, SCons.Action.Action(_total_report, "Size report: $TARGET"))


def _total_report(target, source, env) -> int:
    binaries = [json.loads(Path(str(s)).read_text()) for s in source]
    total = {key: sum((SectionSizes.from_dict(b[key]) for b in binaries if key in b),
                      SectionSizes()).as_dict()
             for key in ("shipped", "oz", "tuned")}
    Path(str(target[0])).write_text(json.dumps({"binaries": binaries, "total": total}, indent=1))
    return 0
