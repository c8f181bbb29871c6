"""A compiled model as a signed OTA artifact: the model directory as a file set, its provenance
as signed manifest lines, so the device (and anyone auditing the fleet) can tell which checkpoint,
quantizer, compiler and passes made the bytes it runs (docs/lowbit.md, "Provenance")."""
from __future__ import annotations

import json
import time
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.hashing import sha256_file
from lowbit import artifact
from lowbit.pipeline import GOLDEN_INPUT, GOLDEN_OUTPUT, MODEL_FILE
from ota.artifacts import ArtifactSource
from ota.bundle import create_bundle
from ota.keys import load_private
from ota.manifest import Manifest

ARTIFACT_NAME = "model"
PROVENANCE_PREFIX = "model."


def provenance_lines(model_dir: Path) -> tuple[tuple[str, str], ...]:
    """The manifest lines that bind the deployed bytes to how they were made."""
    model = artifact.load(model_dir / MODEL_FILE)
    p = model.provenance
    return (
        (f"{PROVENANCE_PREFIX}artifact_sha256", sha256_file(model_dir / MODEL_FILE)),
        (f"{PROVENANCE_PREFIX}checkpoint_sha256", p["checkpoint_sha256"]),
        (f"{PROVENANCE_PREFIX}compiler", p["compiler"].replace(" ", "/")),
        (f"{PROVENANCE_PREFIX}passes", ",".join(p["passes"])),
        (f"{PROVENANCE_PREFIX}packing_layout", str(p["packing_layout"])),
        (f"{PROVENANCE_PREFIX}quantizer", json.dumps(p["quantizer"], sort_keys=True,
                                                     separators=(",", ":")).replace(" ", "_")),
    )


def check_model_dir(model_dir: Path) -> None:
    for name in (MODEL_FILE, GOLDEN_INPUT, GOLDEN_OUTPUT, ".fleetforge/check"):
        if not (model_dir / name).is_file():
            raise UserError(f"not a compiled model directory (no {name}; run: fleetforge "
                            f"model.compile --output {model_dir})", where=str(model_dir))
    artifact.load(model_dir / MODEL_FILE)


def model_bundle(model_dir: Path, out: Path, *, compatible: str, keys: Path,
                 version: str | None = None) -> Path:
    """An artifact-only bundle installing `model_dir` as /persist/artifacts/model."""
    check_model_dir(model_dir)
    return create_bundle(None, out, compatible=compatible,
                         version=version or time.strftime("%Y.%m%d.%H%M%S", time.gmtime()),
                         signing_key=load_private(keys),
                         artifacts=(ArtifactSource(ARTIFACT_NAME, model_dir),),
                         extra=provenance_lines(model_dir))


def verify_provenance(manifest: Manifest, model_dir: Path) -> None:
    """The signed manifest's provenance lines describe exactly this model directory."""
    signed = dict(manifest.extra)
    for key, value in provenance_lines(model_dir):
        if signed.get(key) != value:
            raise UserError(f"signed provenance {key} does not match the model "
                            f"({signed.get(key)!r} != {value!r})", where=str(model_dir))
