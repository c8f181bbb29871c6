"""The typed model of a DiaSpec design: one dataclass per construct, positions kept."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Union

from diaspec.diagnostics import Pos

PRIMITIVES = ("Boolean", "Integer", "Float", "String", "Binary")
PUBLISH_MODES = ("always", "maybe", "no")
UNIT_MS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000}


class Name(NamedTuple):
    """An identifier as written, with where it was written."""

    text: str
    pos: Pos


class TypeRef(NamedTuple):
    """A reference to a data type, `T` or `T[]` (dims counts the `[]`)."""

    name: str
    dims: int
    pos: Pos

    def __str__(self) -> str:
        return self.name + "[]" * self.dims


# ---- types ---------------------------------------------------------------------------------
@dataclass
class ImportType:
    name: Name
    target: str  # dotted, e.g. geometry_msgs.msg.Pose
    doc: str = ""


@dataclass
class TypeAlias:
    name: Name
    target: TypeRef
    doc: str = ""


@dataclass
class Enumeration:
    name: Name
    values: list[Name]
    doc: str = ""


@dataclass
class Field:
    name: Name
    type: TypeRef


@dataclass
class Structure:
    name: Name
    fields: list[Field]
    doc: str = ""


# ---- taxonomy --------------------------------------------------------------------------------
@dataclass
class Param:
    name: Name
    type: TypeRef


@dataclass
class Method:
    name: Name
    params: list[Param]


@dataclass
class ActionDecl:
    name: Name
    methods: list[Method]
    doc: str = ""


@dataclass
class Attribute:
    name: Name
    type: TypeRef


@dataclass
class Index:
    name: Name
    type: TypeRef


@dataclass
class Source:
    name: Name
    type: TypeRef
    indices: list[Index]


@dataclass
class Device:
    name: Name
    parents: list[Name]
    attributes: list[Attribute]
    sources: list[Source]
    actions: list[Name]  # `action A;` members
    doc: str = ""
    keyword: str = "device"  # or "entity"


# ---- application -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceInput:
    """`source from Device`."""

    source: Name
    device: Name

    @property
    def pos(self) -> Pos:
        return self.source.pos

    def __str__(self) -> str:
        return f"{self.source.text} from {self.device.text}"


@dataclass(frozen=True)
class ContextInput:
    """A bare name: a context (check 7 rejects devices)."""

    name: Name

    @property
    def pos(self) -> Pos:
        return self.name.pos

    def __str__(self) -> str:
        return self.name.text


Input = Union[SourceInput, ContextInput]


@dataclass
class WhenProvided:
    input: Input
    gets: list[Input]
    emission: str
    pos: Pos


@dataclass
class WhenRequired:
    gets: list[Input]
    pos: Pos


@dataclass
class Period:
    amount: float
    unit: str
    pos: Pos

    @property
    def milliseconds(self) -> float:
        return self.amount * UNIT_MS[self.unit]

    def __str__(self) -> str:
        amount = int(self.amount) if self.amount == int(self.amount) else self.amount
        return f"{amount} {self.unit}"


@dataclass
class WhenPeriodic:
    source: SourceInput | None
    period: Period
    grouped_by: Name | None
    gets: list[Input]
    emission: str
    pos: Pos


Contract = Union[WhenProvided, WhenRequired, WhenPeriodic]


@dataclass
class Context:
    name: Name
    type: TypeRef
    indices: list[Index]
    contracts: list[Contract]
    doc: str = ""


@dataclass(frozen=True)
class Order:
    """`Action on Device` in a controller contract."""

    action: Name
    device: Name


@dataclass
class ControllerContract:
    context: Name
    orders: list[Order]
    pos: Pos


@dataclass
class Controller:
    name: Name
    contracts: list[ControllerContract]
    doc: str = ""


Declaration = Union[
    ImportType, TypeAlias, Enumeration, Structure, ActionDecl, Device, Context, Controller
]
DataType = Union[ImportType, TypeAlias, Enumeration, Structure]


@dataclass
class Design:
    """Every declaration of a spec and the files it was read from (include order)."""

    main_file: str
    files: list[str] = field(default_factory=list)
    declarations: list[Declaration] = field(default_factory=list)
    source_text: dict[str, str] = field(default_factory=dict)

    def of_kind(self, kind: type) -> list:
        return [d for d in self.declarations if isinstance(d, kind)]

    @property
    def devices(self) -> list[Device]:
        return self.of_kind(Device)

    @property
    def contexts(self) -> list[Context]:
        return self.of_kind(Context)

    @property
    def controllers(self) -> list[Controller]:
        return self.of_kind(Controller)

    @property
    def actions(self) -> list[ActionDecl]:
        return self.of_kind(ActionDecl)


def kind_name(decl: object) -> str:
    """How a message names the kind of a declaration ('device', 'context', ...)."""
    return {
        ImportType: "imported type",
        TypeAlias: "type alias",
        Enumeration: "enumeration",
        Structure: "structure",
        ActionDecl: "action",
        Device: "device",
        Context: "context",
        Controller: "controller",
    }.get(type(decl), "declaration")

