"""Train (or calibrate), compile and package a model: what `fleetforge model.compile` does.

The output is a model directory, which is also the OTA file set `model.deploy` sends:
    model.lbit            the artifact (provenance inside)
    golden/input.bin      N input code tensors (H*W*C bytes each)
    golden/output.bin     their outputs from the numpy integer reference (int32 LE)
    provenance.json       the artifact's provenance, readable
    .fleetforge/check     contract A's commit gate: the device's runner must match bit for bit
"""
from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fleetforge.errors import UserError
from lowbit import artifact, reference
from lowbit.architectures import ARCHITECTURES, input_shape, randomize_batchnorm
from lowbit.compiler import compile_model
from lowbit.config import QuantConfig
from lowbit.digits import Digits, load_digits, train
from lowbit.qat import calibrate, prepare

MODEL_FILE = "model.lbit"
GOLDEN_INPUT = "golden/input.bin"
GOLDEN_OUTPUT = "golden/output.bin"
CHECK_SCRIPT = """#!/bin/sh
# FleetForge model check (contract A): this device's own runner must reproduce the golden
# outputs of the numpy integer reference bit for bit, or the model is not committed.
set -eu
dir=${ARTIFACT_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
exec lowbit-run --check "$dir/model.lbit" "$dir/golden/input.bin" "$dir/golden/output.bin"
"""


@dataclass(frozen=True)
class BuildRequest:
    arch: str = "digits"
    bits: int = 2
    epochs: int = 30       # fp32 training (digits only; the other architectures keep random weights)
    qat_epochs: int = 20
    golden: int = 8        # golden input/output pairs shipped with the model
    seed: int = 0


@dataclass
class BuiltModel:
    request: BuildRequest
    fp32: nn.Module
    prepared: nn.Module
    shape: tuple[int, int, int]
    samples: torch.Tensor   # NCHW float images: golden inputs, calibration
    data: Digits | None


def build_model(request: BuildRequest) -> BuiltModel:
    """Train the fp32 network and its QAT copy (digits), or take random weights and calibrate
    the quantizers on random images (architectures measured for speed)."""
    if request.arch not in ARCHITECTURES:
        raise UserError(f"unknown architecture '{request.arch}' (known: {', '.join(ARCHITECTURES)})")
    torch.manual_seed(request.seed)
    fp32 = ARCHITECTURES[request.arch].build()
    shape = input_shape(fp32)
    config = QuantConfig(low_bits=request.bits)
    if request.arch == "digits":
        data = load_digits(seed=request.seed)
        train(fp32, data, epochs=request.epochs, lr=3e-3, seed=request.seed, label="fp32 training")
        prepared = calibrate(prepare(copy.deepcopy(fp32), config), data.train_x[:256])
        train(prepared, data, epochs=request.qat_epochs, lr=1e-3, seed=request.seed,
              label=f"QAT {request.bits}-bit")
        return BuiltModel(request, fp32, prepared, shape, data.test_x[:request.golden], data)
    randomize_batchnorm(fp32, request.seed).eval()
    generator = torch.Generator().manual_seed(request.seed)
    samples = torch.rand(max(request.golden, 2), *shape, generator=generator)
    prepared = calibrate(prepare(copy.deepcopy(fp32), config), samples)
    return BuiltModel(request, fp32.eval(), prepared, shape, samples[:request.golden], None)


def input_codes(meta: dict, images: torch.Tensor | np.ndarray) -> np.ndarray:
    """NCHW float images -> (N, H, W, C) input codes of an artifact (its input quantizer)."""
    info = meta["input"]
    x = np.asarray(images, dtype=np.float64).transpose(0, 2, 3, 1) / info["scale"]
    bits, signed = info["bits"], info["signed"]
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return np.clip(np.round(x), low, high).astype(np.int8 if signed else np.uint8)


def golden_vectors(model: artifact.Artifact, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(input codes, int32 outputs of the numpy reference) for each image."""
    codes = input_codes(model.meta, images)
    outputs = np.stack([reference.run(model.graph, c).reshape(-1) for c in codes])
    return codes, outputs.astype("<i4")


def write_model_dir(out: Path, blob: bytes, images: torch.Tensor) -> Path:
    """The model directory (see the module doc), written beside and renamed into place whole."""
    model = artifact.from_bytes(blob)
    codes, outputs = golden_vectors(model, images)
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "golden").mkdir(parents=True)
    (tmp / ".fleetforge").mkdir()
    (tmp / MODEL_FILE).write_bytes(blob)
    (tmp / GOLDEN_INPUT).write_bytes(codes.tobytes())
    (tmp / GOLDEN_OUTPUT).write_bytes(outputs.tobytes())
    (tmp / "provenance.json").write_text(json.dumps(model.provenance, indent=1, sort_keys=True) + "\n")
    check = tmp / ".fleetforge" / "check"
    check.write_text(CHECK_SCRIPT)
    check.chmod(0o755)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def compile_to_dir(request: BuildRequest, out: Path) -> tuple[BuiltModel, bytes]:
    built = build_model(request)
    blob = compile_model(built.prepared, built.shape, name=f"{request.arch}-w{request.bits}")
    write_model_dir(out, blob, built.samples)
    return built, blob
