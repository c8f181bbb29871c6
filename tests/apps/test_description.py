"""app.toml: a valid description reads into typed values; each mistake is one line naming the
file and the key, with what was expected."""
from __future__ import annotations

from pathlib import Path

import pytest

from apps.description import load_app
from apps.locate import find_app
from fleetforge.errors import UserError

SAMPLE = Path(__file__).parent / "data" / "layers" / "app" / "sample"


def _app(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "rover"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (folder / "app.toml").write_text(text)
    return folder


def test_the_sample_reads_into_typed_values():
    app = load_app(SAMPLE)
    assert app.name == "sample" and app.optimize == "tuned" and app.target == ""
    assert [lib.name for lib in app.libraries] == ["checksum"]
    (program,) = app.programs
    assert program.libraries == ("checksum",) and program.selftest == ()
    assert app.service is not None and app.service.program == "sample"
    assert app.service.settle == 1
    assert app.artifact_name == "app-sample"
    names = [p.name for p in app.sources(program.sources, "program sample")]
    assert names == ["main.c", "sort.c", "telemetry.c"]


def test_defaults_name_the_app_after_its_folder(tmp_path):
    app = load_app(_app(tmp_path, '[[program]]\nname = "rover"\nsources = ["src/*.c"]\n'))
    assert app.name == "rover" and app.service is None and app.optimize == "tuned"


@pytest.mark.parametrize("text, message", [
    ('[[program]]\nname = "rover"\n', r"program\[0\]\.sources: missing \(required\)"),
    ('[app]\noptimize = "O4"\n[[program]]\nname = "a"\nsources = ["src/*.c"]\n',
     r"app\.optimize: expected one of tuned, Oz, Os, O3, O2, O1, O0, got 'O4'"),
    ('[app]\nspeed = 1\n[[program]]\nname = "a"\nsources = ["src/*.c"]\n',
     r"app: unknown key 'speed'"),
    ('[[program]]\nname = "../etc"\nsources = ["src/*.c"]\n', r"program\[0\]\.name: expected a name"),
    ('[[program]]\nname = "a"\nsources = ["src/*.c"]\nlibraries = ["m"]\n',
     r"program 'a': no \[\[library\]\] named 'm'"),
    ('[[program]]\nname = "a"\nsources = ["src/*.c"]\n[service]\nprogram = "b"\n',
     r"service\.program: no \[\[program\]\] named 'b'"),
    ('[[program]]\nname = "a"\nsources = ["src/*.c"]\n[service]\nsettle = -1\n',
     r"service\.settle: expected whole seconds"),
    ('[app]\nname = "a"\n', r"no \[\[program\]\]"),
    ('[[program]\n', r"app\.toml: .*line 1"),
])
def test_each_mistake_names_the_file_and_the_key(tmp_path, text, message):
    folder = _app(tmp_path, text)
    with pytest.raises(UserError, match=message) as raised:
        load_app(folder)
    assert raised.value.where == str(folder / "app.toml")


def test_a_glob_matching_nothing_is_named(tmp_path):
    app = load_app(_app(tmp_path, '[[program]]\nname = "a"\nsources = ["c/*.c"]\n'))
    with pytest.raises(UserError, match=r"program a: 'c/\*\.c' matches no file"):
        app.sources(app.programs[0].sources, "program a")


def test_an_app_is_found_by_folder_or_by_layer_name(tmp_path, monkeypatch):
    layer = tmp_path / "layers" / "app" / "rover"
    layer.parent.mkdir(parents=True)
    _app(tmp_path, '[[program]]\nname = "rover"\nsources = ["src/*.c"]\n').rename(layer)
    monkeypatch.chdir(tmp_path)  # the project: its ./layers are searched first
    assert find_app("rover").path == (layer / "app.toml").resolve()
    assert find_app(str(SAMPLE)).name == "sample"
    with pytest.raises(UserError, match="no app 'nosuch'.*layers/app"):
        find_app("nosuch")
