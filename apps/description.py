"""An app's description, `app.toml`: what to compile (programs, libraries), for which target, how
(plain -O level or tuned), and how the device runs it (its service and health check).

    [app]
    name = "rover"               # default: the folder's name
    target = ""                  # default: the board's target (toolchains/targets.toml)
    optimize = "tuned"           # tuned, or a plain level: Oz Os O2 O3 O1 O0
    budget = 45                  # tuned: compilations the tuner may try per unit
    cflags = ["-std=c11", "-Wall"]
    include = ["c"]              # folders, relative to app.toml
    defines = ["ROVER_SPEED=2"]

    [[library]]                  # zero or more static libraries
    name = "robotmath"
    sources = ["lib/*.c"]        # globs, relative to app.toml

    [[program]]                  # one or more programs
    name = "rover"
    sources = ["c/*.c"]
    libraries = ["robotmath"]    # libraries of this app
    libs = ["m"]                 # the target's own libraries
    selftest = ["--selftest"]    # optional: arguments that make it test itself and exit
    whole_program = true         # tuned: the tuner also tunes the whole program (its units' IR
                                 # merged) and the smallest build ships; false: units only (a
                                 # changed unit then costs one unit's tuning, not the program's)

    [python]                     # optional: a Python app (e.g. what `diaspec new` makes)
    package = "../../../rover/rover_app"   # its package folder, relative to app.toml; the
                                 # device runs `python3 -m rover_app ARGS` (program NAME)

    [service]                    # optional: the program the device runs at boot
    program = "rover"            # default: the first program (a Python app's: NAME)
    args = ["--trace"]
    health = "grep -q ready $APP_LOG"   # optional shell test besides "the process stays up"
    settle = 2                   # seconds the process must have been up to count as healthy

A folder holding app.toml is an app; a layer `layers/app/NAME/` holding one puts the app in the
image. Every rule about the file is here; the SCons build (apps/SConstruct) only reads the result.
"""
from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetforge.errors import UserError

FILE_NAME = "app.toml"
TUNED = "tuned"
OPTIMIZE_CHOICES = (TUNED, "Oz", "Os", "O3", "O2", "O1", "O0")
# A name becomes a program file, an init script and the artifact `app-NAME`: a path component.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]{0,47}")
DEFAULT_SETTLE_SECONDS = 2
DEFAULT_BUDGET = 45  # as `ml-tuner tune`
REQUIRED = object()  # the default of a key that must be given


@dataclass(frozen=True)
class Library:
    name: str
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Program:
    name: str
    sources: tuple[str, ...]
    libraries: tuple[str, ...]
    libs: tuple[str, ...]
    selftest: tuple[str, ...] | None
    whole_program: bool


@dataclass(frozen=True)
class PythonPackage:
    """A Python app's package: the folder (its name is the module `python3 -m` runs)."""

    folder: Path

    @property
    def module(self) -> str:
        return self.folder.name


@dataclass(frozen=True)
class Service:
    program: str
    args: tuple[str, ...]
    health: str
    settle: int


@dataclass(frozen=True)
class AppDescription:
    """One app, read from `path` (its app.toml); source globs are relative to `root`."""

    path: Path
    name: str
    target: str
    optimize: str
    budget: int
    cflags: tuple[str, ...]
    include: tuple[str, ...]
    defines: tuple[str, ...]
    libraries: tuple[Library, ...]
    programs: tuple[Program, ...]
    python: PythonPackage | None
    service: Service | None

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def runnable(self) -> tuple[str, ...]:
        """What the service may run: the programs, and a Python app's launcher (named NAME)."""
        return (*(p.name for p in self.programs), *((self.name,) if self.python else ()))

    @property
    def artifact_name(self) -> str:
        """The OTA artifact (contract A) that carries this app: /persist/artifacts/app-NAME."""
        return f"app-{self.name}"

    def sources(self, globs: tuple[str, ...], where: str) -> list[Path]:
        """The files `globs` match below the app's folder, sorted; none matching is an error."""
        found: list[Path] = []
        for pattern in globs:
            matches = sorted(p for p in self.root.glob(pattern) if p.is_file())
            if not matches:
                raise UserError(f"{where}: '{pattern}' matches no file in {self.root}",
                                where=str(self.path))
            found += [m for m in matches if m not in found]
        return found


class _Table:
    """Typed reads of one TOML table; every error names the file and the key."""

    def __init__(self, path: Path, data: Any, where: str, known: set[str]) -> None:
        self.path, self.where = path, where
        if not isinstance(data, dict):
            self.fail(where, "expected a table")
        self.data: dict = data
        unknown = sorted(set(data) - known)
        if unknown:
            self.fail(where, f"unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})")

    def fail(self, key: str, message: str):
        raise UserError(f"{key}: {message}", where=str(self.path))

    def get(self, key: str, parse: Callable[[Any], Any], default: Any) -> Any:
        if key not in self.data:
            if default is REQUIRED:
                self.fail(f"{self.where}.{key}", "missing (required)")
            return default
        try:
            return parse(self.data[key])
        except ValueError as error:
            self.fail(f"{self.where}.{key}", str(error))


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise ValueError(f"expected a name matching {NAME_PATTERN.pattern}, got {value!r}")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a list of non-empty strings, got {value!r}")
    return tuple(value)


