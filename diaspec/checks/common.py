"""Helpers every check pass uses: message wording, duplicate detection, graph cycles."""
from __future__ import annotations

from diaspec.diagnostics import Diagnostic, Pos
from diaspec.model import Name


def where(pos: Pos) -> str:
    return f"{pos.file}:{pos.line}:{pos.col}"


def article(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def error(pos: Pos, message: str) -> Diagnostic:
    return Diagnostic(pos, "error", message)


def warning(pos: Pos, message: str) -> Diagnostic:
    return Diagnostic(pos, "warning", message)


def duplicates(names: list[Name], what: str) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    if len(names) < 2:
        return found
    seen: dict[str, Name] = {}
    for name in names:
        if name.text in seen:
            found.append(error(name.pos, f"duplicate {what} '{name.text}' (first declared at {where(seen[name.text].pos)})"))
        else:
            seen[name.text] = name
    return found


def strongly_connected(edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm without recursion (designs can be large). Only nodes with edges can be
    on a cycle, so a caller passes only those."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index_of:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child_i = work.pop()
            if child_i == 0:
                index_of[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = edges.get(node, [])
            recursed = False
            while child_i < len(children):
                child = children[child_i]
                child_i += 1
                if child not in index_of:
                    work.append((node, child_i))
                    work.append((child, 0))
                    recursed = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index_of[child])
            if recursed:
                continue
            if low[node] == index_of[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                result.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return result


def cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components that hold a cycle (a self-loop counts)."""
    return [
        component for component in strongly_connected(edges)
        if len(component) > 1 or component[0] in edges.get(component[0], [])
    ]


def cycle_path(start: str, edges: dict[str, list[str]], members: set[str]) -> list[str]:
    """A shortest path start -> ... -> start inside one strongly connected component."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in edges.get(node, []):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return list(reversed(path)) + [start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return [start, start]
