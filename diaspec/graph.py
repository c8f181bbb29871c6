"""A picture of a design: Graphviz DOT (devices -> contexts -> controllers -> actions) and SVG."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetforge.tools import run_tool

from diaspec.compiler import CheckedDesign
from diaspec.model import ContextInput, SourceInput, WhenPeriodic, WhenProvided
from diaspec.templating import render


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    attributes: str = ""


def _edges(checked: CheckedDesign) -> list[Edge]:
    """Every arrow of the picture, each once (two contracts with the same flow draw one arrow)."""
    design, index = checked.design, checked.index
    edges: list[Edge] = []
    for context in design.contexts:
        target = "ctx:" + context.name.text
        for contract in context.contracts:
            if isinstance(contract, WhenProvided):
                given = contract.input
                if isinstance(given, SourceInput):
                    edges.append(Edge("dev:" + given.device.text, target, f"label={_q(given.source.text)}, style=bold"))
                elif index.context(given.name.text):
                    edges.append(Edge("ctx:" + given.name.text, target, "style=bold"))
            elif isinstance(contract, WhenPeriodic):
                label = f"every {contract.period}"
                if contract.source is not None:
                    edges.append(Edge("dev:" + contract.source.device.text, target,
                                      f"label={_q(contract.source.source.text + ', ' + label)}"))
                else:
                    edges.append(Edge(target, target, f"label={_q(label)}, style=dotted"))
            for got in contract.gets:
                if isinstance(got, SourceInput):
                    edges.append(Edge("dev:" + got.device.text, target, f"label={_q('get ' + got.source.text)}, style=dashed"))
                elif isinstance(got, ContextInput) and index.context(got.name.text):
                    edges.append(Edge("ctx:" + got.name.text, target, "label=get, style=dashed"))
    for controller in design.controllers:
        source = "ctl:" + controller.name.text
        for contract in controller.contracts:
            if index.context(contract.context.text):
                edges.append(Edge("ctx:" + contract.context.text, source, "style=bold"))
            for order in contract.orders:
                edges.append(Edge(source, f"act:{order.device.text}.{order.action.text}"))
    return list(dict.fromkeys(edges))


def design_dot(checked: CheckedDesign) -> str:
    """DOT text, left to right in four ranks, with a legend: bold edges are pushes, dashed ones
    pulls (`get`), plain ones from a device sampling, plain ones from a controller orders."""
    design = checked.design
    sensing = {(s.device.text, s.source.text) for c in design.contexts for k in c.contracts
               for s in ([k.input] if isinstance(k, WhenProvided) else [k.source] if isinstance(k, WhenPeriodic) and k.source else []) + list(k.gets)
               if isinstance(s, SourceInput)}
    used_devices = {d for d, _ in sensing}  # ordered devices appear with their actions, on the right
    return render(
        "graph/design.dot.j2",
        app=checked.app_name,
        devices=[d.name.text for d in design.devices if d.name.text in used_devices or not design.contexts],
        contexts=[(c.name.text, f"{c.name.text} : {c.type}") for c in design.contexts],
        controllers=[c.name.text for c in design.controllers],
        actions=sorted({(o.device.text, o.action.text) for c in design.controllers for k in c.contracts for o in k.orders}),
        edges=_edges(checked),
    )


def write_graph(checked: CheckedDesign, out: Path) -> list[Path]:
    """Write `<out>.dot` and, unless `out` ends in .dot, the SVG rendered by Graphviz."""
    out = Path(out)
    dot_path = out if out.suffix == ".dot" else out.with_suffix(".dot")
    out.parent.mkdir(parents=True, exist_ok=True)
    dot_path.write_text(design_dot(checked), encoding="utf-8")
    written = [dot_path]
    if out.suffix != ".dot":
        fmt = out.suffix.lstrip(".") or "svg"
        tmp = out.with_name(out.name + ".tmp")
        run_tool(["dot", f"-T{fmt}", "-o", str(tmp), str(dot_path)], debian_package="graphviz", timeout=120)
        tmp.replace(out)
        written.append(out)
    return written
