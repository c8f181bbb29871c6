"""Parse, edit and print opt's textual pass pipelines (so `-Oz` can be edited as a sequence)."""
from __future__ import annotations

import functools
from dataclasses import dataclass

from fleetforge.tools import run_tool
from ml_tuner import llvm


@dataclass(frozen=True)
class Element:
    """One pipeline element: `name<params>(children)`; params and children optional."""

    name: str
    params: str = ""
    children: tuple["Element", ...] | None = None

    def text(self) -> str:
        out = self.name + (f"<{self.params}>" if self.params else "")
        if self.children is not None:
            out += "(" + ",".join(c.text() for c in self.children) + ")"
        return out


def parse(text: str) -> tuple[Element, ...]:
    """Parse `a,b<x>,function(c,d)` into elements."""
    elements, pos = _parse_list(text, 0)
    if pos != len(text):
        raise ValueError(f"unexpected {text[pos:pos + 20]!r} in pipeline")
    return elements


def _parse_list(text: str, pos: int) -> tuple[tuple[Element, ...], int]:
    items: list[Element] = []
    while pos < len(text) and text[pos] != ")":
        start = pos
        while pos < len(text) and text[pos] not in "<(,)":
            pos += 1
        name = text[start:pos]
        params = ""
        if pos < len(text) and text[pos] == "<":
            depth, begin = 0, pos
            while True:
                depth += {"<": 1, ">": -1}.get(text[pos], 0)
                pos += 1
                if depth == 0:
                    break
            params = text[begin + 1:pos - 1]
        children = None
        if pos < len(text) and text[pos] == "(":
            children, pos = _parse_list(text, pos + 1)
            pos += 1  # the closing parenthesis
        items.append(Element(name, params, children))
        if pos < len(text) and text[pos] == ",":
            pos += 1
    return tuple(items), pos


def render(elements: tuple[Element, ...]) -> tuple[str, ...]:
    """Top-level elements as the pass-sequence items the measurement takes."""
    return tuple(e.text() for e in elements)


def drop(elements: tuple[Element, ...], names: frozenset[str]) -> tuple[Element, ...]:
    """Remove every element whose `name` or `name<params>` is in `names`, at any depth.

    Containers left empty (a `loop()` with nothing inside) are removed too: opt rejects them.
    """
    out: list[Element] = []
    for element in elements:
        full = element.name + (f"<{element.params}>" if element.params else "")
        if element.name in names or full in names:
            continue
        if element.children is not None:
            children = drop(element.children, names)
            if not children:
                continue
            element = Element(element.name, element.params, children)
        out.append(element)
    return tuple(out)


@functools.lru_cache(maxsize=8)
def expand(level: str = "Oz") -> tuple[Element, ...]:
    """The pinned opt's own expansion of `default<level>` (asked from opt, not copied here)."""
    text = run_tool(
        [llvm.OPT, f"-passes=default<{level}>", "-print-pipeline-passes", "-disable-output",
         "/dev/null"],
        debian_package=llvm.LLVM_PACKAGE,
    ).strip().splitlines()[-1]
    return parse(text)
