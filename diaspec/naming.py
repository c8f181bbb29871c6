"""How design names become Python and C identifiers (snake_case methods, safe from keywords)."""
from __future__ import annotations

import keyword
import re

_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if "
    "inline int long register restrict return short signed sizeof static struct switch typedef "
    "union unsigned void volatile while bool true false main NULL "
    # names the generated C uses from <stddef.h>, <stdint.h> and <string.h>
    "size_t int32_t uint8_t uint16_t uint32_t memset".split()
)


def snake(name: str) -> str:
    """`maxRange` -> `max_range`, `ObstacleDistance` -> `obstacle_distance`, `HTTPPort` -> `http_port`."""
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    return text.lower()


def py_name(name: str) -> str:
    """A snake_case Python identifier that is not a keyword or a soft keyword."""
    text = snake(name)
    return text + "_" if keyword.iskeyword(text) or keyword.issoftkeyword(text) or text in {"self", "discover", "now"} else text


# builtins the generated code names (a design type called `int` must not hide the real one)
_PY_RESERVED = frozenset({"None", "True", "False", "int", "float", "str", "bool", "bytes", "tuple", "dict",
                          "list", "object", "type", "Event", "MISSING_IMPORTS"})


def py_ident(name: str) -> str:
    """A Python identifier kept as written (types, classes, enum values), safe from keywords and
    from the builtins the generated code uses."""
    return name + "_" if keyword.iskeyword(name) or name in _PY_RESERVED else name


def c_ident(name: str) -> str:
    """A C identifier kept as written, made safe from C keywords."""
    return name + "_" if name in _C_KEYWORDS else name


def period_suffix(amount: float, unit: str) -> str:
    """`100 ms` -> `100ms`, `1.5 s` -> `1_5s` (used in `on_every_100ms`)."""
    text = str(int(amount)) if amount == int(amount) else str(amount).replace(".", "_")
    return f"{text}{unit}"
