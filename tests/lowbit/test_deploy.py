"""Model directories and signed model bundles (host side): golden vectors, the check script,
provenance in the signed manifest, and the `model.compile` task."""
from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest
import torch

from fleetforge.cli import main
from fleetforge.errors import UserError
from lowbit import artifact
from lowbit.build import build_runner
from lowbit.deploy import PROVENANCE_PREFIX, model_bundle, verify_provenance
from lowbit.pipeline import GOLDEN_INPUT, GOLDEN_OUTPUT, MODEL_FILE, write_model_dir
from ota import keys
from ota.bundle import open_bundle


@pytest.fixture(scope="module")
def model_dir(small_models, tmp_path_factory):
    compiled = small_models["digits"]
    images = torch.rand(4, *compiled.shape, generator=torch.Generator().manual_seed(2))
    return write_model_dir(tmp_path_factory.mktemp("model") / "digits", compiled.blob, images)


def test_model_dir_checks_itself_with_the_shipped_script(model_dir, tmp_path) -> None:
    assert (model_dir / MODEL_FILE).read_bytes()[:8] == b"FFLOWBIT"
    outputs = np.frombuffer((model_dir / GOLDEN_OUTPUT).read_bytes(), "<i4")
    assert outputs.size == 4 * 10 and (model_dir / GOLDEN_INPUT).stat().st_size == 4 * 64
    # The check script the device runs, with this machine's runner first on PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lowbit-run").symlink_to(build_runner())
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "ARTIFACT_DIR": str(model_dir)}
    done = subprocess.run([str(model_dir / ".fleetforge" / "check")], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and "bit-exact" in done.stdout


def test_bundle_signs_the_provenance(model_dir, tmp_path) -> None:
    keys.keygen(tmp_path / "keys")
    path = model_bundle(model_dir, tmp_path / "model.ffota", compatible="fleetforge-qemu-aarch64",
                        keys=tmp_path / "keys", version="1.0.0")
    bundle = open_bundle(path, trusted_keys_dir=tmp_path / "keys")
    assert [(a.name, a.kind) for a in bundle.manifest.artifacts] == [("model", "tree")]
    signed = dict(bundle.manifest.extra)
    provenance = artifact.load(model_dir / MODEL_FILE).provenance
    assert signed[f"{PROVENANCE_PREFIX}checkpoint_sha256"] == provenance["checkpoint_sha256"]
    assert signed[f"{PROVENANCE_PREFIX}passes"] == ",".join(provenance["passes"])
    verify_provenance(bundle.manifest, model_dir)
    # A model swapped after signing (another checkpoint's bytes) no longer matches.
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    for name in (MODEL_FILE, GOLDEN_INPUT, GOLDEN_OUTPUT):
        (swapped / name).parent.mkdir(exist_ok=True)
        (swapped / name).write_bytes((model_dir / name).read_bytes())
    blob = bytearray((swapped / MODEL_FILE).read_bytes())
    blob[-1] ^= 1
    (swapped / MODEL_FILE).write_bytes(bytes(blob))
    with pytest.raises(UserError, match="artifact_sha256"):
        verify_provenance(bundle.manifest, swapped)


def test_model_compile_task(tmp_path, capsys) -> None:
    """`fleetforge model.compile` (the console script's main, in this process) end to end,
    without training (calibration only: the training loops are the bench's)."""
    out = tmp_path / "digits"
    main(["model.compile", "--epochs", "0", "--qat-epochs", "0", "--golden", "2", "--output", str(out)])
    assert (out / MODEL_FILE).is_file() and "checkpoint" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["model.compile", "--bits", "9"])
    error = capsys.readouterr().err
    assert done.value.code == 2 and error.startswith("error: quantizer setting low_bits=9")
    assert "Traceback" not in error and error.count("\n") == 1
