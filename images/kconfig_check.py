"""Find the Kconfig symbols a build asked for that the resolved configuration dropped or changed.

Shared by the Buildroot backend (BR2_* symbols after `make defconfig`) and the kernel built from
source (CONFIG_* options after the kernel's merge_config.sh). Each problem names the layer and the
fragment file:line that asked for the symbol; a kconfiglib model of the same tree, when given,
explains why (unknown symbol, unmet dependency, another choice member, forced by a select).
"""
from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fleetforge.errors import UserError
from fleetforge.paths import display_path
from images.layers import Setting

if TYPE_CHECKING:  # kconfiglib is only imported where a Kconfig tree is evaluated
    import kconfiglib

_ASSIGNMENT = re.compile(r"^([A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# ([A-Za-z0-9_]+) is not set$")


class SymbolCheckError(UserError):
    """Symbols the layers asked for did not survive configuration (with --strict)."""


def read_dotconfig(path: Path) -> dict[str, str]:
    """A .config as {symbol: value as written}; `# X is not set` reads as 'n'."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UserError(f"cannot read the resolved configuration: {error.strerror}",
                        where=display_path(path)) from None
    values: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        unset = _UNSET.match(line)
        if unset:
            values[unset.group(1)] = "n"
            continue
        assignment = _ASSIGNMENT.match(line)
        if assignment:
            values[assignment.group(1)] = assignment.group(2)
    return values


def _normal(value: str) -> str:
    """Compare values as Kconfig does: strings unquoted, numbers by value."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    try:
        return str(int(value, 0))
    except ValueError:
        return value


@dataclass(frozen=True)
class SymbolProblem:
    """One requested symbol whose resolved value differs from what its layer asked for."""

    setting: Setting  # what was asked, and where
    actual: str | None  # the resolved value as written in .config; None = absent
    reason: str  # why, as far as it is known

    @property
    def dropped(self) -> bool:
        return self.actual is None or (self.actual == "n" and self.setting.value != "n")

    def __str__(self) -> str:
        origin = self.setting.origin
        where = display_path(origin.path) + (f":{origin.line}" if origin.line else "")
        if self.actual is None:
            outcome = "dropped (absent from the resolved .config)"
        elif self.dropped:
            outcome = "dropped (resolved to 'is not set')"
        else:
            outcome = f"changed to {self.actual}"
        return (f"{where}: {self.setting.config_line} asked by layer {origin.layer} was "
                f"{outcome}: {self.reason}")


def compare_symbols(
    requested: Mapping[str, Setting],
    resolved: Mapping[str, str],
    model: "kconfiglib.Kconfig | None" = None,
    *,
    symbol_prefix: str = "",
) -> list[SymbolProblem]:
    """Every requested symbol whose value in `resolved` differs, in request order.

    `symbol_prefix` is the prefix the .config adds to the model's symbol names ("CONFIG_" for
    Linux, "" for Buildroot, whose symbols carry BR2_ in their own names).
    """
    problems: list[SymbolProblem] = []
    for name, setting in requested.items():
        actual = resolved.get(name)
        wanted = str(setting.value)
        if wanted == "n":
            if actual is None or actual == "n":
                continue
        elif actual is not None and _normal(actual) == _normal(wanted):
            continue
        reason = explain(name.removeprefix(symbol_prefix), wanted, model) if model else (
            "unknown symbol (misspelled, or not in this release) or unmet dependency"
            if actual is None else "a dependency, select or choice decided otherwise")
        problems.append(SymbolProblem(setting, actual, reason))
    return problems