def _names(value: Any) -> tuple[str, ...]:
    return tuple(_name(v) for v in _strings(value))


def _optimize(value: Any) -> str:
    if value not in OPTIMIZE_CHOICES:
        raise ValueError(f"expected one of {', '.join(OPTIMIZE_CHOICES)}, got {value!r}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _budget(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise ValueError(f"expected a number of compilations from 1 to 1000, got {value!r}")
    return value


def _seconds(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 600:
        raise ValueError(f"expected whole seconds from 0 to 600, got {value!r}")
    return value


def load_app(folder_or_file: Path) -> AppDescription:
    """Read and check an app's app.toml (a folder holding one, or the file itself)."""
    path = Path(folder_or_file)
    if path.is_dir():
        path = path / FILE_NAME
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"no {FILE_NAME} here: an app folder holds one (see apps/description.py)",
                        where=str(path)) from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UserError(str(error), where=str(path)) from None
    _Table(path, data, "top level", {"app", "library", "program", "python", "service"})
    app = _Table(path, data.get("app", {}), "app",
                 {"name", "target", "optimize", "budget", "cflags", "include", "defines"})
    libraries = tuple(_library(path, item, i) for i, item in enumerate(_array(path, data, "library")))
    programs = tuple(_program(path, item, i) for i, item in enumerate(_array(path, data, "program")))
    python = _python(path, data["python"]) if "python" in data else None
    if not programs and python is None:
        raise UserError("no [[program]] and no [python]: an app builds at least one program or "
                        "is a Python package", where=str(path))
    _unique(path, "library", [lib.name for lib in libraries])
    _unique(path, "program", [p.name for p in programs])
    app_name = app.get("name", _name, _name(path.resolve().parent.name))
    if python is not None and app_name in {p.name for p in programs}:
        raise UserError(f"a Python app's launcher is named after the app: no [[program]] may be "
                        f"named '{app_name}'", where=str(path))
    known_libraries = {lib.name for lib in libraries}
    for program in programs:
        for name in program.libraries:
            if name not in known_libraries:
                raise UserError(f"program '{program.name}': no [[library]] named '{name}'",
                                where=str(path))
    service = None
    if "service" in data:
        table = _Table(path, data["service"], "service", {"program", "args", "health", "settle"})
        runnable = (*(p.name for p in programs), *((app_name,) if python else ()))
        service = Service(table.get("program", _name, runnable[0]),
                          table.get("args", _strings, ()), table.get("health", _text, ""),
                          table.get("settle", _seconds, DEFAULT_SETTLE_SECONDS))
        if service.program not in runnable:
            raise UserError(f"service.program: no [[program]] named '{service.program}'",
                            where=str(path))
    return AppDescription(
        path=path.resolve(), name=app_name,
        target=app.get("target", _text, ""), optimize=app.get("optimize", _optimize, TUNED),
        budget=app.get("budget", _budget, DEFAULT_BUDGET),
        cflags=app.get("cflags", _strings, ()), include=app.get("include", _strings, ()),
        defines=app.get("defines", _strings, ()), libraries=libraries, programs=programs,
        python=python, service=service)


def _array(path: Path, data: dict, key: str) -> list:
    items = data.get(key, [])
    if not isinstance(items, list):
        raise UserError(f"{key}: expected [[{key}]] tables", where=str(path))
    return items


def _unique(path: Path, kind: str, names: list[str]) -> None:
    for name in names:
        if names.count(name) > 1:
            raise UserError(f"two [[{kind}]] tables are named '{name}'", where=str(path))


def _library(path: Path, item: Any, index: int) -> Library:
    table = _Table(path, item, f"library[{index}]", {"name", "sources"})
    return Library(table.get("name", _name, REQUIRED), table.get("sources", _strings, REQUIRED))


def _program(path: Path, item: Any, index: int) -> Program:
    table = _Table(path, item, f"program[{index}]",
                   {"name", "sources", "libraries", "libs", "selftest", "whole_program"})
    return Program(table.get("name", _name, REQUIRED), table.get("sources", _strings, REQUIRED),
                   table.get("libraries", _names, ()), table.get("libs", _strings, ()),
                   table.get("selftest", _strings_or_empty, None),
                   table.get("whole_program", _bool, True))


def _python(path: Path, data: Any) -> PythonPackage:
    table = _Table(path, data, "python", {"package"})
    folder = (path.parent / table.get("package", _text, REQUIRED)).resolve()
    if not (folder / "__init__.py").is_file() or not folder.name.isidentifier():
        table.fail("python.package", f"{folder} is not a Python package folder (no __init__.py, "
                   f"or its name is no module name)")
    return PythonPackage(folder)


def _strings_or_empty(value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and not value:
        return ()
    return _strings(value)
