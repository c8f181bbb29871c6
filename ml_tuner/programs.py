"""The held-out programs the bench links and checks (data/projects.toml [[program]])."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from ml_tuner.corpus import PROJECTS_FILE, UNIT_FLAGS, fetch_source, project
from ml_tuner.run import Check, args_check

CHECKS_DIR = Path(__file__).parent / "data" / "checks"


@dataclass(frozen=True)
class Program:
    """A program of a held-out project: its units, the targets it builds for, its checks."""

    name: str
    project: str
    targets: tuple[str, ...]
    units: tuple[str, ...]
    exclude: tuple[str, ...]
    defines: tuple[str, ...]
    os_ldflags: dict[str, tuple[str, ...]]
    checks: tuple[tuple[str, ...], ...]

    def unit_files(self) -> list[Path]:
        """The program's units in the project's tree (fetched once)."""
        owner = project(self.project)
        if owner.split != "test":
            raise UserError(f"program {self.name}: project {self.project} is a training project; "
                            f"programs come from held-out projects", where=str(PROJECTS_FILE))
        tree = fetch_source(owner)
        excluded = {tree / e for e in self.exclude}
        files = [f for f in owner.files(tree, self.units) if f not in excluded]
        if not files:
            raise UserError(f"program {self.name}: no unit matches {self.units}",
                            where=str(PROJECTS_FILE))
        return files

    def cflags(self, target: str) -> tuple[str, ...]:
        """The project's flags for `target`, the program's defines and the bench's unit flags."""
        owner = project(self.project)
        tree = fetch_source(owner)
        return (*owner.cflags(tree, target), *(f"-D{d}" for d in self.defines), *UNIT_FLAGS)

    def ldflags(self, target: str) -> tuple[str, ...]:
        """The bench's link flags (issue 15's baseline) and the program's own for `target`."""
        import toolchains

        return ("-Wl,--gc-sections", *self.os_ldflags.get(toolchains.target(target).os, ()))

    def check(self, target: str) -> Check:
        tree = fetch_source(project(self.project))
        runs = [[arg.replace("{checks}", str(CHECKS_DIR)) for arg in run] for run in self.checks]
        return args_check(target, runs, cwd=tree, name=self.name)


def load_programs(path: Path = PROJECTS_FILE) -> list[Program]:
    """Every [[program]] of the table."""
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise UserError(str(error), where=str(path)) from None
    out = []
    for item in table.get("program", []):
        try:
            out.append(Program(item["name"], item["project"], tuple(item["targets"]),
                               tuple(item["units"]), tuple(item.get("exclude", ())),
                               tuple(item.get("defines", ())),
                               {k: tuple(v) for k, v in item.get("os_ldflags", {}).items()},
                               tuple(tuple(run) for run in item["checks"])))
        except KeyError as missing:
            raise UserError(f"program {item.get('name', '?')}: missing key {missing}",
                            where=str(path)) from None
    return out


def programs_for(target: str) -> list[Program]:
    return [p for p in load_programs() if target in p.targets]
