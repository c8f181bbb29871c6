"""Fixtures for OTA tests: signing keys, test images and bundles, loopback SSH servers, devices."""
from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ota import keys, loopback
from ota.bundle import create_bundle, open_bundle
from ota.artifacts import ArtifactSource
from ota_testlib import (COMPATIBLE, SMALL_SEGMENT, SQUASH_SEGMENT, ModelBundles, Rig, SmallImages,
                         SquashImages, VerifiedImages, make_rig, make_tree, small_image, squash)


@pytest.fixture(scope="session")
def ota_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("keys")
    keys.keygen(directory)
    return directory


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return loopback.make_client_key(tmp_path_factory.mktemp("client") / "id_ed25519")


@pytest.fixture(scope="session")
def squash_images(tmp_path_factory: pytest.TempPathFactory, ota_keys: Path) -> SquashImages:
    base = tmp_path_factory.mktemp("squash")
    tree = make_tree(base / "tree")
    v1 = squash(tree, base / "v1.squashfs")
    (tree / "etc" / "conf050.txt").write_text("calibrated servo offsets: 12 -4 7\n" * 40)
    (tree / "etc" / "version").write_text("2.0.0\n")
    v2 = squash(tree, base / "v2.squashfs")
    key = keys.load_private(ota_keys)
    b1 = create_bundle(v1, base / "v1.ffota", compatible=COMPATIBLE, version="1.0.0", signing_key=key,
                       segment_size=SQUASH_SEGMENT)
    b2 = create_bundle(v2, base / "v2.ffota", compatible=COMPATIBLE, version="2.0.0", signing_key=key,
                       segment_size=SQUASH_SEGMENT)
    return SquashImages(v1, v2, open_bundle(b2, trusted_keys_dir=ota_keys),
                        open_bundle(b1, trusted_keys_dir=ota_keys))


@pytest.fixture(scope="session")
def small_images(tmp_path_factory: pytest.TempPathFactory, ota_keys: Path) -> SmallImages:
    base = tmp_path_factory.mktemp("small")
    v1 = small_image(base / "v1.img", seed=1)
    v2 = small_image(base / "v2.img", seed=2)
    bundle = create_bundle(v2, base / "v2.ffota", compatible=COMPATIBLE, version="2.0.0",
                           signing_key=keys.load_private(ota_keys), segment_size=SMALL_SEGMENT)
    return SmallImages(v1, v2, open_bundle(bundle, trusted_keys_dir=ota_keys))


@pytest.fixture(scope="session")
def model_bundles(tmp_path_factory: pytest.TempPathFactory, ota_keys: Path) -> ModelBundles:
    """Two artifact-only bundles of a file set `model` (its hooks come from the device image)."""
    base = tmp_path_factory.mktemp("models")
    made = []
    for version, seed in (("1.5.0", 21), ("1.6.0", 22)):
        tree = base / version
        tree.mkdir()
        (tree / "weights.bin").write_bytes(random.Random(seed).randbytes(50_000))
        path = create_bundle(None, base / f"model-{version}.ffota", compatible=COMPATIBLE,
                             version=version, signing_key=keys.load_private(ota_keys),
                             artifacts=(ArtifactSource("model", tree),))
        made.append(open_bundle(path, trusted_keys_dir=ota_keys))
    return ModelBundles(*made)


@pytest.fixture(scope="session")
def verified_images(tmp_path_factory: pytest.TempPathFactory, ota_keys: Path,
                    small_images: SmallImages) -> VerifiedImages:
    """The small images as slot images (each with its dm-verity hash tree), for the boot chain's
    rows of the fault table."""
    from images.verity import append_hash_tree

    base = tmp_path_factory.mktemp("verified")
    records = {}
    for name, source in (("v1", small_images.v1), ("v2", small_images.v2)):
        shutil.copyfile(source, base / f"{name}.img")
        records[name] = append_hash_tree(base / f"{name}.img", base / "verity.log").render()
    bundle = create_bundle(base / "v2.img", base / "v2.ffota", compatible=COMPATIBLE, version="2.0.0",
                           signing_key=keys.load_private(ota_keys), segment_size=SMALL_SEGMENT,
                           verity=records["v2"])
    return VerifiedImages(base / "v1.img", base / "v2.img",
                          open_bundle(bundle, trusted_keys_dir=ota_keys), records["v1"])


@pytest.fixture
def fast_path(tmp_path: Path) -> Iterator[Path]:
    """A per-test directory in RAM (/dev/shm) when there is one: the agent fsyncs every state
    change, as it must on a device, and on a shared disk that dominates the tests' time."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="fleetforge-ota-", dir=shm))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def rig(fast_path: Path, small_images: SmallImages, ota_keys: Path, client_key: Path) -> Iterator[Rig]:
    """A loopback device on OpenSSH running the small image v1, the agent under busybox sh."""
    made = make_rig(fast_path, "openssh", small_images.v1, ota_keys, client_key)
    yield made
    made.device.kill_processes()
    made.server.stop()


@pytest.fixture(params=[True, False], ids=["ota-receive", "shell-path"])
def either_rig(request: pytest.FixtureRequest, fast_path: Path, small_images: SmallImages,
               ota_keys: Path, client_key: Path) -> Iterator[Rig]:
    """`rig` with ota-receive (a built image: it writes segments, commits files and checks
    signatures) and without it (the agent's shell path: dd, busybox, openssl)."""
    made = make_rig(fast_path, "openssh", small_images.v1, ota_keys, client_key,
                    receiver=request.param)
    yield made
    made.device.kill_processes()
    made.server.stop()


@pytest.fixture(params=["openssh", "dropbear-shell-path"])
def squash_rig(request: pytest.FixtureRequest, tmp_path: Path, squash_images: SquashImages,
               ota_keys: Path, client_key: Path) -> Iterator[Rig]:
    """Behind OpenSSH with ota-receive (a built image's segment writer), and behind dropbear
    without it: the agent's shell path (the QEMU tests run dropbear with ota-receive)."""
    server, _, path = request.param.partition("-")
    rig = make_rig(tmp_path, server, squash_images.v1, ota_keys, client_key,
                   receiver=path != "shell-path")
    yield rig
    rig.device.kill_processes()
    rig.server.stop()
    shutil.rmtree(tmp_path / "device", ignore_errors=True)
