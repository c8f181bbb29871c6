"""Jinja2 environment of the generators: every generated file is a template under templates/
(python/, c/, ros2/, new/, graph/); generators compute names and types, templates lay them out."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

from diaspec import naming


def _docstring(text: str, indent: str = "    ") -> str:
    """A triple-quoted docstring line (empty text gives nothing) safe from quotes and backslashes."""
    if not text:
        return ""
    body = text.replace("\\", "\\\\").replace('"""', "'''")
    if body.endswith('"'):
        body += " "  # a `"` right before the closing quotes would end the string early
    return f'{indent}"""{body}"""'


def _dot_string(text: str) -> str:
    """A quoted Graphviz ID."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("diaspec", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters.update(
        pyrepr=repr,
        py_name=naming.py_name,
        py_ident=naming.py_ident,
        c_ident=naming.c_ident,
        snake=naming.snake,
        docstring=_docstring,
        dot=_dot_string,
    )
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
