"""A picture of a design: Graphviz DOT (devices -> contexts -> controllers -> actions) and SVG."""
from __future__ import annotations

from pathlib import Path

from fleetforge.tools import run_tool

from diaspec.compiler import CheckedDesign
from diaspec.model import ContextInput, SourceInput, WhenPeriodic, WhenProvided, WhenRequired


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def design_dot(checked: CheckedDesign) -> str:
    """DOT text, left to right in four ranks; dashed edges are pulls (`get`), bold ones pushes."""
    design, index = checked.design, checked.index
    lines = [
        f"digraph {_q(checked.app_name)} {{",
        "  rankdir=LR; newrank=true; node [fontname=Helvetica, fontsize=11]; edge [fontname=Helvetica, fontsize=9];",
    ]
    sensing = {(s.device.text, s.source.text) for c in design.contexts for k in c.contracts
               for s in ([k.input] if isinstance(k, WhenProvided) else [k.source] if isinstance(k, WhenPeriodic) and k.source else []) + list(k.gets)
               if isinstance(s, SourceInput)}
    ordered = {(o.device.text, o.action.text) for c in design.controllers for k in c.contracts for o in k.orders}
    used_devices = {d for d, _ in sensing}  # ordered devices appear with their actions, on the right
    lines.append('  subgraph cluster_devices { label="devices (sources)"; style=rounded; color=gray;')
    for device in design.devices:
        if device.name.text in used_devices or not design.contexts:
            lines.append(f"    {_q('dev:' + device.name.text)} [label={_q(device.name.text)}, shape=box3d];")
    lines.append("  }")
    lines.append('  subgraph cluster_contexts { label="contexts"; style=rounded; color=gray;')
    for context in design.contexts:
        lines.append(f"    {_q('ctx:' + context.name.text)} [label={_q(context.name.text + ' : ' + str(context.type))}, shape=ellipse];")
    lines.append("  }")
    lines.append('  subgraph cluster_controllers { label="controllers"; style=rounded; color=gray;')
    for controller in design.controllers:
        lines.append(f"    {_q('ctl:' + controller.name.text)} [label={_q(controller.name.text)}, shape=hexagon];")
    lines.append("  }")
    lines.append('  subgraph cluster_actions { label="actions on devices"; style=rounded; color=gray;')
    for device, action in sorted(ordered):
        lines.append(f"    {_q('act:' + device + '.' + action)} [label={_q(action + ' on ' + device)}, shape=box];")
    lines.append("  }")
    for context in design.contexts:
        target = _q("ctx:" + context.name.text)
        for contract in context.contracts:
            if isinstance(contract, WhenProvided):
                given = contract.input
                if isinstance(given, SourceInput):
                    lines.append(f"  {_q('dev:' + given.device.text)} -> {target} [label={_q(given.source.text)}, style=bold];")
                elif index.context(given.name.text):
                    lines.append(f"  {_q('ctx:' + given.name.text)} -> {target} [style=bold];")
            elif isinstance(contract, WhenPeriodic):
                label = f"every {contract.period}"
                if contract.source is not None:
                    lines.append(f"  {_q('dev:' + contract.source.device.text)} -> {target} [label={_q(contract.source.source.text + ', ' + label)}];")
                else:
                    lines.append(f"  {target} -> {target} [label={_q(label)}, style=dotted];")
            for got in contract.gets:
                if isinstance(got, SourceInput):
                    lines.append(f"  {_q('dev:' + got.device.text)} -> {target} [label={_q('get ' + got.source.text)}, style=dashed];")
                elif isinstance(got, ContextInput) and index.context(got.name.text):
                    lines.append(f"  {_q('ctx:' + got.name.text)} -> {target} [label=get, style=dashed];")
            if isinstance(contract, WhenRequired):
                continue
    for controller in design.controllers:
        source = _q("ctl:" + controller.name.text)
        for contract in controller.contracts:
            if index.context(contract.context.text):
                lines.append(f"  {_q('ctx:' + contract.context.text)} -> {source} [style=bold];")
            for order in contract.orders:
                lines.append(f"  {source} -> {_q('act:' + order.device.text + '.' + order.action.text)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


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
