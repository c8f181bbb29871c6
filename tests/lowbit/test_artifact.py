"""The artifact: round trip, reproducible builds, provenance, and one-line errors on bad files."""
from __future__ import annotations

import copy

import pytest
import torch

from fleetforge.errors import UserError
from lowbit import artifact
from lowbit.compiler import checkpoint_hash, compile_model
from lowbit.passes import PACKING_LAYOUT, PIPELINE


@pytest.mark.parametrize("name", ["digits", "resnet", "yolo"])
def test_round_trip_is_byte_identical(small_models, name: str) -> None:
    blob = small_models[name].blob
    parsed = artifact.from_bytes(blob)
    assert artifact.to_bytes(parsed.graph, parsed.meta) == blob


def test_two_builds_of_the_same_input_are_identical(small_models) -> None:
    compiled = small_models["resnet"]
    again = compile_model(copy.deepcopy(compiled.prepared), compiled.shape, name="resnet")
    assert again == compiled.blob


def test_provenance(small_models) -> None:
    compiled = small_models["digits"]
    provenance = artifact.from_bytes(compiled.blob).provenance
    assert provenance["checkpoint_sha256"] == checkpoint_hash(compiled.prepared)
    assert provenance["passes"] == ["lower", *(name for name, _ in PIPELINE)]
    assert provenance["packing_layout"] == PACKING_LAYOUT
    assert provenance["compiler"].startswith("lowbit ")
    assert provenance["quantizer"]["scheme"].startswith("LSQ")
    assert provenance["quantizer"]["layers"]["features.3.weight_quant"] == [2, 1]
    # Another checkpoint (one weight changed) is another model, with another hash.
    changed = copy.deepcopy(compiled.prepared)
    with torch.no_grad():
        changed.get_submodule("features.3").weight[0, 0, 0, 0] += 1.0
    assert checkpoint_hash(changed) != provenance["checkpoint_sha256"]
    other = artifact.from_bytes(compile_model(changed, compiled.shape, name="digits"))
    assert other.provenance["checkpoint_sha256"] != provenance["checkpoint_sha256"]


@pytest.mark.parametrize("damage,message", [
    (lambda b: b"NOTLOWBIT" + b[9:], "bad magic"),
    (lambda b: b[:30], "too short|corrupted"),
    (lambda b: b[:8] + (7).to_bytes(4, "little") + b[12:], "format 7"),
    (lambda b: b[:len(b) // 2], "corrupted"),
])
def test_bad_files_are_one_line_errors(small_models, tmp_path, damage, message) -> None:
    path = tmp_path / "bad.lbit"
    path.write_bytes(damage(small_models["digits"].blob))
    with pytest.raises(UserError, match=message) as error:
        artifact.load(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)
