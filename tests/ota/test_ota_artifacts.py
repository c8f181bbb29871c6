"""Bundles with extra artifacts (a model file, a file set): artifact-only updates, artifacts that
commit and roll back with their slot, and tampered artifacts refused on the host and the device."""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetforge.errors import UserError
from ota import client, keys
from ota.artifacts import ArtifactSource
from ota.bundle import Bundle, create_bundle, open_bundle
from ota.states import chain_is_valid
from ota_testlib import COMPATIBLE, SQUASH_SEGMENT, Rig, SquashImages, install_stream, run_install

ROLLBACK_CHAIN = ["Download", "Verify", "Activate", "Reboot", "VerifyReboot", "Rollback",
                  "RollbackReboot", "VerifyRollback", "Failure", "Cleanup", "Idle"]


@dataclass(frozen=True)
class ArtifactBundles:
    model_v1: bytes
    model_v2: bytes
    labels: Path                 # the file set shipped with model v1
    only_v15: Bundle             # artifacts only: model v1 + labels, version 1.5.0
    rootfs_v2: Bundle            # squashfs v2 + model v2, version 2.0.0


@pytest.fixture(scope="module")
def artifact_bundles(tmp_path_factory: pytest.TempPathFactory, ota_keys: Path,
                     squash_images: SquashImages) -> ArtifactBundles:
    base = tmp_path_factory.mktemp("artifacts")
    key = keys.load_private(ota_keys)
    v1, v2 = random.Random(11).randbytes(300_000), random.Random(12).randbytes(280_000)
    (base / "m1").mkdir()
    (base / "m1" / "model.tflite").write_bytes(v1)
    (base / "m2").mkdir()
    (base / "m2" / "model.tflite").write_bytes(v2)
    labels = base / "labels"
    (labels / "sub").mkdir(parents=True)
    (labels / "classes.txt").write_text("wheel\nservo\nlidar\n")
    (labels / "sub" / "golden.bin").write_bytes(bytes(range(256)) * 10)
    only = create_bundle(None, base / "only.ffota", compatible=COMPATIBLE, version="1.5.0",
                         signing_key=key, artifacts=(ArtifactSource("model", base / "m1" / "model.tflite"),
                                                     ArtifactSource("labels", labels)))
    both = create_bundle(squash_images.v2, base / "both.ffota", compatible=COMPATIBLE,
                         version="2.0.0", signing_key=key, segment_size=SQUASH_SEGMENT,
                         artifacts=(ArtifactSource("model", base / "m2" / "model.tflite"),))
    return ArtifactBundles(v1, v2, labels, open_bundle(only, trusted_keys_dir=ota_keys),
                           open_bundle(both, trusted_keys_dir=ota_keys))


def _artifacts(rig: Rig) -> Path:
    return rig.device.persist / "artifacts"


def _install_v15(rig: Rig, bundles: ArtifactBundles) -> client.DeployResult:
    return client.deploy(rig.target, rig.options, bundles.only_v15, show_progress=False)


def test_artifact_only_update_installs_without_touching_slots(
        squash_rig: Rig, squash_images: SquashImages, artifact_bundles: ArtifactBundles) -> None:
    rig, bundles = squash_rig, artifact_bundles
    result = _install_v15(rig, bundles)

    assert result.ok and result.message == "installed artifacts of version 1.5.0"
    assert not rig.device.reboot_requested
    status = client.status(rig.target, rig.options)
    assert status.history == ["Download", "Verify", "Activate", "Switch", "Check", "Commit", "Idle"]
    assert chain_is_valid(status.history)
    assert (status.booted, status.boot_order, status.boot_left) == ("A", "A B", {"A": 3, "B": 3})
    assert status.slot_versions == {"A": "1.0.0", "B": "factory"}
    assert rig.device.slot_bytes("B", 4096) == squash_images.v1.read_bytes()[:4096]
    installed = {a.name: a for a in status.artifacts}
    assert set(installed) == {"model", "labels"}
    model = bundles.only_v15.manifest.artifacts[0]
    assert (installed["model"].version, installed["model"].sha256) == ("1.5.0", model.sha256)
    art = _artifacts(rig)
    assert (art / "model" / "model.tflite").read_bytes() == bundles.model_v1
    assert (art / "labels" / "classes.txt").read_text() == "wheel\nservo\nlidar\n"
    assert (art / "labels" / "sub" / "golden.bin").read_bytes() == bytes(range(256)) * 10
    # Sending it again changes nothing and sends nothing: the content is already there.
    again = _install_v15(rig, bundles)
    assert again.ok and again.sent_bytes == 0
    assert sorted(p.name for p in (art / ".store").iterdir()) == \
        sorted(Path(p).name for p in (str((art / n).readlink()) for n in ("model", "labels")))


