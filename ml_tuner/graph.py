"""A ProGraML-style graph of a textual IR module: instruction, variable and constant nodes joined
by control, data and call edges, as integer arrays a GNN can read."""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Node kinds and edge kinds (ProGraML's three edge flows).
INSTRUCTION, VARIABLE, CONSTANT = 0, 1, 2
CONTROL, DATA, CALL = 0, 1, 2
EDGE_KINDS = 3

OPCODES = (
    "ret br switch indirectbr invoke resume unreachable callbr fneg add fadd sub fsub mul fmul "
    "udiv sdiv fdiv urem srem frem shl lshr ashr and or xor extractelement insertelement "
    "shufflevector extractvalue insertvalue alloca load store fence cmpxchg atomicrmw "
    "getelementptr trunc zext sext fptrunc fpext fptoui fptosi uitofp sitofp ptrtoint inttoptr "
    "bitcast addrspacecast icmp fcmp phi select call va_arg landingpad freeze"
).split()
TYPES = ("void", "i1", "i8", "i16", "i32", "i64", "i128", "ptr", "half", "float", "double",
         "vector", "array", "struct", "label", "other")
# Token vocabulary: opcodes for instructions, types for variables and constants.
VOCAB = {f"op:{o}": i for i, o in enumerate(OPCODES + ["other"])}
VOCAB.update({f"var:{t}": len(VOCAB) + i for i, t in enumerate(TYPES)})
VOCAB.update({f"const:{t}": len(VOCAB) + i for i, t in enumerate(TYPES)})
VOCAB_SIZE = len(VOCAB)

_DEFINE = re.compile(r"^define\b[^@]*@(\"[^\"]+\"|[\w.$-]+)\((.*)\)")
_ASSIGN = re.compile(r"^\s+(%[\w.$-]+|%\"[^\"]+\")\s*=\s*(.*)$")
_LOCAL = re.compile(r"%[\w.$-]+")
_GLOBAL = re.compile(r"@([\w.$-]+)")
_LABEL_REF = re.compile(r"label %([\w.$-]+)")
# Literal operands; `align N` and similar attributes are not operands and are skipped.
_CONST = re.compile(
    r"(?<![\w%@.\[<])(?<!align )(?<!addrspace\()(-?\d[\w.+]*|true|false|null|undef|poison|zeroinitializer)\b")
_TYPE_TOKEN = re.compile(r"\b(i\d+|float|double|half|ptr)\b")
_PREFIXES = {"tail", "musttail", "notail"}


@dataclass(frozen=True)
class ProgramGraph:
    """Nodes (vocabulary ids) and typed edges (source, target, kind) of one module.

    `module_nodes` estimates the nodes of the whole module: a large module's graph is built from
    functions spread evenly over it (see build_graph), and the model still learns its real size.
    """

    tokens: np.ndarray  # (nodes,) int64
    edges: np.ndarray  # (edges, 3) int64: source, target, kind
    module_nodes: int = 0

    @property
    def num_nodes(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def size(self) -> int:
        return max(self.module_nodes, self.num_nodes)


def _type_class(text: str) -> str:
    text = text.strip()
    if text.startswith("<"):
        return "vector"
    if text.startswith("["):
        return "array"
    if text.startswith("{") or text.startswith("%struct") or text.startswith("%union"):
        return "struct"
    head = text.split()[0].rstrip(",") if text else ""
    return head if head in TYPES else "other"


def _opcode(rest: str) -> str:
    words = rest.split()
    while words and words[0] in _PREFIXES:
        words = words[1:]
    return words[0] if words and words[0] in OPCODES else "other"


def count_ir_instructions(ll_text: str) -> int:
    """Instructions in function bodies of textual IR (labels, comments and braces excluded)."""
    count = 0
    in_body = False
    for line in ll_text.splitlines():
        if not in_body:
            in_body = line.startswith("define ") and line.rstrip().endswith("{")
            continue
        if line.startswith("}"):
            in_body = False
        elif line[:1] in (" ", "\t") and line.strip() and not line.strip().startswith(";"):
            count += 1  # instructions are indented; labels ("bb:", "12:") start at column 0
    return count


def function_spans(lines: list[str]) -> list[tuple[int, int]]:
    """(first line, line after the closing brace) of every function definition."""
    spans = []
    i = 0
    while i < len(lines):
        if lines[i].startswith("define ") and lines[i].rstrip().endswith("{"):
            start = i
            while i < len(lines) and not lines[i].startswith("}"):
                i += 1
            spans.append((start, i + 1))
        i += 1
    return spans


def build_graph(ll_text: str, max_nodes: int = 40000) -> ProgramGraph:
    """Parse function bodies of textual IR into a graph (approximate, line-based, fast).

    A module of more than about `max_nodes` nodes is represented by functions spread evenly over
    it (every k-th), not by its first functions, so the graph still covers the whole module.
    """
    lines = ll_text.splitlines()
    spans = function_spans(lines)
    # About three nodes per instruction line (the instruction, its result, a constant).
    estimate = 3 * sum(end - start for start, end in spans)
    if estimate > max_nodes and spans:
        step = estimate / max_nodes
        spans = [spans[int(i * step)] for i in range(int(len(spans) / step))] or spans[:1]
    tokens: list[int] = []
    edges: list[tuple[int, int, int]] = []

    def node(token: str) -> int:
        tokens.append(VOCAB[token])
        return len(tokens) - 1

    function_entry: dict[str, int] = {}
    calls: list[tuple[int, str]] = []
    returns: dict[str, list[int]] = {}
    for span_start, span_end in spans:
        i = span_start
        match = _DEFINE.match(lines[i])
        if not match:
            continue
        fname = match.group(1).strip('"')
        values: dict[str, int] = {}
        for arg in re.finditer(r"([^,()]+?)\s+(?:noundef\s+|signext\s+|zeroext\s+)*(%[\w.$-]+)",
                               match.group(2)):
            values[arg.group(2)] = node(f"var:{_type_class(arg.group(1))}")
        block_first: dict[str, int] = {}
        block_targets: list[tuple[int, list[str]]] = []
        uses: list[tuple[int, list[str]]] = []
        previous: int | None = None
        current_label = "entry"
        i += 1
        while i < span_end and not lines[i].startswith("}"):
            line = lines[i]
            i += 1
            stripped = line.strip()
            if not stripped or stripped.startswith(";"):
                continue
            if line[0] not in " \t":  # a block label
                current_label = stripped.split(":")[0]
                previous = None
                continue
            assign = _ASSIGN.match(line)
            rest = assign.group(2) if assign else stripped
            opcode = _opcode(rest)
            inst = node(f"op:{opcode}")
            if current_label not in block_first:
                block_first[current_label] = inst
                function_entry.setdefault(fname, inst)
            if previous is not None:
                edges.append((previous, inst, CONTROL))
            previous = inst
            if assign:
                result_type = rest.split()[1] if opcode in ("load", "alloca", "call") and len(
                    rest.split()) > 1 else ""
                var = node(f"var:{_type_class(result_type or 'other')}")
                values[assign.group(1)] = var
                edges.append((inst, var, DATA))
            labels = _LABEL_REF.findall(rest)
            if labels:
                block_targets.append((inst, labels))
            uses.append((inst, [u for u in _LOCAL.findall(rest) if u not in
                                {f"%{l}" for l in labels}]))
            operands = rest.split(None, 1)[1] if " " in rest else ""
            type_match = _TYPE_TOKEN.search(operands)
            const_type = _type_class(type_match.group(1)) if type_match else "other"
            for _ in _CONST.finditer(operands.split("!", 1)[0]):
                edges.append((node(f"const:{const_type}"), inst, DATA))
            if opcode == "call" or opcode == "invoke":
                for callee in _GLOBAL.findall(rest)[:1]:
                    calls.append((inst, callee))
            if opcode == "ret":
                returns.setdefault(fname, []).append(inst)
        for inst, names in uses:
            for name in names:
                if name in values:
                    edges.append((values[name], inst, DATA))
        for inst, labels in block_targets:
            for label in labels:
                if label in block_first:
                    edges.append((inst, block_first[label], CONTROL))
    for inst, callee in calls:
        if callee in function_entry:
            edges.append((inst, function_entry[callee], CALL))
            for ret in returns.get(callee, []):
                edges.append((ret, inst, CALL))
    if not tokens:
        tokens.append(VOCAB["op:other"])
    edge_array = np.array(edges, dtype=np.int64).reshape(-1, 3)
    if len(edge_array):
        edge_array = edge_array[(edge_array[:, 0] < len(tokens)) & (edge_array[:, 1] < len(tokens))]
    return ProgramGraph(np.array(tokens, dtype=np.int64), edge_array, estimate)
