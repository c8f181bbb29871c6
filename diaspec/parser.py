"""Read spec files (includes resolved) into the typed model with a Lark transformer (one method
per grammar rule); syntax problems become diagnostics."""
from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedCharacters, UnexpectedInput

from diaspec.diagnostics import Diagnostics, Pos, did_you_mean
from diaspec.lexer import SpecLexer, SpecText, code_end_before
from diaspec.model import (
    ActionDecl,
    Attribute,
    ContextInput,
    Context,
    Controller,
    ControllerContract,
    Declaration,
    Design,
    Device,
    Enumeration,
    Field,
    ImportType,
    Index,
    Input,
    Method,
    Name,
    Order,
    Param,
    Period,
    Source,
    SourceInput,
    Structure,
    TypeAlias,
    TypeRef,
    WhenPeriodic,
    WhenProvided,
    WhenRequired,
)

GRAMMAR = Path(__file__).with_name("grammar.lark")
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_INCLUDE_DEPTH = 100

# letters that look like ASCII ones in most fonts (what a pasted name usually hides)
_LOOKALIKES = {
    "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0443": "y", "\u0445": "x",
    "\u0456": "i", "\u0458": "j", "\u0455": "s", "\u0410": "A", "\u0412": "B", "\u0415": "E", "\u041a": "K",
    "\u041c": "M", "\u041d": "H", "\u041e": "O", "\u0420": "P", "\u0421": "C", "\u0422": "T", "\u0425": "X",
    "\u03bf": "o", "\u03b1": "a", "\u03bd": "v", "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u039f": "O",
    "\u03a1": "P", "\u03a4": "T", "\u03a7": "X", "\u00a0": "a space", "\u2013": "-", "\u2019": "'",
    "\u201c": '"', "\u201d": '"', "\uff1b": ";",
}


def _place(token: Token) -> Pos:
    return Pos(token.file, token.line, token.column)  # type: ignore[attr-defined]  # a SpecToken


def _name(token: Token) -> Name:
    return Name(token.value, Pos(token.file, token.line, token.column))  # type: ignore[attr-defined]


def _docstring(token: Token) -> str:
    """The comment block right before a declaration's keyword, without comment markers."""
    lines: list[str] = []
    for raw in getattr(token, "comments", ()):
        if raw.startswith("//"):
            lines.append(raw[2:].strip())
        else:
            for line in raw[2:-2].splitlines():
                line = line.strip()
                lines.append(line[1:].strip() if line.startswith("*") else line)
    return "\n".join(lines).strip()


@dataclass(frozen=True)
class Include:
    """`include "file";` (resolved by load_design, relative to the including file)."""

    target: str
    pos: Pos


@dataclass(frozen=True)
class _Indexed:
    indices: list[Index]


@dataclass(frozen=True)
class _Gets:
    inputs: list[Input]


class _Repeated:
    """What Lark splices into a rule from a repetition: only `.children` is read."""

    __slots__ = ("children",)

    def __init__(self, children: list) -> None:
        self.children = children


@dataclass(frozen=True)
class _Grouped:
    name: Name


