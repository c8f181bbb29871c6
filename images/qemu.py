"""Boot a workspace's image in QEMU: interactively, or headless as a health check (--check)."""
from __future__ import annotations

import functools
import os
import select
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.ssh import Connection, HostKey, PinnedKeys, Target
from fleetforge.tools import start_tool
from images.manifest import Manifest, load_manifest
from images.workspace import Workspace

READY_MARKER = "FLEETFORGE_READY"
FAILURE_MARKERS = ("FLEETFORGE_INIT_FAILED", "Kernel panic", "end Kernel panic")
QEMU_PACKAGES = {"qemu-system-aarch64": "qemu-system-arm", "qemu-system-arm": "qemu-system-arm",
                 "qemu-system-x86_64": "qemu-system-x86"}


# The boot step's outcomes (the marker's boot=, docs/ab-boot.md) after which the device is up and
# stays on its slot; any other (rolling-back, unhealthy, failed, timeout, unsettled) is a failed boot.
HEALTHY_OUTCOMES = ("good", "committed", "rolled-back")


@dataclass(frozen=True)
class ReadyMarker:
    """The console's FLEETFORGE_READY line: printed once the boot's commit decision is made."""

    hostname: str
    slot: str
    outcome: str  # the boot step's outcome, "?" from an image that predates it

    @classmethod
    def parse(cls, line: str) -> "ReadyMarker":
        fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
        return cls(fields.get("hostname", "?"), fields.get("slot", "?"), fields.get("boot", "?"))


@dataclass(frozen=True)
class BootCheck:
    """A healthy boot: what the console said and how long each milestone took."""

    hostname: str
    slot: str
    outcome: str  # the boot step's outcome (ReadyMarker.outcome)
    marker_seconds: float  # QEMU start to the console marker
    ssh_seconds: float  # QEMU start to the SSH banner through the port forward
    ssh_port: int
    console_log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def qemu_command(manifest: Manifest, images_dir: Path, *, ssh_port: int,
                 headless: bool, guest_reboots: bool = False) -> list[str]:
    """The QEMU command line for the board in the manifest (direct kernel boot, virtio disk/net).

    A headless QEMU exits when the guest resets, unless `guest_reboots`: then a reboot (or the
    watchdog) restarts the guest in the same QEMU, from the chooser on, as a board does.
    """
    board = manifest.board
    if not board.qemu_system:
        raise UserError(f"board {board.name} cannot boot in QEMU (it has no qemu_system)")
    args = [board.qemu_system, "-M", board.qemu_machine, "-m", "256", "-smp", "1",
            "-nodefaults",
            "-kernel", str(images_dir / "vmlinuz"), "-initrd", str(images_dir / "initramfs.img"),
            "-append", manifest.kernel_cmdline,
            "-drive", f"file={images_dir / 'disk.img'},if=none,format=raw,id=disk0",
            "-device", "virtio-blk-pci,drive=disk0",
            "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
            "-device", "virtio-net-pci,netdev=net0",
            "-device", "virtio-rng-pci"]
    for device in board.qemu_devices:
        args += ["-device", device]
    if board.arch == "x86_64" and kvm_works(board.qemu_system, board.qemu_machine):
        args += ["-accel", "kvm", "-cpu", "host"]
    elif board.qemu_cpu:
        args += ["-cpu", board.qemu_cpu]
    if headless:
        # A headless run ends when the guest reboots or panics (panic=5), so a check or test
        # sees it; the caller starts QEMU again to follow a reboot.
        args += ([] if guest_reboots else ["-no-reboot"])
        args += ["-display", "none", "-serial", "stdio", "-monitor", "none"]
    else:
        # Interactive: a reboot reboots, as on the robot (an OTA trial boot or a fallback needs it).
        args += ["-nographic", "-serial", "mon:stdio"]
    return args


