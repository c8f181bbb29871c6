"""Each compiler pass: what it must leave behind, and that the integer graph still computes the
fake-quantized network."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fleetforge.errors import UserError
from lowbit import passes, reference
from lowbit.lower import lower
from lowbit.pipeline import input_codes

from lowbit_testlib import calibrated


def stages(compiled) -> dict[str, object]:
    graph = lower(compiled.prepared, compiled.shape)
    out = {"lower": graph}
    for name, run in passes.PIPELINE:
        graph = run(graph)
        out[name] = graph
    return out


@pytest.fixture(scope="module")
def resnet_stages(small_models):
    return stages(small_models["resnet"])


def test_lower_keeps_the_float_network(resnet_stages) -> None:
    ops = resnet_stages["lower"].ops()
    assert {"quantize", "conv", "bn", "relu", "add", "maxpool", "avgpool"} <= set(ops)


def test_fold_batchnorm_leaves_no_bn(resnet_stages) -> None:
    graph = resnet_stages["fold_batchnorm"]
    assert "bn" not in graph.ops()
    assert all("bn_scale" in n.consts for n in graph.nodes if n.op == "conv" and n.name != "fc")


def test_fold_batchnorm_refuses_a_bn_without_conv() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    with pytest.raises(UserError, match="must follow a conv"):
        passes.fold_batchnorm(lower(calibrated(model.eval(), (3, 8, 8)), (3, 8, 8)))


def test_fold_scales_folds_steps_and_residual_adds(resnet_stages, small_models) -> None:
    graph = resnet_stages["fold_scales"]
    assert "add" not in graph.ops()
    residual = [n for n in graph.nodes if n.op == "conv" and len(n.inputs) == 2]
    assert len(residual) == 2  # one per block
    conv = graph.node("stages.0.conv1")
    module = small_models["resnet"].prepared.get_submodule("stages.0.conv1")
    bn = small_models["resnet"].prepared.get_submodule("stages.0.bn1")
    expected = (module.input_quant.scales().item() * module.weight_quant.scales().numpy()
                * (bn.weight / torch.sqrt(bn.running_var + bn.eps)).double().detach().numpy())
    assert np.allclose(conv.consts["alpha"], expected)


def test_integer_codes(resnet_stages) -> None:
    graph = resnet_stages["integer_codes"]
    conv = graph.node("stages.0.conv1")
    assert conv.consts["weight"].dtype == np.int8 and conv.consts["weight"].shape == (8, 3, 3, 8)
    assert set(np.unique(conv.consts["weight"])) <= {-2, -1, 0, 1}
    assert graph.tensors[graph.input].dtype == "u8"
    assert graph.producer(graph.output).attrs["epilogues"] == [{"raw": True}]


def test_insert_requantize(resnet_stages) -> None:
    graph = resnet_stages["insert_requantize"]
    assert not {"quantize", "relu"} & set(graph.ops())
    for node in graph.nodes:
        if node.op == "maxpool":  # max pools now work on codes, right after a requantization
            assert graph.tensors[node.inputs[0]].dtype in ("u8", "i8")


def test_fixed_point_is_close() -> None:
    m = np.array([0.0123, 3.5e-4, 1.75])
    offset = np.array([0.5, -2.0, 10.0])
    (ints,), bias, shift = passes.fixed_point([m], offset)
    assert np.allclose(ints / 2.0 ** shift, m, rtol=1e-6)
    assert np.allclose((bias - (1 << (shift - 1))) / 2.0 ** shift, offset, atol=2.0 ** -shift)


def test_fuse_epilogues(resnet_stages) -> None:
    graph = resnet_stages["fuse_epilogues"]
    assert "requantize" not in graph.ops()
    stem = graph.node("stem.0")
    assert len(stem.attrs["epilogues"]) == 2  # codes for the 2-bit conv and the 8-bit shortcut


def test_pack_bitplanes_layout() -> None:
    codes = np.zeros((1, 70), dtype=np.int64)
    codes[0, 0], codes[0, 1], codes[0, 65] = 1, 2, 3
    planes = passes.bitplanes(codes, 2, "unsigned")
    assert planes.shape == (1, 2, 2)  # (…, planes, words): 70 channels -> 2 words
    assert planes[0, 0, 0] == 0b01 and planes[0, 1, 0] == 0b10  # channel c at bit c, LSB first
    assert planes[0, 0, 1] == 0b10 and planes[0, 1, 1] == 0b10  # channel 65 -> word 1 bit 1
    signed = np.random.default_rng(0).integers(-2, 2, size=(3, 100))
    back = reference.unpack_planes(passes.bitplanes(signed, 2, "twos_complement"), 100, "twos_complement")
    assert np.array_equal(back, signed)
    binary = np.random.default_rng(1).choice([-1, 1], size=(3, 64))
    assert np.array_equal(reference.unpack_planes(passes.bitplanes(binary, 1, "binary"), 64, "binary"), binary)


def test_pack_bitplanes_picks_kernels(resnet_stages) -> None:
    graph = resnet_stages["pack_bitplanes"]
    kinds = {n.name: n.attrs["kind"] for n in graph.nodes if n.op == "conv"}
    assert kinds["stages.0.conv1"] == "bitserial" and kinds["stem.0"] == "int8"
    assert kinds["stages.1.downsample.0"] == "int8" and kinds["fc"] == "int8"
    assert graph.node("stages.0.conv1").consts["weight"].dtype == np.uint64


@pytest.mark.parametrize("encoding,bits", [("twos_complement", 2), ("twos_complement", 4), ("binary", 1)])
def test_bitserial_dot_is_the_integer_dot(encoding: str, bits: int) -> None:
    rng = np.random.default_rng(bits)
    a = rng.integers(0, 4, size=100)
    w = rng.choice([-1, 1], size=100) if encoding == "binary" else rng.integers(-(1 << bits - 1), 1 << bits - 1, size=100)
    got = reference.bitserial_dot(passes.bitplanes(a, 2, "unsigned"), passes.bitplanes(w, bits, encoding), encoding)
    assert got == int(np.dot(a, w))


def test_insert_bitpack(resnet_stages) -> None:
    graph = resnet_stages["insert_bitpack"]
    for conv in (n for n in graph.nodes if n.op == "conv" and n.attrs["kind"] == "bitserial"):
        assert graph.producer(conv.inputs[0]).op == "bitpack"


def test_check_overflow_refuses_a_layer_that_can_overflow(resnet_stages) -> None:
    graph = resnet_stages["insert_bitpack"].copy()
    graph.node("stem.0").attrs["in_channels"] = 1 << 20  # a (pretend) enormous fan-in
    with pytest.raises(UserError, match="stem.0.*overflow int32"):
        passes.check_overflow(graph)
    assert passes.check_overflow(resnet_stages["insert_bitpack"]).passes[-1] == "check_overflow"


@pytest.mark.parametrize("name", ["digits", "resnet", "yolo"])
def test_integer_graph_computes_the_fake_quant_model(small_models, name: str) -> None:
    compiled = small_models[name]
    images = torch.rand(2, *compiled.shape, generator=torch.Generator().manual_seed(1))
    model = compiled.model
    codes = input_codes(model.meta, images)
    scale = model.graph.nodes[-1].consts["output_scale"]
    with torch.no_grad():
        fake = compiled.prepared(images)
    fake = fake.permute(0, 2, 3, 1) if fake.dim() == 4 else fake[:, None, None, :]
    for i in range(2):
        got = reference.run(model.graph, codes[i]) * scale
        spread = float(fake[i].abs().max())
        assert np.abs(got - fake[i].numpy()).max() <= 0.05 * spread  # rounding of M, not a bug
