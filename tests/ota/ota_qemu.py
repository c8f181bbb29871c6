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
from images.qemu import BOOT_SETTLED, free_port, qemu_command, wait_boot_settled
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
                if "FLEETFORGE_READY" in text:
                    self.boots.append(text.rsplit("slot=", 1)[-1].strip())
                    self._ready.set()
        process.wait()
        with self._lock:
            if self.restart_on_exit and not self._stopping and process is self.process:
                self.start()  # the guest rebooted: power it on again

    def wait_ready(self, timeout: float = 180) -> str:
        if not self._ready.wait(timeout):
            raise TimeoutError(f"no FLEETFORGE_READY within {timeout} s (see {self.console})")
        return self.boots[-1]

    def wait_settled(self, identity: Path, timeout: float = 180) -> None:
        """Until this boot's commit decision is made (docs/ab-boot.md: boot-settled): the agent
        refuses updates while its boot step runs. Asks over SSH with a known_hosts of its own,
        so the caller's (which a test may expect empty) is untouched."""
        from fleetforge.ssh import Target
        from ota.client import SshOptions

        options = SshOptions(identity=identity, known_hosts=self.images.parent / "settle_known_hosts",
                             trust_new_host=True, timeout=30)

        def settled() -> bool:
            with options.connect(Target("127.0.0.1", self.port)) as conn:
                return conn.run(["test", "-e", BOOT_SETTLED]).status == 0

        wait_boot_settled(settled, timeout, self.console)

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