@functools.cache
def kvm_works(qemu_system: str, machine: str) -> bool:
    """Whether QEMU can really start a KVM guest here (/dev/kvm can exist yet refuse the host
    CPU model, e.g. nested virtualisation); a paused guest that stays up counts as working."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    probe = start_tool([qemu_system, "-accel", "kvm", "-cpu", "host", "-M", machine, "-nodefaults",
                        "-display", "none", "-monitor", "none", "-serial", "none", "-S"],
                       debian_package=_package_for(qemu_system))
    try:
        probe.wait(timeout=1.5)
        return False  # it exited: KVM refused
    except subprocess.TimeoutExpired:
        return True
    finally:
        _kill(probe)


def _package_for(system: str) -> str:
    return QEMU_PACKAGES.get(system, "qemu-system")


def boot_interactive(workspace: Workspace) -> int:
    manifest = load_manifest(workspace.manifest_path)
    port = free_port()
    args = qemu_command(manifest, workspace.images_dir, ssh_port=port, headless=False)
    host_key = workspace.device_host_key_pub
    if host_key.is_file():
        print(f"device host key: {HostKey.parse(host_key.read_text())} (the build created it)")
    print(f"SSH: ssh -i {workspace.ssh_key} -p {port} root@127.0.0.1   (quit QEMU: Ctrl-A X)")
    process = start_tool(args, debian_package=_package_for(args[0]), interactive=True)
    return process.wait()


def _ssh_banner(port: int) -> bool:
    # User-mode networking accepts on the host port even when nothing listens in the guest, so
    # only the server's identification line proves sshd is up.
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.settimeout(1.0)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def boot_check(workspace: Workspace, *, timeout: float = 120.0, power_off: bool = True,
               keep_running: bool = False) -> BootCheck:
    """Boot headless; healthy = console marker seen and SSH answering. Raise UserError otherwise."""
    machine = BootedMachine.start(workspace, timeout=timeout)
    if not keep_running:
        machine.stop(power_off=power_off)
    return machine.check


class BootedMachine:
    """A running QEMU guest booted from a workspace (also used by tests to SSH in)."""

    def __init__(self, process: subprocess.Popen[bytes], check: BootCheck, workspace: Workspace) -> None:
        self.process = process
        self.check = check
        self.workspace = workspace

    @classmethod
    def start(cls, workspace: Workspace, *, timeout: float = 120.0,
              images_dir: Path | None = None) -> BootedMachine:
        """Boot the workspace's image (or the same files in `images_dir`, e.g. a private copy
        of the disk, so the workspace's stays as built)."""
        manifest = load_manifest(workspace.manifest_path)
        port = free_port()
        args = qemu_command(manifest, images_dir or workspace.images_dir, ssh_port=port,
                            headless=True)
        workspace.logs_dir.mkdir(parents=True, exist_ok=True)
        console_log = workspace.logs_dir / "console.log"
        started = time.monotonic()
        process = start_tool(args, debian_package=_package_for(args[0]))
        try:
            check = wait_healthy(process, port, console_log, started, timeout)
        except BaseException:
            _kill(process)
            raise
        # Keep reading the console so a chatty guest never blocks on a full pipe.
        threading.Thread(target=_drain, args=(process, console_log), daemon=True).start()
        return cls(process, check, workspace)

    def ssh(self, timeout: float = 20) -> Connection:
        """An SSH connection as root with the workspace key, to the host key the build created
        (seeded into the image's persist partition): a guest answering with another key is
        refused, never recorded."""
        pub = self.workspace.device_host_key_pub
        if not pub.is_file():
            raise UserError("this image predates recorded device host keys: rebuild it "
                            "(fleetforge build)", where=str(pub))
        return Connection(Target("127.0.0.1", self.check.ssh_port),
                          identity=self.workspace.ssh_key,
                          host_keys=PinnedKeys((HostKey.parse(pub.read_text()),)), timeout=timeout)

    def run(self, command: str, timeout: float = 20) -> str:
        """Run `command` on the guest over SSH; its stdout. Raise UserError when it fails."""
        with self.ssh() as conn:
            result = conn.run(["sh", "-c", command], timeout=timeout)
        if result.status != 0:
            raise UserError(f"`{command}` failed on the guest: {result.stderr.strip()}")
        return result.stdout

    def stop(self, *, power_off: bool = True) -> None:
        """Power off through SSH (a clean shutdown), or kill QEMU if that does not work."""
        if power_off and self.process.poll() is None:
            try:
                with self.ssh(timeout=10) as conn:
                    conn.start(["poweroff"]).close_stdin()
                    self.process.wait(timeout=20)
            except (UserError, OSError, subprocess.TimeoutExpired):
                pass
        _kill(self.process)


def _drain(process: subprocess.Popen[bytes], console_log: Path) -> None:
    try:
        with open(console_log, "ab") as log:
            for chunk in iter(lambda: process.stdout.read1(65536), b""):
                log.write(chunk)
                log.flush()
    except (OSError, ValueError):
        pass  # QEMU stopped and the pipe was closed


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout:
        process.stdout.close()


def _whole_line(process: subprocess.Popen[bytes], fd: int, log, text: str,
                grace: float = 5.0) -> str:
    """The console line that starts `text`, read to its end: a failure message often arrives in
    more than one chunk. Gives up after `grace` seconds or when QEMU exits."""
    deadline = time.monotonic() + grace
    data = text.encode()
    while b"\n" not in data and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            log.write(chunk)
            data += chunk
        elif process.poll() is not None:
            break
    return data.decode("utf-8", "replace").split("\n")[0].rstrip("\r")


def wait_healthy(process: subprocess.Popen[bytes], port: int, console_log: Path,
                  started: float, timeout: float) -> BootCheck:
    assert process.stdout is not None
    fd = process.stdout.fileno()
    buffer = b""
    marker: ReadyMarker | None = None
    marker_at = 0.0
    ssh_at: float | None = None
    next_probe = 0.0
    with open(console_log, "wb") as log:
        while True:
            now = time.monotonic()
            elapsed = now - started
            if elapsed > timeout:
                missing = "console marker" if marker is None else "SSH server"
                raise UserError(f"boot check timed out after {timeout:.0f} s waiting for the "
                                f"{missing} (console: {console_log})")
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    process.wait()
                    raise UserError(f"QEMU exited with code {process.returncode} before the "
                                    f"system was healthy (console: {console_log})")
                log.write(chunk)
                log.flush()
                buffer += chunk
                text = buffer.decode("utf-8", "replace")
                for bad in FAILURE_MARKERS:
                    if bad in text:
                        line = _whole_line(process, fd, log, text[text.index(bad):])
                        raise UserError(f"boot failed: {line.strip()} (console: {console_log})")
                if marker is None and READY_MARKER in text:
                    line = text[text.index(READY_MARKER):].split("\n")[0]
                    if "\n" in text[text.index(READY_MARKER):]:
                        marker, marker_at = ReadyMarker.parse(line), time.monotonic() - started
                        if marker.outcome not in HEALTHY_OUTCOMES + ("?",):
                            raise UserError(f"boot step on slot {marker.slot}: {marker.outcome} "
                                            f"(the device's /persist/ota/boot.log and `fleetforge "
                                            f"ota.status` say why; console: {console_log})")
                buffer = buffer[-4096:]
            if marker is not None and ssh_at is None and now >= next_probe:
                if _ssh_banner(port):
                    ssh_at = time.monotonic() - started
                next_probe = time.monotonic() + 0.2
            if marker is not None and ssh_at is not None:
                return BootCheck(marker.hostname, marker.slot, marker.outcome, marker_at, ssh_at,
                                 port, console_log)
