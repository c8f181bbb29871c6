"""Property tests: random and mutated specs end in diagnostics or success, never an exception;
every design that checks generates Python that compiles and C generation that completes."""
from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diaspec.cgen import CGenerator
from diaspec.compiler import check_spec
from diaspec.pygen import framework_files, user_files

from ds_helpers import EXAMPLES

SETTINGS = settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))

TOKENS = [
    "include", "import", "as", "type", "enumeration", "structure", "action", "device", "entity", "extends",
    "attribute", "source", "indexed", "by", "context", "controller", "when", "provided", "required",
    "periodic", "get", "from", "do", "on", "always", "maybe", "no", "publish", "grouped", "ms", "s", "min",
    "h", "{", "}", "(", ")", "[", "]", ";", ",", ".", "<", ">", '"t.diaspec"', "Float", "Integer", "String",
    "Boolean", "Binary", "A", "B", "C", "D", "x", "y", "0", "100", "1.5", "//c\n", "/*c*/", "\n", "\x00", "é",
    '// say "hi"\n', '/* \\ "*/', '/*"""*/', "// '''\n",
]

SEEDS = [
    (EXAMPLES / "mobile_robot" / "taxonomy.diaspec").read_text()
    + (EXAMPLES / "mobile_robot" / "mobile_robot.diaspec").read_text().replace('include "taxonomy.diaspec";', ""),
    (EXAMPLES / "pick_and_place" / "taxonomy.diaspec").read_text()
    + (EXAMPLES / "pick_and_place" / "pick_and_place.diaspec").read_text().replace('include "taxonomy.diaspec";', ""),
]


def compile_everything(text: str | bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.diaspec"
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        (Path(tmp) / "t.diaspec").write_text("device T { source t as Float; }\n")
        checked = check_spec(path)
        for d in checked.diagnostics.items:
            assert d.severity in ("error", "warning") and d.pos.line >= 1 and d.pos.col >= 1
        if not checked.ok:
            return
        for name, source in framework_files(checked).items():
            compile(source, name, "exec")
        for name, source in user_files(checked, "fuzz_app").items():
            if name.endswith(".py"):
                compile(source, name, "exec")
        CGenerator(checked).generate()


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join))
def test_random_token_soup(text):
    compile_everything(text)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(data):
    compile_everything(data)


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "duplicate", "replace", "insert"]))
        start = draw(st.integers(0, len(text)))
        end = min(len(text), start + draw(st.integers(0, 40)))
        if kind == "delete":
            text = text[:start] + text[end:]
        elif kind == "duplicate":
            text = text[:end] + text[start:end] + text[end:]
        elif kind == "replace":
            words = text.split(" ")
            i = draw(st.integers(0, max(0, len(words) - 1)))
            words[i] = draw(st.sampled_from(TOKENS + ["Sonar", "Mode", "Drive", "Arm", "Target", "Velocity"]))
            text = " ".join(words)
        else:
            text = text[:start] + draw(st.sampled_from(TOKENS)) + text[start:]
    return text


@SETTINGS
@given(mutated())
def test_mutated_examples(text):
    compile_everything(text)


NAMES = st.sampled_from(["Alpha", "Beta", "Gamma", "Delta", "Eps"])


@st.composite
def random_design(draw):
    """Structurally valid text with random (often wrong) cross references."""
    lines = ["enumeration Kind { K1, K2 }", "structure Pair { a as Float; b as Kind; }", "action Act { go(n as Integer); halt(); }"]
    devices = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    for i, dev in enumerate(devices):
        parent = draw(st.sampled_from(devices + ["", ""]))
        ext = f" extends {parent}" if parent and parent != dev else ""
        lines.append(f"device Dev{dev}{ext.replace(' extends ', ' extends Dev')} {{ attribute tag as String; "
                     f"source s{i} as {draw(st.sampled_from(['Float', 'Pair', 'Kind', 'Integer[]']))}"
                     f"{draw(st.sampled_from(['', ' indexed by k as Kind']))}; action Act; }}")
    contexts = draw(st.lists(NAMES, min_size=1, max_size=4, unique=True))
    for ctx in contexts:
        contracts = []
        for _ in range(draw(st.integers(0, 3))):
            dev_i = draw(st.integers(0, len(devices) - 1))
            src = f"s{dev_i} from Dev{devices[dev_i]}"
            other = f"Ctx{draw(st.sampled_from(contexts))}"
            gets = draw(st.sampled_from(["", f" get {other}", f" get {src}"]))
            mode = draw(st.sampled_from(["always", "maybe", "no"]))
            contracts.append(draw(st.sampled_from([
                f"when provided {src}{gets} {mode} publish;",
                f"when provided {other}{gets} {mode} publish;",
                f"when required{gets};",
                f"when periodic <{draw(st.sampled_from(['0', '50', '1.5']))} {draw(st.sampled_from(['ms', 's']))}>{gets} {mode} publish;",
                f"when periodic {src} <100 ms> grouped by tag{gets} {mode} publish;",
            ])))
        lines.append(f"context Ctx{ctx} as {draw(st.sampled_from(['Float', 'Pair', 'Kind']))} {{ {' '.join(contracts)} }}")
    for ctx in draw(st.lists(st.sampled_from(contexts), max_size=3, unique=True)):
        dev = draw(st.sampled_from(devices))
        lines.append(f"controller Ctl{ctx} {{ when provided Ctx{ctx} do Act on Dev{dev}; }}")
    return "\n".join(lines) + "\n"


@SETTINGS
@given(random_design())
def test_random_designs(text):
    compile_everything(text)


def test_a_random_design_can_be_valid():
    """The design strategy is not vacuous: this hand-picked member of it checks and generates."""
    text = (
        "enumeration Kind { K1, K2 }\nstructure Pair { a as Float; b as Kind; }\naction Act { go(n as Integer); halt(); }\n"
        "device DevAlpha { attribute tag as String; source s0 as Float; action Act; }\n"
        "context CtxAlpha as Float { when provided s0 from DevAlpha maybe publish; }\n"
        "controller CtlAlpha { when provided CtxAlpha do Act on DevAlpha; }\n"
    )
    compile_everything(text)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "v.diaspec").write_text(text)
        assert check_spec(Path(tmp) / "v.diaspec").diagnostics.items == []


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(random_design())
def test_every_valid_random_design_generates_an_app_that_runs(text):
    """A freshly generated app (stubs, default deployment, simulated devices) runs as is."""
    from diaspec.pygen import generate_python

    from ds_helpers import import_app

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fz.diaspec"
        path.write_text(text)
        checked = check_spec(path)
        if not checked.ok:
            return
        generate_python(checked, Path(tmp) / "fz_app")
        fw = import_app(Path(tmp), "fz_app")
        app = fw.build("fz_app", clock=fw.VirtualClock())
        app.advance(3000)
        assert app.failures == []


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(random_design(), mutated()))
def test_valid_random_designs_generate_warning_free_c(text):
    from diaspec.cgen import generate_c
    from fleetforge.tools import run_tool

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fz.diaspec"
        path.write_text(text)
        checked = check_spec(path)
        if not checked.ok:
            return
        generate_c(checked, Path(tmp) / "c")
        sources = sorted((Path(tmp) / "c").glob("*.c"))
        run_tool(["gcc", "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-Wconversion", "-Wshadow",
                  "-fsyntax-only", *sources], debian_package="gcc")
