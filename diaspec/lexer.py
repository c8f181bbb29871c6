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


# The ignored WS terminal's characters other than a newline. The master expression skips them in
# front of every token, so the space between two tokens costs no scan step of its own; whitespace
# with a newline still goes through WS (lines are counted there, blank lines detach comments).
HORIZONTAL_SPACE = "[ \\t\\f\\r]"


@dataclass(frozen=True)
class _Scanner:
    """The master expression and what each of its groups is, by group number (`match[number]`
    and `match.lastindex` are the cheapest ways to read a match)."""

    master: re.Pattern[str]
    fixed: dict[int, str]  # group -> terminal, for tokens the parser state cannot change (`{`, NUMBER)
    word_group: int
    bad_group: int  # a character no terminal starts with
    keywords: dict[str, tuple[str, ...]]  # word -> the terminals it can be (NAME last)
    comment_groups: frozenset[int]
    ignored_groups: frozenset[int]


def _scanner(conf: LexerConf) -> _Scanner:
    ignored = set(conf.ignore)
    punctuation: dict[str, str] = {}
    words: list[tuple[int, str, list[str]]] = []
    groups: list[tuple[str, str]] = []
    fixed: dict[str, str] = {}
    comment_groups: set[str] = set()
    ignored_groups: set[str] = set()
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
                ignored_groups.add(group)
                if "COMMENT" in terminal.name:
                    comment_groups.add(group)
            else:
                fixed[group] = terminal.name
    # Words first, then punctuation: the most frequent tokens are tried first. The order changes
    # nothing else, as no two alternatives start with the same character (a word starts with a
    # letter or `_`; punctuation, numbers, strings, comments and spaces never do).
    clash = [text for text in punctuation if re.match(word_re, text)]
    if clash:  # a grammar change this lexer does not handle: say so at start-up, not in a parse
        raise ValueError(f"grammar punctuation that starts like a word: {clash}")
    parts = [f"(?P<word>{word_re})"]
    for number, text in enumerate(sorted(punctuation, key=len, reverse=True)):
        parts.append(f"(?P<p{number}>{re.escape(text)})")
        fixed[f"p{number}"] = punctuation[text]
    parts += [f"(?P<{group}>{regexp})" for group, regexp in groups]
    parts.append(r"(?P<bad>[\s\S])")  # any other character (not DOTALL: the grammar's `(.|\n)*?`
    # comment pattern would become ambiguous and backtrack exponentially on an unclosed `/*`)
    master = re.compile(f"{HORIZONTAL_SPACE}*(?:" + "|".join(parts) + ")")
    keywords: dict[str, tuple[str, ...]] = {}
    for _, name, spellings in sorted(words, key=lambda w: w[0]):
        for word in spellings:
            keywords[word] = keywords.get(word, ()) + (name,)
    keywords = {word: names + (WORD_TERMINAL,) for word, names in keywords.items()}
    number = master.groupindex
    return _Scanner(master, {number[g]: terminal for g, terminal in fixed.items()}, number["word"], number["bad"],
                    keywords, frozenset(number[g] for g in comment_groups), frozenset(number[g] for g in ignored_groups))


class SpecLexer(Lexer):
    """Lark custom lexer (interface 1: it sees the parser state, like Lark's contextual lexer)."""

    __future_interface__ = 1

    def __init__(self, conf: LexerConf) -> None:
        self.scanner = _scanner(conf)
        self.terminals = conf.terminals
        self._words_by_state: tuple[object, dict] = (None, {})
        self._dropped: tuple[object, dict] = (None, {})

    def words_by_state(self, states: dict) -> dict:
        """parser state -> {keyword: the terminal it is there}: the first of its terminals the state
        accepts, else its keyword terminal (the parser then reports it); other words are NAMEs."""
        cached_for, table = self._words_by_state
        if cached_for is not states:
            keywords = self.scanner.keywords
            table = {state: {word: next((t for t in candidates if t in accepted), candidates[0])
                             for word, candidates in keywords.items()}
                     for state, accepted in states.items()}
            self._words_by_state = (states, table)
        return table

    def shared_tokens(self, parse_table, file: str) -> dict[str, SpecToken]:
        """One token per terminal that no rule keeps (punctuation, inline keywords such as `as`):
        the parser reads only its type, and its place when it reports an error at it, so the lexer
        moves one token along instead of making one per occurrence."""
        cached_for, dropped = self._dropped
        if cached_for is not parse_table:
            kept, seen = set(), set()
            for actions in parse_table.states.values():
                for action, rule in actions.values():
                    if isinstance(rule, int):
                        continue
                    for symbol in rule.expansion:
                        if symbol.is_term:
                            seen.add(symbol.name)
                            if not symbol.filter_out or rule.options.keep_all_tokens:
                                kept.add(symbol.name)
            literal = {t.name: t.pattern.value for t in self.terminals if isinstance(t.pattern, PatternStr)}
            dropped = {name: literal[name] for name in seen - kept if name in literal}
            self._dropped = (parse_table, dropped)
        shared = {}
        for terminal, value in dropped.items():
            token = str.__new__(SpecToken, value)
            token.type, token.value, token.file, token.comments = terminal, value, file, ()
            shared[terminal] = token
        return shared

    def lex(self, lexer_state, parser_state):  # noqa: ANN001 - Lark's interface
        text = lexer_state.text
        text = getattr(text, "text", text)
        file = getattr(text, "file", "<text>")
        scanner = self.scanner
        stack = parser_state.state_stack
        words = self.words_by_state(parser_state.parse_conf.states)
        shared = self.shared_tokens(parser_state.parse_conf.parse_table, file)
        fixed, comment_groups = scanner.fixed, scanner.comment_groups
        word_group, bad_group = scanner.word_group, scanner.bad_group
        new_token = str.__new__
        line, line_start = 1, 0
        comments: list[str] = []
        for match in scanner.master.finditer(text):
            kind = match.lastindex
            value = match[kind]
            terminal = fixed.get(kind)
            if terminal is None:
                if kind == word_group:
                    terminal = words[stack[-1]].get(value, WORD_TERMINAL)
                elif kind == bad_group:
                    start = match.start(kind)
                    raise UnexpectedCharacters(text, start, line, start - line_start + 1, state=stack[-1])
                else:  # whitespace with a newline, or a comment
                    newlines = value.count("\n")
                    if kind in comment_groups:
                        comments.append(value)
                    elif newlines > 1:
                        comments.clear()  # a blank line detaches a comment from what follows
                    if newlines:
                        line += newlines
                        line_start = match.start(kind) + value.rfind("\n") + 1
                    continue
            start = match.start(kind)
            token = shared.get(terminal)
            if token is not None:  # a token the transformer never sees: only its place changes
                token.start_pos, token.line, token.column = start, line, start - line_start + 1
                if comments:
                    comments.clear()
                yield token
                continue
            # Token's own constructor handles deprecated arguments; this is the hot path
            token = new_token(SpecToken, value)
            token.type, token.value, token.start_pos, token.line, token.column = terminal, value, start, line, start - line_start + 1
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
        kind = match.lastindex
        value = match[kind]
        if kind == scanner.bad_group:
            break
        if kind not in scanner.ignored_groups:
            found = (line, match.end() - line_start + 1)
        newlines = value.count("\n")
        if newlines:
            line += newlines
            line_start = match.start(kind) + value.rfind("\n") + 1
    return found
