"""What each component must implement: callback names, parameters and contract text (one source
for the Python generator, the C generator and the check of user classes)."""
from __future__ import annotations

from dataclasses import dataclass

from diaspec.index import DesignIndex
from diaspec.model import (
    Context,
    ContextInput,
    Controller,
    ControllerContract,
    Contract,
    Input,
    SourceInput,
    WhenPeriodic,
    WhenProvided,
    WhenRequired,
)
from diaspec.naming import period_suffix, py_name, snake


@dataclass(frozen=True)
class Callback:
    """One method a user class implements for one contract."""

    method: str
    params: tuple[str, ...]  # without `self`
    contract: str  # the contract as DiaSpec text, for messages and docstrings
    emission: str  # always | maybe | no | required | order


def input_text(given: Input) -> str:
    return str(given)


def contract_text(contract: Contract | ControllerContract) -> str:
    if isinstance(contract, ControllerContract):
        orders = ", ".join(f"{o.action.text} on {o.device.text}" for o in contract.orders)
        return f"when provided {contract.context.text} do {orders}"
    gets = f" get {', '.join(input_text(g) for g in contract.gets)}" if contract.gets else ""
    if isinstance(contract, WhenRequired):
        return f"when required{gets}"
    if isinstance(contract, WhenProvided):
        return f"when provided {input_text(contract.input)}{gets} {contract.emission} publish"
    source = f" {contract.source}" if contract.source else ""
    grouped = f" grouped by {contract.grouped_by.text}" if contract.grouped_by else ""
    return f"when periodic{source} <{contract.period}>{grouped}{gets} {contract.emission} publish"


def get_member(given: Input) -> str:
    """The `discover` member for a data requirement: `distance_from_sonar()`, `collision()`."""
    if isinstance(given, SourceInput):
        return f"{snake(given.source.text)}_from_{snake(given.device.text)}"
    return py_name(given.name.text)


def context_callback(contract: Contract) -> Callback:
    text = contract_text(contract)
    if isinstance(contract, WhenRequired):
        return Callback("when_required", ("discover",), text, "required")
    if isinstance(contract, WhenProvided):
        given = contract.input
        if isinstance(given, SourceInput):
            method = f"on_{snake(given.source.text)}_from_{snake(given.device.text)}"
            return Callback(method, ("event", "discover"), text, contract.emission)
        assert isinstance(given, ContextInput)
        return Callback(f"on_{snake(given.name.text)}", ("value", "discover"), text, contract.emission)
    assert isinstance(contract, WhenPeriodic)
    if contract.source is not None:
        method = f"on_periodic_{snake(contract.source.source.text)}_from_{snake(contract.source.device.text)}"
        return Callback(method, ("readings", "discover"), text, contract.emission)
    method = f"on_every_{period_suffix(contract.period.amount, contract.period.unit)}"
    return Callback(method, ("discover",), text, contract.emission)


def context_callbacks(context: Context) -> list[Callback]:
    return [context_callback(c) for c in context.contracts]


def controller_callback(contract: ControllerContract) -> Callback:
    return Callback(f"on_{snake(contract.context.text)}", ("value", "discover"), contract_text(contract), "order")


def controller_callbacks(controller: Controller) -> list[Callback]:
    return [controller_callback(c) for c in controller.contracts]


def device_action_callbacks(index: DesignIndex, device: str, *, inherited: bool) -> list[Callback]:
    """The action methods a device driver implements (its own actions, or all with `inherited`)."""
    decl = index.device(device)
    names = list(index.device_actions(device)) if inherited else [a.text for a in decl.actions]
    result: list[Callback] = []
    seen: set[str] = set()
    for action_name in names:
        action = index.action(action_name)
        if action is None:
            continue
        for method in action.methods:
            name = py_name(method.name.text)
            if name in seen:
                continue
            seen.add(name)
            params = tuple(py_name(p.name.text) for p in method.params)
            result.append(Callback(name, params, f"action {action_name}", "action"))
    return result


def discover_protocol(component: str, callback: Callback) -> str:
    """The typed protocol of one callback's `discover`: `DiscoverDriveModeOnObstacleDistance`."""
    return "Discover" + component + "".join(part.capitalize() for part in callback.method.split("_"))
