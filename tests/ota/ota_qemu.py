"""A QEMU device for OTA tests: the built image on a private disk copy, "rebooted" by restarting
QEMU on the same SSH port (the image's QEMU runs with -no-reboot, so a guest reboot exits it)."""
from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from fleetforge.tools import require_tool
from images.manifest import load_manifest
from images.qemu import READY_MARKER, ReadyMarker, free_port, qemu_command
from images.workspace import Workspace


class QemuDevice:
    def __init__(self, workspace: Workspace, workdir: Path, *, guest_reboots: bool = False) -> None:
        # guest_reboots: a reboot or a watchdog reset restarts the guest inside the same QEMU
        # process (no power cycle); `starts` counts QEMU processes (power-ons).
        self.guest_reboots = guest_reboots
        self.starts = 0
        self.manifest = load_manifest(workspace.manifest_path)
        self.images = workdir / "images"
        self.images.mkdir(parents=True, exist_ok=True)
        for name in ("vmlinuz", "initramfs.img"):
            link = self.images / name
            if not link.exists():
                link.symlink_to(workspace.images_dir / name)
        subprocess.run(["cp", "--sparse=always", str(workspace.disk_image),
                        str(self.images / "disk.img")], check=True)
        self.port = free_port()
        self.console = workdir / "console.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.boots: list[str] = []  # slot of each boot, from the console marker
        self.outcomes: list[str] = []  # each boot's boot-step outcome, from the same marker
        self.restart_on_exit = True
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._stopping = False

    def start(self) -> None:
        args = qemu_command(self.manifest, self.images, ssh_port=self.port, headless=True,
                            guest_reboots=self.guest_reboots)
        args[0] = require_tool(args[0], "qemu-system-arm")
        self._ready.clear()
        self.starts += 1
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        threading.Thread(target=self._watch, args=(self.process,), daemon=True).start()

    def _watch(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        with open(self.console, "ab") as log:
            for line in iter(process.stdout.readline, b""):
                log.write(line)
                log.flush()
                text = line.decode("utf-8", "replace")
                if READY_MARKER in text:  # printed once the boot step has its outcome
                    marker = ReadyMarker.parse(text[text.index(READY_MARKER):])
                    self.boots.append(marker.slot)
                    self.outcomes.append(marker.outcome)
                    self._ready.set()
        process.wait()
        with self._lock:
            if self.restart_on_exit and not self._stopping and process is self.process:
                self.start()  # the guest rebooted: power it on again

    def wait_ready(self, timeout: float = 180) -> str:
        if not self._ready.wait(timeout):
            raise TimeoutError(f"no FLEETFORGE_READY within {timeout} s (see {self.console})")
        return self.boots[-1]

    def wait_boots(self, count: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while len(self.boots) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"expected {count} boots, saw {self.boots} (see {self.console})")
            time.sleep(0.2)

    def power_cut(self) -> None:
        """Kill QEMU (no clean shutdown), then power on again."""
        with self._lock:
            process = self.process
            self.process = None
        if process:
            process.send_signal(signal.SIGKILL)
            process.wait()
        self.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            process = self.process
        if process and process.poll() is None:
            process.kill()
            process.wait()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.images, ignore_errors=True)