def explain(name: str, wanted: str, model: "kconfiglib.Kconfig") -> str:
    """Why symbol `name` did not take value `wanted`, from an evaluated kconfiglib model."""
    import kconfiglib

    def named(sc: object) -> str:  # symbols as the .config spells them (CONFIG_ for Linux)
        if isinstance(sc, kconfiglib.Symbol) and not sc.is_constant:
            return model.config_prefix + sc.name
        return kconfiglib.standard_sc_expr_str(sc)

    def text(expr: object) -> str:
        return kconfiglib.expr_str(expr, named)

    sym = model.syms.get(name)
    if sym is None or not sym.nodes:
        close = difflib.get_close_matches(name, [s for s, v in model.syms.items() if v.nodes],
                                          n=1, cutoff=0.8)
        hint = f"; did you mean {model.config_prefix}{close[0]}?" if close else ""
        return f"unknown symbol{hint}"
    if kconfiglib.expr_value(sym.direct_dep) == 0:
        unmet = [text(term)
                 for term in kconfiglib.split_expr(sym.direct_dep, kconfiglib.AND)
                 if kconfiglib.expr_value(term) == 0]
        return "unmet dependency: depends on " + " && ".join(unmet)
    if sym.choice is not None and sym.choice.selection not in (None, sym):
        return f"another choice member is selected: {model.config_prefix}{sym.choice.selection.name}"
    if wanted == "n" and kconfiglib.expr_value(sym.rev_dep) > 0:
        selectors = [text(term)
                     for term in kconfiglib.split_expr(sym.rev_dep, kconfiglib.OR)
                     if kconfiglib.expr_value(term) > 0]
        return "forced on by select from " + ", ".join(selectors)
    if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE) and wanted not in ("y", "m", "n"):
        return f"type mismatch: {name} is a {kconfiglib.TYPE_TO_STR[sym.orig_type]}"
    if sym.orig_type in (kconfiglib.INT, kconfiglib.HEX):
        for low, high, cond in sym.ranges:
            if kconfiglib.expr_value(cond) and not (
                    _number(low.str_value) <= _number(wanted) <= _number(high.str_value)):
                return f"out of range {low.str_value}..{high.str_value}"
    if not sym.visibility:
        return "not user-settable here (no prompt is visible); its default applies"
    if wanted == "m" and sym.orig_type == kconfiglib.BOOL:
        return "type mismatch: bool cannot be m"
    return f"the configuration resolved it to {sym.str_value or 'n'}"


def _number(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        return 0


@contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """kconfiglib reads its inputs (srctree, option env, $VARS in source) from os.environ."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _linux_compatible_kconfig() -> type:
    """kconfiglib 14.1 (its last release) predates Linux's `modules` keyword (5.13+, the
    former `option modules`); this reads Linux's Kconfig files with the old spelling."""
    import io

    import kconfiglib

    class LinuxKconfig(kconfiglib.Kconfig):
        def _open(self, filename, mode):
            handle = super()._open(filename, mode)
            if "r" not in mode:  # also used to write .config files
                return handle
            text = handle.read()
            handle.close()
            return io.StringIO(re.sub(r"(?m)^(\s+)modules\s*$", r"\1option modules", text))

    return LinuxKconfig


def load_model(
    kconfig_file: Path, *, env: Mapping[str, str] | None = None, config: Path | None = None,
    linux: bool = False,
) -> "kconfiglib.Kconfig":
    """Parse a Kconfig tree with kconfiglib and (optionally) load a resolved .config into it."""
    import kconfiglib

    kind = _linux_compatible_kconfig() if linux else kconfiglib.Kconfig
    with _environment(dict(env or {})):
        try:
            model = kind(str(kconfig_file), warn=False)
            if config is not None:
                model.load_config(str(config), replace=True)
        except kconfiglib.KconfigError as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else "parse error"
            raise UserError(f"cannot evaluate Kconfig tree: {first}",
                            where=display_path(kconfig_file)) from None
        except OSError as error:
            raise UserError(f"cannot read Kconfig tree: {error}",
                            where=display_path(kconfig_file)) from None
    return model


def evaluate_defconfig(
    kconfig_file: Path, defconfig: Path, output: Path, *, env: Mapping[str, str] | None = None,
    linux: bool | None = None,
) -> "kconfiglib.Kconfig":
    """`make defconfig` without make: resolve `defconfig` against the tree and write `output`.

    `linux` (default: when the .config prefix is CONFIG_) reads Linux's newer Kconfig syntax.
    """
    if linux is None:
        linux = (env or {}).get("CONFIG_", os.environ.get("CONFIG_", "CONFIG_")) == "CONFIG_"
    model = load_model(kconfig_file, env=env, config=defconfig, linux=linux)
    with _environment(dict(env or {})):
        model.write_config(str(output), save_old=False)
    return model


def format_report(problems: list[SymbolProblem], what: str) -> str:
    """A readable block for the terminal: one line per problem."""
    if not problems:
        return f"{what}: every symbol the layers asked for is set as asked"
    lines = [f"{what}: {len(problems)} symbol(s) dropped or changed:"]
    lines += [f"  {problem}" for problem in problems]
    return "\n".join(lines)


def fail_if_strict(problems: list[SymbolProblem], what: str, strict: bool) -> None:
    """With --strict, the first problem becomes the one-line error (the report lists all)."""
    if strict and problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise SymbolCheckError(f"{what} (--strict): {problems[0]}{more}")
