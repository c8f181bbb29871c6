"""compile_model: a prepared, trained model -> artifact bytes (lower, PIPELINE, serialize)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

import lowbit
from lowbit import artifact
from lowbit.ir import Graph
from lowbit.lower import lower
from lowbit.passes import PACKING_LAYOUT, PIPELINE, run_pipeline
from lowbit.qat import LsqQuantizer

# The compiler's own source: its digest is part of the version recorded in every artifact, so a
# changed compiler (or an ImpNet-style backdoored one) cannot claim to be the audited one.
# What every quantizer of lowbit.qat is; the per-layer bits and signedness follow it in the
# provenance, and the learned steps are part of the checkpoint (its hash).
QUANTIZER_SCHEME = ("LSQ learned steps; weights per output channel, signed two's complement "
                    "(1 bit: -1/+1); activations per tensor, unsigned after ReLU, signed elsewhere")
COMPILER_SOURCES = ("qat.py", "lower.py", "ir.py", "passes.py", "artifact.py", "compiler.py")


def compiler_version() -> str:
    digest = hashlib.sha256()
    for name in COMPILER_SOURCES:
        digest.update((Path(lowbit.__file__).parent / name).read_bytes())
    return f"lowbit {lowbit.__version__}+{digest.hexdigest()[:16]}"


def checkpoint_hash(model: nn.Module) -> str:
    """sha256 over the state dict (names sorted; dtype, shape and bytes of each tensor)."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        array = value.detach().cpu().contiguous()
        digest.update(f"{name}|{array.dtype}|{tuple(array.shape)}\n".encode())
        digest.update(array.numpy().tobytes() if array.dtype != torch.bfloat16
                      else array.view(torch.int16).numpy().tobytes())
    return digest.hexdigest()


def layer_bits(model: nn.Module) -> dict[str, list[int]]:
    """Every quantizer's bits and signedness, by module name (provenance)."""
    return {name: [m.bits, int(m.signed)] for name, m in model.named_modules()
            if isinstance(m, LsqQuantizer)}


def compile_graph(model: nn.Module, input_shape: tuple[int, int, int]) -> Graph:
    """The integer graph of a prepared model (every pass of PIPELINE applied)."""
    return run_pipeline(lower(model, input_shape))


def compile_model(model: nn.Module, input_shape: tuple[int, int, int], *,
                  name: str = "model") -> bytes:
    """Artifact bytes; the same model and compiler always give the same bytes."""
    graph = compile_graph(model, input_shape)
    source = graph.tensors[graph.input]
    meta = {
        "name": name,
        "input": {"shape_hwc": list(source.shape), "bits": source.bits, "signed": source.signed,
                  "scale": float(np.float64(source.scale))},
        "provenance": {
            "checkpoint_sha256": checkpoint_hash(model),
            "quantizer": {"scheme": QUANTIZER_SCHEME, "layers": layer_bits(model)},
            "compiler": compiler_version(),
            "passes": ["lower", *(n for n, _ in PIPELINE)],
            "packing_layout": PACKING_LAYOUT,
        },
    }
    return artifact.to_bytes(graph, meta)