class DesignBuilder(Transformer):
    """Parse tree to model, one method per grammar rule. Stateless: Lark runs it while parsing
    (no tree is built) and positions come from the tokens themselves. An optional part the text
    leaves out is simply absent (no placeholders): rules with several tell them apart by type."""

    def __default__(self, data: object, children: list, meta: object) -> "_Repeated":
        """Lark's internal rules for `x*` repetitions, which it splices into their parent rule."""
        return _Repeated(children)

    # ---- files and types ----------------------------------------------------------------------
    def start(self, children: list) -> list:
        return children

    def include(self, children: list) -> Include:
        (token,) = children
        try:
            target = json.loads(str(token))
        except ValueError:
            target = str(token)[1:-1]
        return Include(target, _place(token))

    def import_type(self, children: list) -> ImportType:
        keyword, name, dotted = children
        return ImportType(_name(name), dotted, _docstring(keyword))

    def type_alias(self, children: list) -> TypeAlias:
        keyword, name, target = children
        return TypeAlias(_name(name), target, _docstring(keyword))

    def enumeration(self, children: list) -> Enumeration:
        keyword, name, *values = children
        return Enumeration(_name(name), [_name(v) for v in values], _docstring(keyword))

    def structure(self, children: list) -> Structure:
        keyword, name, *fields = children
        return Structure(_name(name), fields, _docstring(keyword))

    def field(self, children: list) -> Field:
        name, type_ref = children
        return Field(_name(name), type_ref)

    def type_ref(self, children: list) -> TypeRef:
        name, *dims = children
        return TypeRef(str(name), len(dims), _place(name))

    def array_dim(self, children: list) -> None:
        return None

    def dotted_name(self, children: list) -> str:
        return ".".join(str(part) for part in children)

    # ---- taxonomy -----------------------------------------------------------------------------
    def action_decl(self, children: list) -> ActionDecl:
        keyword, name, *methods = children
        return ActionDecl(_name(name), methods, _docstring(keyword))

    def method(self, children: list) -> Method:
        name, *params = children
        return Method(_name(name), params)

    def param(self, children: list) -> Param:
        name, type_ref = children
        return Param(_name(name), type_ref)

    def device(self, children: list) -> Device:
        keyword, name, *members = children
        parents = members.pop(0) if members and isinstance(members[0], list) else []
        device = Device(_name(name), parents, [], [], [], _docstring(keyword), keyword=str(keyword))
        for member in members:
            if isinstance(member, Attribute):
                device.attributes.append(member)
            elif isinstance(member, Source):
                device.sources.append(member)
            else:
                device.actions.append(member)
        return device

    def extends(self, children: list) -> list[Name]:
        return [_name(token) for token in children]

    def attribute(self, children: list) -> Attribute:
        name, type_ref = children
        return Attribute(_name(name), type_ref)

    def source(self, children: list) -> Source:
        name, type_ref, *indexed = children
        return Source(_name(name), type_ref, indexed[0].indices if indexed else [])

    def uses_action(self, children: list) -> Name:
        (name,) = children
        return _name(name)

    def indexed_by(self, children: list) -> _Indexed:
        return _Indexed(children)

    def index(self, children: list) -> Index:
        name, type_ref = children
        return Index(_name(name), type_ref)

    # ---- contexts -----------------------------------------------------------------------------
    def context(self, children: list) -> Context:
        keyword, name, type_ref, *contracts = children
        indices = contracts.pop(0).indices if contracts and isinstance(contracts[0], _Indexed) else []
        return Context(_name(name), type_ref, indices, contracts, _docstring(keyword))

    def when_provided(self, children: list) -> WhenProvided:
        keyword, given, *gets, emission = children
        return WhenProvided(given, gets[0].inputs if gets else [], emission, _place(keyword))

    def when_required(self, children: list) -> WhenRequired:
        keyword, *gets = children
        return WhenRequired(gets[0].inputs if gets else [], _place(keyword))

    def when_periodic(self, children: list) -> WhenPeriodic:
        keyword, *parts, emission = children
        source = next((p for p in parts if isinstance(p, SourceInput)), None)
        period = next(p for p in parts if isinstance(p, Period))
        grouped = next((p.name for p in parts if isinstance(p, _Grouped)), None)
        gets = next((p.inputs for p in parts if isinstance(p, _Gets)), [])
        return WhenPeriodic(source, period, grouped, gets, emission, _place(keyword))

    def device_source(self, children: list) -> SourceInput:
        source, device = children
        return SourceInput(_name(source), _name(device))

    def context_ref(self, children: list) -> ContextInput:
        (name,) = children
        return ContextInput(_name(name))

    def get_clause(self, children: list) -> _Gets:
        return _Gets(children)

    def grouped_by(self, children: list) -> _Grouped:
        (name,) = children
        return _Grouped(_name(name))

    def period(self, children: list) -> Period:
        number, unit = children
        return Period(float(number), str(unit), _place(number))

    def publish(self, children: list) -> str:
        (mode,) = children
        return str(mode)

    # ---- controllers --------------------------------------------------------------------------
    def controller(self, children: list) -> Controller:
        keyword, name, *contracts = children
        return Controller(_name(name), contracts, _docstring(keyword))

    def controller_contract(self, children: list) -> ControllerContract:
        keyword, context, *orders = children
        return ControllerContract(_name(context), orders, _place(keyword))

    def order(self, children: list) -> Order:
        action, device = children
        return Order(_name(action), _name(device))


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(
        GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        lexer=SpecLexer,
        maybe_placeholders=False,
        transformer=DesignBuilder(),
    )


def _describe_terminal(name: str) -> str:
    """How a message shows an expected terminal: the keyword itself, or what kind of token."""
    readable = {
        "NAME": "a name",
        "NUMBER": "a number",
        "STRING": "a string",
        "PUBLISH_MODE": "'always', 'maybe' or 'no'",
        "TIME_UNIT": "a time unit (ms, s, min, h)",
        "DEVICE": "'device'",
        "$END": "end of file",
    }
    if name in readable:
        return readable[name]
    try:
        pattern = _lark().get_terminal(name).pattern
    except KeyError:
        return name
    return f"'{pattern.value}'"


def _keywords(terminals: set[str]) -> list[str]:
    """The literal keywords among expected terminals (what a misspelled keyword was meant to be)."""
    words = []
    for name in terminals:
        try:
            pattern = _lark().get_terminal(name).pattern
        except KeyError:
            continue
        values = pattern.value.strip("(?:)").split("|") if name != "NAME" else []
        words += [v for v in values if v.isidentifier()]
    return words


def _unexpected_character(text: str, error: UnexpectedCharacters) -> str:
    char = error.char
    if text.startswith("/*", error.pos_in_stream):
        return "unclosed comment: '/*' has no matching '*/'"
    if char.isascii():
        shown = repr(char)[1:-1] if char.isprintable() else f"\\x{ord(char):02x}"
        return f"unexpected character '{shown}'"
    name = unicodedata.name(char, "unnamed character")
    looks = _LOOKALIKES.get(char)
    hint = f", which looks like '{looks}'" if looks and len(looks) == 1 else f", which looks like {looks}" if looks else ""
    shown = char if char.isprintable() else ""
    return (f"unexpected character '{shown}' (U+{ord(char):04X} {name}{hint}); "
            "names use ASCII letters, digits and '_'")


