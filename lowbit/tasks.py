"""Invoke tasks `model.compile`, `model.bench`, `model.deploy` (thin: the logic is in lowbit)."""
from __future__ import annotations

from pathlib import Path

from invoke import Collection, task

from fleetforge.errors import UserError, exit_on_user_error

DEFAULT_OUTPUT = "build/models/{arch}-w{bits}"


@task(help={"arch": "digits (trained here), resnet18 or yolo (random weights)",
            "bits": "bits of the low-bit layers (1, 2, 4, 8; DeepliteRT defaults for the rest)",
            "epochs": "fp32 training epochs (digits)", "qat_epochs": "QAT epochs (digits)",
            "golden": "golden input/output pairs shipped with the model",
            "output": "model directory (default build/models/ARCH-wBITS)"})
@exit_on_user_error
def compile(c, arch="digits", bits=2, epochs=30, qat_epochs=20, golden=8, output=None):  # noqa: A001
    """Train (or calibrate), quantize, compile and package a model with golden vectors."""
    import json

    from lowbit.pipeline import BuildRequest, compile_to_dir

    request = BuildRequest(arch=arch, bits=int(bits), epochs=int(epochs),
                           qat_epochs=int(qat_epochs), golden=int(golden))
    out = Path(output or DEFAULT_OUTPUT.format(arch=arch, bits=bits))
    _, blob = compile_to_dir(request, out)
    provenance = json.loads((out / "provenance.json").read_text())
    print(f"{out}/model.lbit: {len(blob)} bytes, checkpoint {provenance['checkpoint_sha256'][:16]}, "
          f"{provenance['compiler']}, golden vectors: {request.golden}")


@task(help={"json": "print one JSON object", "quick": "short training and fewer rounds"})
@exit_on_user_error
def bench(c, json=False, quick=False):
    """Sizes, digits accuracy and latency: fp32 torch vs TFLite int8 (LiteRT) vs the 2-bit runtime."""
    from lowbit.bench import BenchOptions, dumps, run_bench, table

    options = BenchOptions(epochs=3, qat_epochs=2, rounds=3) if quick else BenchOptions()
    result = run_bench(options)
    print(dumps(result) if json else table(result))


@task(help={"host": "device as [user@]host[:port]",
            "model": "compiled model directory (default build/models/digits-w2)",
            "workspace": "built workspace: the board's compatible string and the SSH key",
            "version": "artifact version (default: now, YYYY.MMDD.HHMMSS)",
            "identity": "SSH private key", "known_hosts": "known_hosts file",
            "trust_new_host": "record an unknown host key (trust on first use)"})
@exit_on_user_error
def deploy(c, host, model=None, workspace="default", version=None, identity=None, known_hosts=None,
           trust_new_host=False):
    """Send a compiled model as a signed OTA artifact; the device commits it only if its runner
    reproduces the golden outputs bit for bit, else it keeps the old model."""
    from fleetforge.paths import keys_dir, workspaces_dir
    from images.manifest import load_manifest
    from lowbit.deploy import model_bundle
    from ota.tasks import deploy as ota_deploy

    model_dir = Path(model or DEFAULT_OUTPUT.format(arch="digits", bits=2))
    manifest_path = workspaces_dir() / workspace / "images" / "manifest.json"
    if not manifest_path.is_file():
        raise UserError(f"workspace '{workspace}' has no built image (its board's compatible "
                        f"string is needed; run: fleetforge build)", where=str(manifest_path))
    compatible = load_manifest(manifest_path).board.compatible
    out = model_dir.parent / "bundles" / f"{model_dir.name}.ffota"
    bundle_path = model_bundle(model_dir, out, compatible=compatible, keys=keys_dir(), version=version)
    print(f"{bundle_path}: signed model bundle for {compatible}")
    ota_deploy(c, host=host, bundle=str(bundle_path), workspace=workspace, identity=identity,
               known_hosts=known_hosts, trust_new_host=trust_new_host)


namespace = Collection("model")
namespace.add_task(compile)
namespace.add_task(bench)
namespace.add_task(deploy)
