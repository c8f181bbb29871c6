"""The agent's two ways to write segments, fed hostile and broken streams: ota-receive (what a built
image carries: each segment hashed as it is written, one process for the stream) and the shell
path (dd, then sha256sum or openssl: a device without ota-receive). Both must refuse the same
streams with the same one-line reason, count nothing, leave the booted slot alone, and take the
correct bundle right after."""
from __future__ import annotations

import hashlib
import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

import toolchains
from ota import client, receiver
from ota.bundle import Bundle
from ota_testlib import Rig, SmallImages, install_stream, make_rig, run_install


def _segment(bundle: Bundle, index: int) -> bytes:
    size = bundle.manifest.segment_size
    return bundle.read(index * size, bundle.manifest.segment_length(index))


# Each stream (after the manifest) and the reason the device must give ("|": either).
HOSTILE: dict[str, tuple[Callable[[Bundle], bytes], str]] = {
    "out of order": (lambda b: b"SEG 1 1\nL 10\n" + bytes(10),
                     "receive: segment 1 sent, segment 0 expected"),
    "piece longer than its segment": (
        lambda b: f"SEG 0 1\nL {b.manifest.segment_size + 1}\n".encode(), "receive: bad piece length"),
    "second piece past the segment's end": (
        lambda b: f"SEG 0 2\nL {b.manifest.segment_size}\n".encode() + _segment(b, 0) + b"L 1\nx",
        "receive: bad piece length"),
    "copy from past the booted slot": (lambda b: b"SEG 0 1\nC 999999999999 10\n",
                                       "receive: bad copy piece"),
    "unknown piece": (lambda b: b"SEG 0 1\nX 1\n", "receive: bad piece 'X'"),
    "short segment": (lambda b: b"SEG 0 1\nL 10\n" + bytes(10),
                      "receive: segment 0 has 10 bytes, the manifest "),
    "not a number": (lambda b: b"SEG 0 x\n", "receive: bad segment record"),
    # The shell path cannot see the cut (Debian's busybox dd does not report short reads): it
    # refuses the segment by its size instead.
    "stream cut inside a segment": (lambda b: b"SEG 0 1\nL 100000\n" + bytes(10),
                                    "the update stream ended inside segment 0|"
                                    "receive: segment 0 has 100000 bytes"),
    "one flipped byte": (
        lambda b: b"SEG 0 1\nL %d\n" % b.manifest.segment_size
        + bytes([_segment(b, 0)[0] ^ 1]) + _segment(b, 0)[1:],
        "segment 0 does not match the signed manifest (corrupted bundle?)"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_stream_is_refused_and_the_next_deploy_works(either_rig: Rig, small_images: SmallImages,
                                                             case: str) -> None:
    rig, bundle = either_rig, small_images.v2_bundle
    booted_before = hashlib.sha256(rig.device.slot_bytes("A", rig.device.slot_size)).hexdigest()
    records, reason = HOSTILE[case]

    answer = run_install(rig, install_stream(bundle, records=records(bundle)))

    assert answer.status != 0
    errors = [line for line in answer.stderr.splitlines() if line.startswith("ERR ")]
    assert len(errors) == 1 and any(r in errors[0] for r in reason.split("|")), answer.stderr
    status = client.status(rig.target, rig.options)
    assert (status.state, status.seg_done, status.boot_left["B"]) == ("Download", 0, 0)
    assert hashlib.sha256(rig.device.slot_bytes("A", rig.device.slot_size)).hexdigest() == booted_before

    result = client.deploy(rig.target, rig.options, bundle, show_progress=False, reboot=False)
    assert result.ok, result.message
    assert rig.device.slot_bytes("B", bundle.manifest.rootfs_size) == small_images.v2.read_bytes()


def test_the_built_image_path_is_the_one_used(either_rig: Rig, small_images: SmallImages) -> None:
    """A device with ota-receive writes with it (a silent fall back to the slow path would pass
    every other test); one without it says nothing of it and installs the same bytes."""
    rig, bundle = either_rig, small_images.v2_bundle
    result = client.deploy(rig.target, rig.options, bundle, show_progress=False, reboot=False)
    assert result.ok, result.message
    assert rig.device.slot_bytes("B", bundle.manifest.rootfs_size) == small_images.v2.read_bytes()
    has_receiver = "RECEIVER=" + str(rig.device.root / "bin" / "ota-receive") in rig.device.conf.read_text()
    # Only ota-receive records the download's progress (after each segment it verified).
    progress = rig.device.state_dir / "progress"
    if has_receiver:
        assert progress.read_text().split()[1] == str(bundle.manifest.segment_count)
    else:
        assert not progress.exists()


@pytest.mark.parametrize("target", [t.name for t in toolchains.targets().values() if not t.bare_metal])
def test_ota_receive_builds_warning_free_for_every_linux_target(target: str) -> None:
    """feature/ota's hook builds it for the board's target at image build time: a warning on one
    architecture (32-bit offsets, format widths) would fail that build (-Werror)."""
    program = receiver.build(target)
    assert program.is_file() and program.stat().st_size > 0


def test_ota_receive_device_errors_say_the_next_step(tmp_path: Path) -> None:
    """Run directly: a slot it cannot open, and a commit of a file never written, each end with one
    line naming the next step and a non-zero exit (the agent passes the line on as its reason)."""
    program = str(receiver.build())
    hashes = tmp_path / "segments"
    hashes.write_text("0" * 64 + "\n")
    opened = subprocess.run([program, str(tmp_path / "no" / "slot"), str(hashes), "4096", "4096", "0",
                             str(hashes), str(tmp_path / "progress"), "bundle"],
                            input=b"SEG 0 1\n", capture_output=True)
    assert opened.returncode == 1 and opened.stdout.decode().splitlines() == [
        "ERR cannot open the slots or the segment hashes: No such file or directory: rerun the same "
        "deploy; if it fails again: fleetforge ota.recover"]
    assert not (tmp_path / "progress").exists()
    committed = subprocess.run([program, "--commit", str(tmp_path / "state")], capture_output=True, text=True)
    assert committed.returncode == 1 and "cannot commit" in committed.stderr
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("segment_size", [3 << 20, 1_000_003], ids=["aligned-o-direct", "unaligned"])
def test_ota_receive_writes_exactly_the_verified_bytes(tmp_path: Path, segment_size: int) -> None:
    """Segments of new bytes (L) and of the booted slot's (C) at unaligned offsets reach the slot
    exactly: through the O_DIRECT staging block where the segment size allows it (tmp_path's file
    system takes O_DIRECT), through the page cache where it does not, an unaligned tail either way."""
    rng = random.Random(segment_size)
    image = rng.randbytes(2 * segment_size + 12_345)
    shift = 4_099  # the booted slot holds the same bytes further on: C pieces at unaligned offsets
    active = tmp_path / "active"
    active.write_bytes(rng.randbytes(shift) + image)
    target = tmp_path / "target"
    target.write_bytes(b"\xff" * (len(image) + 4096))
    hashes = tmp_path / "segments"
    hashes.write_text("".join(hashlib.sha256(image[o:o + segment_size]).hexdigest() + "\n"
                              for o in range(0, len(image), segment_size)))
    stream = b""
    for index, start in enumerate(range(0, len(image), segment_size)):
        end = min(start + segment_size, len(image))
        head, tail = start + 777, max(start + 777, end - 1_500)
        stream += b"SEG %d 3\nL 777\n" % index + image[start:head]
        stream += b"C %d %d\n" % (head + shift, tail - head)
        stream += b"L %d\n" % (end - tail) + image[tail:end]
    stream += b"END\n"
    done = subprocess.run([str(receiver.build()), str(target), str(active), str(segment_size),
                           str(len(image)), "0", str(hashes), str(tmp_path / "progress"), "bundle"],
                          input=stream, capture_output=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.decode().splitlines() == ["VERIFIED 0", "VERIFIED 1", "VERIFIED 2", "NEXT END"]
    assert target.read_bytes()[:len(image)] == image
    assert (tmp_path / "progress").read_text() == "bundle 3\n"


def test_ota_receive_verify_names_only_the_keys_that_signed(tmp_path: Path) -> None:
    """--verify (the agent's signature check where ota-receive runs): the Ed25519 keys under which
    the signature is valid, in order; a tampered manifest, another key, an ECDSA key, a malformed
    or missing file: none. The agent's openssl fallback gives the same answers (tests/ota both
    paths: test_bad_signature_refused_by_device, test_a_revoked_key_is_refused_on_host_and_device)."""
    signer, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    pem = lambda key: key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    manifest, signature = tmp_path / "manifest", tmp_path / "manifest.sig"
    manifest.write_bytes(b"format fleetforge-ota-bundle/2\n" * 100)
    signature.write_bytes(signer.sign(manifest.read_bytes()))
    files = {"other.pem": pem(other), "good.pem": pem(signer),
             "ecdsa.pem": pem(ec.generate_private_key(ec.SECP256R1())),
             "junk.pem": b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    keys_given = [str(tmp_path / n) for n in (*files, "missing.pem", "good.pem")]
    program = str(receiver.build())
    checked = subprocess.run([program, "--verify", str(manifest), str(signature), *keys_given],
                             capture_output=True, text=True)
    assert (checked.returncode, checked.stdout.split()) == (0, [str(tmp_path / "good.pem")] * 2)
    manifest.write_bytes(manifest.read_bytes() + b"x")
    tampered = subprocess.run([program, "--verify", str(manifest), str(signature), *keys_given],
                              capture_output=True, text=True)
    assert (tampered.returncode, tampered.stdout) == (0, "")
