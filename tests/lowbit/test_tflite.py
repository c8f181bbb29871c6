"""The int8 baseline: the same networks written as TFLite flatbuffers (no TensorFlow) run in
LiteRT, bit-exact with the numpy reference of TFLite's int8 kernels (reference op resolver) and
within one code of it with XNNPACK (its requantization rounds through fp32)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from fleetforge.errors import UserError
from lowbit import backends, tflite_reference
from lowbit.tflite_export import export_int8, quantize_input


@pytest.mark.parametrize("name", ["digits", "resnet", "yolo"])
def test_litert_runs_the_export_and_matches_the_reference(small_models, name: str) -> None:
    compiled = small_models[name]
    images = torch.rand(3, *compiled.shape, generator=torch.Generator().manual_seed(5))
    blob = export_int8(compiled.fp32, images)
    assert blob[4:8] == b"TFL3"
    parsed = tflite_reference.read_model(blob)
    ops = {op.op for op in parsed.ops}
    assert "CONV_2D" in ops
    if name == "resnet":
        assert {"ADD", "PAD", "AVERAGE_POOL_2D", "FULLY_CONNECTED"} <= ops
    exact = backends.load(blob, xnnpack=False)
    fast = backends.load(blob, xnnpack=True)
    for x in quantize_input(blob, images.numpy()):
        expected = tflite_reference.run(parsed, x[None])
        assert np.array_equal(exact.run(x[None]), expected)
        assert np.abs(fast.run(x[None]).astype(int) - expected.astype(int)).max() <= 1


def test_int8_export_tracks_the_float_network(small_models) -> None:
    compiled = small_models["digits"]
    images = torch.rand(8, *compiled.shape, generator=torch.Generator().manual_seed(6))
    blob = export_int8(compiled.fp32, images)
    parsed = tflite_reference.read_model(blob)
    out = parsed.tensors[parsed.output]
    codes = np.stack([tflite_reference.run(parsed, x[None])[0] for x in quantize_input(blob, images.numpy())])
    dequantized = (codes.astype(np.float64) - out.zero_point[0]) * out.scale[0]
    with torch.no_grad():
        reference = compiled.fp32(images).numpy()
    assert np.abs(dequantized - reference).max() <= 0.1 * np.abs(reference).max()


def test_unknown_backend_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown TFLite backend"):
        backends.load(b"", backend="tensorflow")