def _expected(error: UnexpectedInput) -> set[str]:
    terminals = set(getattr(error, "expected", set()) or set())
    interactive = getattr(error, "interactive_parser", None)
    if interactive is not None:
        try:  # what the parser state really accepts (LALR lookahead sets are wider)
            terminals = set(interactive.accepts()) or terminals
        except Exception:  # noqa: BLE001 - a better message is optional, a crash is not
            pass
    return terminals


def _syntax_error(text: str, file: str, error: UnexpectedInput) -> tuple[Pos, str]:
    """Where a syntax error is and one line saying what was expected there."""
    if isinstance(error, UnexpectedCharacters):
        return Pos(file, error.line, error.column), _unexpected_character(text, error)
    terminals = _expected(error)
    expected = sorted({_describe_terminal(t) for t in terminals})
    suffix = f", expected {', '.join(expected[:8])}" if expected else ""
    if len(expected) > 8:
        suffix += ", ..."
    token = getattr(error, "token", None)
    at_end = token is None or token.type == "$END"
    line, col = _position_of_offset(text, len(text)) if at_end else (token.line, token.column)
    if not at_end and ";" in {_describe_terminal(t).strip("'") for t in terminals}:
        before = code_end_before(_spec_lexer(), text, token.start_pos)
        if before is not None and before[0] < token.line:
            # the parser notices a missing ';' at the next token; it belongs where the line ends
            return Pos(file, *before), f"missing ';' at the end of this line{suffix} (the next line starts with '{str(token)[:40]}')"
    if at_end:
        return Pos(file, line, col), f"unexpected end of file{suffix}"
    message = f"unexpected '{str(token)[:40]}'{suffix}"
    if token.type in ("NAME",) or str(token).isidentifier():
        message += did_you_mean(str(token), _keywords(terminals))
    return Pos(file, line, col), message


@lru_cache(maxsize=1)
def _spec_lexer() -> SpecLexer:
    return SpecLexer(_lark().lexer_conf)


def _position_of_offset(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col


def read_spec_text(path: str, diags: Diagnostics, where: Pos) -> str | None:
    """The text of a spec file, or None after a diagnostic (missing, binary, not UTF-8, huge)."""
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            diags.error(where, f"'{path}' is too large for a spec ({size} bytes)")
            return None
        data = Path(path).read_bytes()
    except IsADirectoryError:
        diags.error(where, f"cannot read '{path}': it is a directory")
        return None
    except OSError as error:
        diags.error(where, f"cannot read '{path}': {error.strerror or error}")
        return None
    if b"\x00" in data:
        line, col = _position_of_offset(data.decode("latin-1"), data.index(b"\x00"))
        diags.error(Pos(path, line, col), "binary file, not a DiaSpec spec (found a NUL byte)")
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line, col = _position_of_offset(data[: error.start].decode("utf-8", "replace"), error.start)
        diags.error(Pos(path, line, col), "file is not UTF-8 text")
        return None


def parse_text(text: str, file: str, diags: Diagnostics) -> tuple[list[Declaration], list[tuple[str, Pos]]]:
    """Declarations and `(include path, position)` pairs of one file's text."""
    try:
        items = _lark().parse(SpecText(text, file))
    except UnexpectedInput as error:
        pos, message = _syntax_error(text, file, error)
        diags.error(pos, message)
        return [], []
    declarations = [item for item in items if not isinstance(item, Include)]
    includes = [(item.target, item.pos) for item in items if isinstance(item, Include)]
    return declarations, includes


def load_design(path: str | os.PathLike[str], diags: Diagnostics) -> Design:
    """Read a spec and everything it includes (each file once, cycles reported)."""
    main = os.path.normpath(str(path))
    design = Design(main_file=main)
    loaded: set[str] = set()

    def visit(display: str, chain: list[tuple[str, str]], where: Pos) -> None:
        real = os.path.realpath(display)
        chain_reals = [r for _, r in chain]
        if real in chain_reals:
            names = [d for d, _ in chain[chain_reals.index(real) :]] + [display]
            diags.error(where, "include cycle: " + " -> ".join(names))
            return
        if real in loaded:
            return
        if len(chain) >= MAX_INCLUDE_DEPTH:
            diags.error(where, f"includes nested deeper than {MAX_INCLUDE_DEPTH} files")
            return
        loaded.add(real)
        text = read_spec_text(display, diags, where)
        if text is None:
            return
        design.files.append(display)
        design.source_text[display] = text
        declarations, includes = parse_text(text, display, diags)
        for target, pos in includes:
            included = os.path.normpath(os.path.join(os.path.dirname(display), target))
            visit(included, chain + [(display, real)], pos)
        design.declarations.extend(declarations)

    visit(main, [], Pos(main, 1, 1))
    return design