def test_rootfs_artifact_rolls_back_with_its_slot_then_commits_with_it(
        squash_rig: Rig, artifact_bundles: ArtifactBundles) -> None:
    rig, bundles = squash_rig, artifact_bundles
    assert _install_v15(rig, bundles).ok
    check = rig.device.health_dir / "50-app-starts"
    check.write_text("exit 1\n")

    failed = client.deploy(rig.target, rig.options, bundles.rootfs_v2, show_progress=False,
                           boot_timeout=30)

    assert not failed.ok and failed.history == ROLLBACK_CHAIN
    art = _artifacts(rig)
    assert (art / "model" / "model.tflite").read_bytes() == bundles.model_v1
    status = client.status(rig.target, rig.options)
    assert {a.name: a.version for a in status.artifacts} == {"model": "1.5.0", "labels": "1.5.0"}
    assert len(list((art / ".store").iterdir())) == 2  # the staged model v2 was dropped
    assert not (art / ".incoming").exists()

    check.unlink()
    committed = client.deploy(rig.target, rig.options, bundles.rootfs_v2, show_progress=False,
                              boot_timeout=30)

    assert committed.ok, committed.message
    assert (art / "model" / "model.tflite").read_bytes() == bundles.model_v2
    status = client.status(rig.target, rig.options)
    assert status.booted == "B" and status.slot_versions["B"] == "2.0.0"
    assert {a.name: a.version for a in status.artifacts} == {"model": "2.0.0", "labels": "1.5.0"}
    assert len(list((art / ".store").iterdir())) == 2  # model v1 is gone, labels stay
    with pytest.raises(UserError, match="artifact model: bundle version 1.5.0 is older than the "
                                        "installed 2.0.0 \\(downgrade refused; pass --allow-downgrade"):
        _install_v15(rig, bundles)
    assert (art / "model" / "model.tflite").read_bytes() == bundles.model_v2


def test_tampered_artifact_refused_with_nothing_written(
        squash_rig: Rig, artifact_bundles: ArtifactBundles, tmp_path: Path, ota_keys: Path) -> None:
    rig, bundle = squash_rig, artifact_bundles.only_v15
    # On the host: a bundle file whose artifact bytes changed after signing.
    tampered = tmp_path / "tampered.ffota"
    data = bytearray(bundle.path.read_bytes())
    data[bundle.artifacts[0].offset + 100] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(UserError, match="artifact model: sha256 differs from the signed manifest"):
        open_bundle(tampered, trusted_keys_dir=ota_keys)
    # On the device: a client that skips that check and sends the changed bytes.
    item = bundle.artifacts[0]
    bad = bytearray(bundle.path.read_bytes()[item.offset:item.offset + item.artifact.size])
    bad[100] ^= 0xFF
    answer = run_install(rig, install_stream(bundle, records=f"ART model {len(bad)}\n".encode()
                                             + bytes(bad)))
    assert answer.status != 0
    assert "artifact model does not match the signed manifest" in answer.stderr
    art = _artifacts(rig)
    assert not (art / "model").exists()
    assert list((art / ".store").iterdir()) == [] and list((art / ".incoming").iterdir()) == []
    status = client.status(rig.target, rig.options)
    assert status.artifacts == () and status.boot_left == {"A": 3, "B": 3}


# Contract A: hooks of an artifact-only update. The artifact's own .fleetforge/activate|check
# win over the image's /etc/fleetforge/artifacts.d/NAME/activate|check; each call is logged.
HOOK = '#!/bin/sh\necho "{hook} $ARTIFACT_NAME $ARTIFACT_DIR ${{PREVIOUS_DIR:--}}" >> {log}\n{tail}'


def _app_tree(base: Path, log: Path, *, weights: bytes, check_tail: str) -> Path:
    tree = base / "tree"
    (tree / ".fleetforge").mkdir(parents=True)
    (tree / "app.bin").write_bytes(weights)
    for hook, tail in (("activate", ""), ("check", check_tail)):
        path = tree / ".fleetforge" / hook
        path.write_text(HOOK.format(hook=hook, log=log, tail=tail))
        path.chmod(0o755)
    return tree


