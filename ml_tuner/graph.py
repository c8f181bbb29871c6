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
    """Nodes (vocabulary ids) and typed edges (source, target, kind) of one module."""

    tokens: np.ndarray  # (nodes,) int64
    edges: np.ndarray  # (edges, 3) int64: source, target, kind

    @property
    def num_nodes(self) -> int:
        return int(self.tokens.shape[0])


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


def build_graph(ll_text: str, max_nodes: int = 40000) -> ProgramGraph:
    """Parse function bodies of textual IR into a graph (approximate, line-based, fast)."""
    tokens: list[int] = []
    edges: list[tuple[int, int, int]] = []

    def node(token: str) -> int:
        tokens.append(VOCAB[token])
        return len(tokens) - 1

    function_entry: dict[str, int] = {}
    calls: list[tuple[int, str]] = []
    returns: dict[str, list[int]] = {}
    lines = ll_text.splitlines()
    i = 0
    while i < len(lines) and len(tokens) < max_nodes:
        match = _DEFINE.match(lines[i])
        if not match or not lines[i].rstrip().endswith("{"):
            i += 1
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
        while i < len(lines) and not lines[i].startswith("}"):
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
        i += 1
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
    return ProgramGraph(np.array(tokens, dtype=np.int64), edge_array)
