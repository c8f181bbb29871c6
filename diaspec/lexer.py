"""The contextual lexer of DiaSpec for Lark's LALR parser, built from the grammar's own terminals.

Lark's stock contextual lexer tries a regular expression per token; a user-sized design (60,000
devices, 2.4 MB) must check interactively, so this lexer scans with one master expression and
picks a word's terminal from what the parser state accepts (keywords stay soft: `on` is a name
where a name stands). Tokens carry their file and the comment block right before them (the
docstring of a declaration), so the transformer needs no state of its own.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from lark import Token
from lark.exceptions import UnexpectedCharacters
from lark.common import LexerConf
from lark.lexer import Lexer, PatternStr

WORD_TERMINAL = "NAME"  # the grammar's identifier; keywords are the other terminals a word can be
# a regular-expression terminal made only of alternative words, e.g. PUBLISH_MODE, TIME_UNIT
_WORDS_ONLY = re.compile(r"\(\?:[A-Za-z_]\w*(?:\|[A-Za-z_]\w*)*\)|[A-Za-z_]\w*(?:\|[A-Za-z_]\w*)*")


class SpecText(str):
    """The text of one spec file, carrying the file's name to every token (see SpecToken)."""

    file: str

    def __new__(cls, text: str, file: str) -> "SpecText":
        made = super().__new__(cls, text)
        made.file = file
        return made


class SpecToken(Token):
    """A token that knows its file and the comments right before it (no blank line between)."""

    __slots__ = ("file", "comments")

    file: str
    comments: tuple[str, ...]

    # a token never spans lines: its end follows from its start (three fewer stores per token)
    @property  # type: ignore[override]
    def end_line(self) -> int:
        return self.line

    @property  # type: ignore[override]
    def end_column(self) -> int:
        return self.column + len(self.value)

    @property  # type: ignore[override]
    def end_pos(self) -> int:
        return self.start_pos + len(self.value)


@dataclass(frozen=True)
class _Scanner:
    master: re.Pattern[str]
    punctuation: dict[str, str]  # literal text -> terminal name
    other: dict[str, str]  # master-expression group -> terminal name (NUMBER, STRING, ...)
    keywords: dict[str, tuple[str, ...]]  # word -> the terminals it can be (NAME last)
    ignored_comment_groups: frozenset[str]


def _scanner(conf: LexerConf) -> _Scanner:
    ignored = set(conf.ignore)
    punctuation: dict[str, str] = {}
    words: list[tuple[int, str, list[str]]] = []
    groups: list[tuple[str, str]] = []
    other: dict[str, str] = {}
    comment_groups: set[str] = set()
    word_re = ""
    for number, terminal in enumerate(conf.terminals):
        regexp = terminal.pattern.to_regexp()
        group = f"g{number}"
        if terminal.name == WORD_TERMINAL:
            word_re = regexp
        elif isinstance(terminal.pattern, PatternStr) and not re.fullmatch(r"[A-Za-z_]\w*", terminal.pattern.value):
            punctuation[terminal.pattern.value] = terminal.name
        elif isinstance(terminal.pattern, PatternStr):
            words.append((0, terminal.name, [terminal.pattern.value]))
        elif _WORDS_ONLY.fullmatch(terminal.pattern.value):
            # literal keywords before word alternations (PUBLISH_MODE), as Lark's priorities do
            words.append((1, terminal.name, terminal.pattern.value.removeprefix("(?:").removesuffix(")").split("|")))
        else:
            groups.append((group, regexp))
            if terminal.name in ignored:
                if "COMMENT" in terminal.name:
                    comment_groups.add(group)
            else:
                other[group] = terminal.name
    parts = [f"(?P<{group}>{regexp})" for group, regexp in groups]
    parts.append(f"(?P<word>{word_re})")
    parts += [re.escape(text) for text in sorted(punctuation, key=len, reverse=True)]
    parts.append(r"(?P<bad>[\s\S])")  # any other character (not DOTALL: the grammar's `(.|\n)*?`
    # comment pattern would become ambiguous and backtrack exponentially on an unclosed `/*`)
    master = re.compile("|".join(f"(?:{p})" for p in parts))
    keywords: dict[str, tuple[str, ...]] = {}
    for _, name, spellings in sorted(words, key=lambda w: w[0]):
        for word in spellings:
            keywords[word] = keywords.get(word, ()) + (name,)
    keywords = {word: names + (WORD_TERMINAL,) for word, names in keywords.items()}
    return _Scanner(master, punctuation, other, keywords, frozenset(comment_groups))


class SpecLexer(Lexer):
    """Lark custom lexer (interface 1: it sees the parser state, like Lark's contextual lexer)."""

    __future_interface__ = 1

    def __init__(self, conf: LexerConf) -> None:
        self.scanner = _scanner(conf)

    def lex(self, lexer_state, parser_state):  # noqa: ANN001 - Lark's interface
        text = lexer_state.text
        text = getattr(text, "text", text)
        file = getattr(text, "file", "<text>")
        scanner = self.scanner
        states = parser_state.parse_conf.states
        stack = parser_state.state_stack
        punctuation, other, comment_groups = scanner.punctuation, scanner.other, scanner.ignored_comment_groups
        keywords = scanner.keywords
        new_token = str.__new__
        line, line_start = 1, 0
        comments: list[str] = []
        for match in scanner.master.finditer(text):
            kind = match.lastgroup
            start = match.start()
            value = match.group()
            if kind == "word":
                candidates = keywords.get(value)
                if candidates is None:
                    terminal = WORD_TERMINAL
                else:
                    accepted = states[stack[-1]]
                    terminal = next((t for t in candidates if t in accepted), candidates[0])
            elif kind is None:
                terminal = punctuation[value]
            elif kind in other:
                terminal = other[kind]
            elif kind == "bad":
                raise UnexpectedCharacters(text, start, line, start - line_start + 1, state=stack[-1])
            else:  # whitespace or a comment
                newlines = value.count("\n")
                if kind in comment_groups:
                    comments.append(value)
                elif newlines > 1:
                    comments.clear()  # a blank line detaches a comment from what follows
                if newlines:
                    line += newlines
                    line_start = start + value.rfind("\n") + 1
                continue
            column = start - line_start + 1
            # Token's own constructor handles deprecated arguments; this is the hot path
            token = new_token(SpecToken, value)
            token.type, token.value, token.start_pos, token.line, token.column = terminal, value, start, line, column
            token.file = file
            if comments:
                token.comments = tuple(comments)
                comments.clear()
            else:
                token.comments = ()
            yield token


def code_end_before(scanner_lexer: SpecLexer, text: str, offset: int) -> tuple[int, int] | None:
    """(line, column) just after the last token that ends before `offset`, or None: where a
    missing `;` belongs (the parser only notices it at the next token, often on the next line)."""
    scanner = scanner_lexer.scanner
    line, line_start, found = 1, 0, None
    for match in scanner.master.finditer(text, 0, offset):
        kind, value = match.lastgroup, match.group()
        if kind == "bad":
            break
        if kind not in scanner.ignored_comment_groups and not value.isspace():
            found = (line, match.end() - line_start + 1)
        newlines = value.count("\n")
        if newlines:
            line += newlines
            line_start = match.start() + value.rfind("\n") + 1
    return found