def test_artifact_hooks_activate_check_and_switch_back(rig: Rig, ota_keys: Path, tmp_path: Path) -> None:
    log = rig.device.root / "hooks.log"
    with open(rig.device.conf, "a") as conf:
        conf.write("HEALTH_TIMEOUT=30\n")
    image_hooks = rig.device.root / "etc" / "artifacts.d" / "extra"
    image_hooks.mkdir(parents=True)
    (image_hooks / "activate").write_text(HOOK.format(hook="image-activate", log=log, tail=""))
    (image_hooks / "activate").chmod(0o755)
    key = keys.load_private(ota_keys)
    # v1: its check says "not yet" (exit 75, EX_TEMPFAIL) once, then passes: a service that
    # needs a moment to start is retried (contract A.1).
    counter = rig.device.root / "checks"
    v1 = _app_tree(tmp_path / "v1", log, weights=b"v1" * 1000,
                   check_tail=f'echo x >> {counter}; [ "$(wc -l < {counter})" -ge 2 ] || exit 75\n')
    b1 = open_bundle(create_bundle(None, tmp_path / "v1.ffota", compatible=COMPATIBLE,
                                   version="1.0.0", signing_key=key,
                                   artifacts=(ArtifactSource("app", v1),)),
                     trusted_keys_dir=ota_keys)
    first = client.deploy(rig.target, rig.options, b1, show_progress=False)
    assert first.ok, first.message
    art = rig.device.persist / "artifacts"
    v1_dir = str(art / (art / "app").readlink())
    assert log.read_text().splitlines() == [f"activate app {v1_dir} -", f"check app {v1_dir} -",
                                            f"check app {v1_dir} -"]
    log.write_text("")

    # v2 brings a new artifact `extra` (hooks from the image) and an app whose check fails for
    # good (exit 3: not 75), so it is switched back at once, not after HEALTH_TIMEOUT.
    v2 = _app_tree(tmp_path / "v2", log, weights=b"v2" * 1000, check_tail="exit 3\n")
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "data.txt").write_text("extra\n")
    b2 = open_bundle(create_bundle(None, tmp_path / "v2.ffota", compatible=COMPATIBLE,
                                   version="2.0.0", signing_key=key,
                                   artifacts=(ArtifactSource("app", v2),
                                              ArtifactSource("extra", tmp_path / "extra"))),
                     trusted_keys_dir=ota_keys)
    started = time.monotonic()
    failed = client.deploy(rig.target, rig.options, b2, show_progress=False)

    assert not failed.ok
    assert failed.message == "rolled back: artifact app check failed (exit 3)"
    assert time.monotonic() - started < 20  # well inside HEALTH_TIMEOUT: no retries
    assert not rig.device.reboot_requested
    assert str(art / (art / "app").readlink()) == v1_dir  # switched back
    assert not (art / "extra").exists()  # it did not exist before: removed
    assert [p.name for p in (art / ".store").iterdir()] == [Path(v1_dir).name]
    calls = log.read_text().splitlines()
    v2_dir = calls[0].split()[2]
    assert calls[0] == f"activate app {v2_dir} {v1_dir}"
    assert calls[1].startswith("image-activate extra /") and calls[1].endswith(" -")
    assert calls[2:-2] == [f"check app {v2_dir} {v1_dir}"]  # one try: it failed for good
    # Switched back: the previous versions are activated again (no previous `extra`: the
    # image's hook hears that it is gone with an empty ARTIFACT_DIR).
    assert calls[-2:] == [f"activate app {v1_dir} {v2_dir}",
                          f"image-activate extra  {calls[1].split()[2]}"]
    status = client.status(rig.target, rig.options)
    assert status.state == "Idle" and status.result == failed.message
    assert status.history == ["Download", "Verify", "Activate", "Switch", "Check", "Revert",
                              "Failure", "Cleanup", "Idle"]
    assert chain_is_valid(status.history)
    assert {a.name: a.version for a in status.artifacts} == {"app": "1.0.0"}


def test_time_stamped_versions_compare_as_numbers(rig: Rig, ota_keys: Path, tmp_path: Path) -> None:
    """App and model versions are build times (`2026.1130.032553`): a component with a leading
    zero is a decimal number, not octal (busybox awk reads "032553" as 13675, so a newer build
    made before 10:00 UTC was refused as a downgrade)."""
    key = keys.load_private(ota_keys)

    def model(version: str) -> Bundle:
        (tmp_path / version).mkdir()
        (tmp_path / version / "model.bin").write_bytes(version.encode())
        return open_bundle(create_bundle(None, tmp_path / f"{version}.ffota", compatible=COMPATIBLE,
                                         version=version, signing_key=key,
                                         artifacts=(ArtifactSource("model", tmp_path / version),)),
                           trusted_keys_dir=ota_keys)

    for version in ("2026.1130.032549", "2026.1130.032553", "2026.1130.100000"):
        result = client.deploy(rig.target, rig.options, model(version), show_progress=False)
        assert result.ok, f"{version}: {result.message}"
    with pytest.raises(UserError, match="older than the installed 2026.1130.100000"):
        client.deploy(rig.target, rig.options, model("2026.1130.099999"), show_progress=False)
