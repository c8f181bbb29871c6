"""Check 10: a controller reacts to contexts that publish and orders only actions its devices
provide (saying which devices do)."""
from __future__ import annotations

from diaspec.checks.common import article, error, warning, where
from diaspec.checks.inputs import context_input, publishing
from diaspec.diagnostics import Diagnostic, Pos, did_you_mean
from diaspec.index import DesignIndex
from diaspec.model import ActionDecl, ContextInput, Controller, Design, Device, Order, kind_name


def _order(index: DesignIndex, order: Order) -> list[Diagnostic]:
    action, device = order.action, order.device
    found = []
    action_decl = index.by_name.get(action.text)
    if action_decl is None:
        found.append(error(action.pos, f"unknown action '{action.text}'" + did_you_mean(action.text, index.names_of(ActionDecl))))
    elif not isinstance(action_decl, ActionDecl):
        found.append(error(action.pos, f"'{action.text}' is {article(kind_name(action_decl))}, not an action"))
    device_decl = index.by_name.get(device.text)
    if device_decl is None:
        return found + [error(device.pos, f"unknown device '{device.text}'" + did_you_mean(device.text, index.names_of(Device)))]
    if not isinstance(device_decl, Device):
        return found + [error(device.pos, f"'{device.text}' is {article(kind_name(device_decl))}, not a device")]
    if isinstance(action_decl, ActionDecl) and action.text not in index.device_actions(device.text):
        providers = index.devices_providing(action.text)
        hint = f"devices that do: {', '.join(providers)}" if providers else "no device provides it"
        found.append(error(device.pos, f"device '{device.text}' does not provide action '{action.text}' ({hint})"))
    return found


def _controller(index: DesignIndex, controller: Controller) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    if not controller.contracts:
        found.append(warning(controller.name.pos, f"controller '{controller.name.text}' has no contracts"))
    activations: dict[str, Pos] = {}
    for contract in controller.contracts:
        name = contract.context.text
        if name in activations:
            found.append(error(
                contract.pos,
                f"controller '{controller.name.text}' already has a contract 'when provided {name}' at {where(activations[name])}",
            ))
        activations.setdefault(name, contract.pos)
        target, problems = context_input(index, ContextInput(contract.context), pulled=False, by_controller=True)
        found += problems
        if target is not None:
            found += publishing(index, target, contract.context.pos, f"controller '{controller.name.text}'")
        seen_orders: set[tuple[str, str]] = set()
        for order in contract.orders:
            key = (order.action.text, order.device.text)
            if key in seen_orders:
                found.append(error(order.action.pos, f"duplicate order '{order.action.text} on {order.device.text}'"))
            seen_orders.add(key)
            found += _order(index, order)
    return found


def check_controllers(design: Design, index: DesignIndex) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for controller in design.controllers:
        found += _controller(index, controller)
    return found
