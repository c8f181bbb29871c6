"""The C runtime: bit-exact against the numpy integer reference, on every kernel family this
machine runs (AVX-512 table lookups and popcount where the CPU has them, the portable ones), and
the aarch64 build under qemu-user."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from torch import nn

import toolchains
from fleetforge.errors import UserError
from lowbit import reference
from lowbit.binding import Runtime
from lowbit.build import build_checked_runner, runner_command
from lowbit.config import QuantConfig
from lowbit.pipeline import input_codes

from lowbit.architectures import randomize_batchnorm
from lowbit.compiler import compile_model
from lowbit_testlib import Compiled, calibrated, make

BITS = [1, 2, 3, 4]


def reference_outputs(compiled, count: int = 2, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    images = torch.rand(count, *compiled.shape, generator=torch.Generator().manual_seed(seed))
    model = compiled.model
    codes = input_codes(model.meta, images)
    return codes, np.stack([reference.run(model.graph, c).reshape(-1) for c in codes]).astype("<i4")


def families(blob: bytes) -> list[str]:
    return Runtime(blob).families


@pytest.mark.parametrize("name", ["digits", "resnet", "yolo"])
def test_runtime_matches_reference(small_models, name: str) -> None:
    compiled = small_models[name]
    codes, expected = reference_outputs(compiled)
    best = Runtime(compiled.blob)
    assert best.kernels == best.families[-1] and best.families[0] == "portable"
    for family in best.families:
        runtime = Runtime(compiled.blob, kernels=family)
        assert runtime.kernels == family
        for c, e in zip(codes, expected):
            assert np.array_equal(runtime.run(c), e), family


def test_unknown_kernel_family_is_one_clear_error(small_models) -> None:
    with pytest.raises(UserError, match="cannot run the 'sparc' kernels .*it runs: portable"):
        Runtime(small_models["digits"].blob, kernels="sparc")


def odd_shapes(bits: int):
    """1-4 bit weights and activations (1 bit: -1/+1 weights), an 8-bit first layer on 3
    channels, 70 and 130 channels (partial words and table groups), stride 2 with padding, 5x5
    kernels."""
    model = nn.Sequential(nn.Conv2d(3, 70, 3, padding=1), nn.BatchNorm2d(70), nn.ReLU(),
                          nn.Conv2d(70, 130, 5, stride=2, padding=2), nn.BatchNorm2d(130), nn.ReLU(),
                          nn.Conv2d(130, 9, 3, padding=1), nn.ReLU(), nn.Conv2d(9, 5, 1))
    return make(f"odd{bits}", model, (3, 11, 13), QuantConfig(low_bits=bits))


@pytest.mark.parametrize("bits", BITS)
def test_every_width_and_odd_shapes(bits: int) -> None:
    compiled = odd_shapes(bits)
    kinds = [n.attrs["kind"] for n in compiled.model.graph.nodes if n.op == "conv"]
    assert kinds == ["int8", "bitserial", "bitserial", "int8"]
    codes, expected = reference_outputs(compiled)
    for family in families(compiled.blob):
        runtime = Runtime(compiled.blob, kernels=family)
        for c, e in zip(codes, expected):
            assert np.array_equal(runtime.run(c), e), family


def pooled_model() -> Compiled:
    """Max pools after convs whose BN scales have both signs: 2x2/2 after the int8 first layer,
    3x3/2 with padding after a low-bit conv, on an odd image size."""
    model = nn.Sequential(nn.Conv2d(3, 20, 3, padding=1), nn.BatchNorm2d(20), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(20, 24, 3, padding=1), nn.BatchNorm2d(24), nn.ReLU(),
                          nn.MaxPool2d(3, 2, 1), nn.Conv2d(24, 5, 1))
    randomize_batchnorm(model).eval()
    with torch.no_grad():
        for bn in (model[1], model[5]):
            bn.weight[::2] *= -1
    shape = (3, 15, 13)
    prepared = calibrated(model, shape)
    return Compiled("pooled", model, prepared, shape, compile_model(prepared, shape, name="pooled"))


def test_max_pools_fused_into_convs_stay_exact() -> None:
    """x86 kernels pool the accumulators before requantizing (the max, or the min for channels
    whose multiplier is negative); every family must still match the reference."""
    compiled = pooled_model()
    scales = [n.consts["M0"] for n in compiled.model.graph.nodes if n.op == "conv" and "M0" in n.consts]
    assert len(scales) == 2 and all((m < 0).any() and (m > 0).any() for m in scales)
    codes, expected = reference_outputs(compiled, count=3)
    for family in families(compiled.blob):
        runtime = Runtime(compiled.blob, kernels=family)
        for c, e in zip(codes, expected):
            assert np.array_equal(runtime.run(c), e), family


def test_runtime_refuses_a_corrupted_model(small_models) -> None:
    blob = bytearray(small_models["digits"].blob)
    blob[16:20] = (60000).to_bytes(4, "little")  # tensor count far past the table
    with pytest.raises(UserError, match="corrupted"):
        Runtime(bytes(blob))
    with pytest.raises(UserError, match="one-byte codes"):
        Runtime(small_models["digits"].blob).run(np.zeros(3, dtype=np.uint8))


def _golden_files(tmp_path, compiled) -> tuple[str, str, str, np.ndarray]:
    codes, expected = reference_outputs(compiled, count=3)
    paths = tmp_path / "m.lbit", tmp_path / "in.bin", tmp_path / "gold.bin"
    paths[0].write_bytes(compiled.blob)
    paths[1].write_bytes(codes.tobytes())
    paths[2].write_bytes(expected.tobytes())
    return *map(str, paths), expected


@pytest.mark.parametrize("target", [None, "aarch64-linux-gnu"])
def test_static_runner_checks_golden_vectors(small_models, tmp_path, target) -> None:
    """The runner the devices run: exact on golden vectors (aarch64: NEON under qemu-user),
    exit 1 naming the first difference, exit 2 for a bad file."""
    if target and toolchains.target(target).missing_packages(with_llvm=False):
        pytest.skip(f"{target} toolchain not installed (requirements/toolchains.apt)")
    model, inputs, gold, expected = _golden_files(tmp_path, small_models["resnet"])
    done = subprocess.run(runner_command(target, ("--check", model, inputs, gold)), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "bit-exact" in done.stdout and ("neon" if target else "kernels") in done.stdout
    bad = expected.copy()
    bad[2, 4] += 1
    (tmp_path / "bad.bin").write_bytes(bad.tobytes())
    done = subprocess.run(runner_command(target, ("--check", model, inputs, str(tmp_path / "bad.bin"))),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "MISMATCH input 2 value 4" in done.stdout
    (tmp_path / "junk.lbit").write_bytes(b"junk" * 20)
    done = subprocess.run(runner_command(target, ("--check", str(tmp_path / "junk.lbit"), inputs, gold)),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "bad magic" in done.stderr


def test_no_kernel_reads_outside_its_buffers(small_models, tmp_path) -> None:
    """The shipped runner's sources built with AddressSanitizer, which sees the runtime's exact
    buffer sizes: every kernel family stays exact and never touches a byte outside a tensor,
    weight copy or scratch buffer (borders, last pixels, partial groups and words, 1-4 bits)."""
    runner = str(build_checked_runner())
    models = [*small_models.values(), *(odd_shapes(bits) for bits in BITS), pooled_model()]
    for compiled in models:
        model, inputs, gold, _ = _golden_files(tmp_path, compiled)
        for family in families(compiled.blob):
            done = subprocess.run([runner, "--kernels", family, "--check", model, inputs, gold],
                                  capture_output=True, text=True, timeout=120)
            assert "AddressSanitizer" not in done.stderr, (compiled.name, family, done.stderr[-3000:])
            assert done.returncode == 0 and f"({family} kernels)" in done.stdout, (compiled.name, done.stderr)
    done = subprocess.run([runner, "--kernels", "sparc", "--info", model], capture_output=True, text=True)
    assert done.returncode == 2 and "cannot run the 'sparc' kernels" in done.stderr
