"""Read spec files (includes resolved) into the typed model; syntax problems become diagnostics."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from diaspec.diagnostics import Diagnostics, Pos
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


@dataclass
class _Comment:
    start: int
    end: int
    text: str


class _CommentSink:
    """Where the lexer drops the comments of the file being parsed (they become docstrings)."""

    comments: list[_Comment] = []

    @classmethod
    def take(cls, token: Token) -> Token:
        cls.comments.append(_Comment(token.start_pos or 0, token.end_pos or 0, str(token)))
        return token


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(
        GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"C_COMMENT": _CommentSink.take, "CPP_COMMENT": _CommentSink.take},
    )


def _describe_terminal(name: str) -> str:
    """How a message shows an expected terminal: the keyword itself, or what kind of token."""
    readable = {
        "NAME": "a name",
        "NUMBER": "a number",
        "STRING": "a string",
        "PUBLISH_MODE": "'always', 'maybe' or 'no'",
        "TIME_UNIT": "a time unit (ms, s, min, h)",
        "$END": "end of file",
    }
    if name in readable:
        return readable[name]
    try:
        pattern = _lark().get_terminal(name).pattern
    except KeyError:
        return name
    return f"'{pattern.value}'"


def _syntax_message(error: UnexpectedInput) -> str:
    if isinstance(error, UnexpectedCharacters):
        char = error.char
        shown = repr(char)[1:-1] if char.isprintable() else f"\\x{ord(char):02x}" if ord(char) < 256 else repr(char)
        return f"unexpected character '{shown}'"
    terminals = getattr(error, "expected", set()) or set()
    interactive = getattr(error, "interactive_parser", None)
    if interactive is not None:
        try:  # what the parser state really accepts (LALR lookahead sets are wider)
            terminals = interactive.accepts() or terminals
        except Exception:  # noqa: BLE001 - a better message is optional, a crash is not
            pass
    expected = sorted({_describe_terminal(t) for t in terminals})
    suffix = f", expected {', '.join(expected[:8])}" if expected else ""
    if len(expected) > 8:
        suffix += ", ..."
    if isinstance(error, UnexpectedEOF):
        return f"unexpected end of file{suffix}"
    if isinstance(error, UnexpectedToken):
        token = error.token
        if token.type == "$END":
            return f"unexpected end of file{suffix}"
        return f"unexpected '{str(token)[:40]}'{suffix}"
    return "syntax error"


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


class _Converter:
    """Turns one file's parse tree into model declarations."""

    def __init__(self, file: str, text: str, comments: list[_Comment]) -> None:
        self.file = file
        self.text = text
        self.comments = comments

    def pos(self, token: Token) -> Pos:
        return Pos(self.file, token.line or 1, token.column or 1)

    def meta_pos(self, tree: Tree) -> Pos:
        return Pos(self.file, getattr(tree.meta, "line", 1), getattr(tree.meta, "column", 1))

    def name(self, token: Token) -> Name:
        return Name(str(token), self.pos(token))

    def doc(self, tree: Tree) -> str:
        """The comment block right before a declaration (only whitespace between)."""
        start = getattr(tree.meta, "start_pos", None)
        if start is None:
            return ""
        parts: list[str] = []
        end = start
        for comment in reversed(self.comments):
            if comment.end > end:
                continue
            gap = self.text[comment.end : end]
            if gap.strip() or gap.count("\n") > 1:  # a blank line detaches a comment
                break
            parts.append(comment.text)
            end = comment.start
        lines: list[str] = []
        for raw in reversed(parts):
            if raw.startswith("//"):
                lines.append(raw[2:].strip())
            else:
                for line in raw[2:-2].splitlines():
                    line = line.strip()
                    lines.append(line[1:].strip() if line.startswith("*") else line)
        return "\n".join(line for line in lines if line or lines).strip()

    @staticmethod
    def kids(tree: Tree) -> list:
        return [c for c in tree.children if c is not None]

    def type_ref(self, tree: Tree) -> TypeRef:
        name = tree.children[0]
        return TypeRef(str(name), len(tree.children) - 1, self.pos(name))

    def indices(self, tree: Tree | None) -> list[Index]:
        if tree is None:
            return []
        return [Index(self.name(i.children[0]), self.type_ref(i.children[1])) for i in tree.children]

    def input(self, tree: Tree) -> Input:
        if tree.data == "device_source":
            return SourceInput(self.name(tree.children[0]), self.name(tree.children[1]))
        return ContextInput(self.name(tree.children[0]))

    def gets(self, tree: Tree | None) -> list[Input]:
        return [] if tree is None else [self.input(c) for c in tree.children]

    def declaration(self, tree: Tree) -> Declaration:
        kind = tree.data
        kids = tree.children
        doc = self.doc(tree)
        if kind == "import_type":
            target = ".".join(str(t) for t in kids[1].children)
            return ImportType(self.name(kids[0]), target, doc)
        if kind == "type_alias":
            return TypeAlias(self.name(kids[0]), self.type_ref(kids[1]), doc)
        if kind == "enumeration":
            values = [self.name(t) for t in kids[1:] if isinstance(t, Token) and t.type == "NAME"]
            return Enumeration(self.name(kids[0]), values, doc)
        if kind == "structure":
            fields = [Field(self.name(f.children[0]), self.type_ref(f.children[1])) for f in kids[1:]]
            return Structure(self.name(kids[0]), fields, doc)
        if kind == "action_decl":
            methods = []
            for m in kids[1:]:
                params = [
                    Param(self.name(p.children[0]), self.type_ref(p.children[1]))
                    for p in self.kids(m)[1:]
                ]
                methods.append(Method(self.name(m.children[0]), params))
            return ActionDecl(self.name(kids[0]), methods, doc)
        if kind == "device":
            parents = [self.name(t) for t in kids[1].children] if kids[1] is not None else []
            device = Device(self.name(kids[0]), parents, [], [], [], doc)
            keyword_at = getattr(tree.meta, "start_pos", None)
            if keyword_at is not None and self.text.startswith("entity", keyword_at):
                device.keyword = "entity"
            for member in kids[2:]:
                if member.data == "attribute":
                    device.attributes.append(
                        Attribute(self.name(member.children[0]), self.type_ref(member.children[1]))
                    )
                elif member.data == "source":
                    device.sources.append(
                        Source(
                            self.name(member.children[0]),
                            self.type_ref(member.children[1]),
                            self.indices(member.children[2]),
                        )
                    )
                else:
                    device.actions.append(self.name(member.children[0]))
            return device
        if kind == "context":
            contracts = [self.contract(c) for c in kids[3:]]
            return Context(
                self.name(kids[0]), self.type_ref(kids[1]), self.indices(kids[2]), contracts, doc
            )
        if kind == "controller":
            contracts = []
            for c in kids[1:]:
                orders = [Order(self.name(o.children[0]), self.name(o.children[1])) for o in c.children[1:]]
                contracts.append(ControllerContract(self.name(c.children[0]), orders, self.meta_pos(c)))
            return Controller(self.name(kids[0]), contracts, doc)
        raise AssertionError(f"unknown declaration {kind}")  # the grammar has no other

    def contract(self, tree: Tree):
        kids = tree.children
        pos = self.meta_pos(tree)
        if tree.data == "when_provided":
            return WhenProvided(self.input(kids[0]), self.gets(kids[1]), str(kids[2].children[0]), pos)
        if tree.data == "when_required":
            return WhenRequired(self.gets(kids[0]), pos)
        source = self.input(kids[0]) if kids[0] is not None else None
        number, unit = kids[1].children
        period = Period(float(number), str(unit), self.pos(number))
        grouped = self.name(kids[2].children[0]) if kids[2] is not None else None
        return WhenPeriodic(source, period, grouped, self.gets(kids[3]), str(kids[4].children[0]), pos)


def parse_text(text: str, file: str, diags: Diagnostics) -> tuple[list[Declaration], list[tuple[str, Pos]]]:
    """Declarations and `(include path, position)` pairs of one file's text."""
    _CommentSink.comments = []
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as error:
        line, col = getattr(error, "line", -1), getattr(error, "column", -1)
        at_end = isinstance(error, UnexpectedEOF) or (
            isinstance(error, UnexpectedToken) and error.token.type == "$END"
        )
        if at_end or not isinstance(line, int) or line < 1:
            line, col = _position_of_offset(text, len(text))
        diags.error(Pos(file, line, col if isinstance(col, int) and col > 0 else 1), _syntax_message(error))
        return [], []
    converter = _Converter(file, text, sorted(_CommentSink.comments, key=lambda c: c.start))
    _CommentSink.comments = []
    declarations: list[Declaration] = []
    includes: list[tuple[str, Pos]] = []
    for child in tree.children:
        if child.data == "include":
            token = child.children[0]
            try:
                target = json.loads(str(token))
            except ValueError:
                target = str(token)[1:-1]
            includes.append((target, converter.pos(token)))
        else:
            declarations.append(converter.declaration(child))
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
