"""Loopback SSH servers (OpenSSH sshd, dropbear) standing in for a device in tests and benches."""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from fleetforge.paths import SHIPPED_LAYERS_DIR
from fleetforge.tools import require_tool, run_tool
from ota.receiver import build as receiver_build
from ota.states import AGENT_SCRIPT


@dataclass
class LoopbackServer:
    """A running SSH server on 127.0.0.1 that accepts `client_key` for root."""

    kind: str  # "openssh" or "dropbear"
    port: int
    host_public_key: str  # "ssh-ed25519 AAAA..." line (type and base64)
    client_key: Path
    workdir: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_public_key}\n"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_client_key(path: Path) -> Path:
    """An Ed25519 client key in OpenSSH format (what `ssh-keygen -t ed25519` writes)."""
    if not path.exists():
        run_tool(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path],
                 debian_package="openssh-client")
    return path


def wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until `process` (a server) accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ssh server exited early: {log.read_text(errors='replace')[-800:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"ssh server did not listen on {port}")


def authorized_key_line(client_key: Path, forced_command: str | None) -> str:
    """`client_key` for authorized_keys; with `forced_command`, every session runs that command
    instead (the original one is in $SSH_ORIGINAL_COMMAND), as a restricted deploy key does."""
    key = Path(f"{client_key}.pub").read_text()
    return f'command="{forced_command}" {key}' if forced_command else key


def in_namespace(setup: str, server: str) -> str:
    """The shell run by `unshare -m`: root's home bind-mounted ($1), then `setup` (more mounts
    that only this server and its sessions see), then the server itself."""
    return f'mount --bind "$1" /root && {setup + " && " if setup else ""}exec {server}'


def start_openssh(workdir: Path, client_key: Path, *, port: int | None = None,
                  namespace_setup: str = "", forced_command: str | None = None) -> LoopbackServer:
    """Start `sshd -D` on a random port (or `port`) with a private config (key auth only, root
    allowed). `namespace_setup` runs in the server's private mount namespace before it starts."""
    sshd = require_tool("sshd", "openssh-server")
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    host_key = workdir / "ssh_host_ed25519_key"
    if not host_key.exists():
        run_tool(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key],
                 debian_package="openssh-client")
    authorized = workdir / "authorized_keys"
    authorized.write_text(authorized_key_line(client_key, forced_command))
    port = port or free_port()
    config = workdir / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nPidFile {workdir}/sshd.pid\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    log = workdir / "sshd.log"
    # Like a device, root's home is empty: the host's ~/.bashrc (sourced by bash for every SSH
    # command) stays out of the measurements. A private mount namespace keeps the real /root.
    home = workdir / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    process = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c",
         in_namespace(namespace_setup, '"$2" -D -e -f "$3"'), "sh", str(home), sshd, str(config)],
        stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    wait_listening(port, process, log)
    public = Path(f"{host_key}.pub").read_text().split()
    return LoopbackServer("openssh", port, f"{public[0]} {public[1]}", client_key, workdir, process)


def start_dropbear(workdir: Path, client_key: Path, *, port: int | None = None,
                   namespace_setup: str = "", forced_command: str | None = None) -> LoopbackServer:
    """Start dropbear (the device's SSH server) on a random port (or `port`); the options as
    for `start_openssh`.

    Dropbear reads authorized_keys only from the user's home, so it runs in a private mount
    namespace where a temp directory is bind-mounted over /root; the real /root is untouched.
    """
    dropbear = require_tool("dropbear", "dropbear-bin")
    require_tool("unshare", "util-linux")
    workdir.mkdir(parents=True, exist_ok=True)
    home = workdir / "home"
    (home / ".ssh").mkdir(parents=True, exist_ok=True)
    for path in (workdir, home, home / ".ssh"):
        os.chmod(path, 0o700)
    (home / ".ssh" / "authorized_keys").write_text(authorized_key_line(client_key, forced_command))
    host_key = workdir / "dropbear_ed25519_host_key"
    if not host_key.exists():
        run_tool(["dropbearkey", "-t", "ed25519", "-f", host_key], debian_package="dropbear-bin")
    public_line = run_tool(["dropbearkey", "-y", "-f", host_key], debian_package="dropbear-bin")
    public = next(line for line in public_line.splitlines() if line.startswith("ssh-ed25519")).split()
    port = port or free_port()
    log = workdir / "dropbear.log"
    script = in_namespace(namespace_setup, f'{dropbear} -F -E -s -m -p 127.0.0.1:{port} '
                                           f'-r "$2" -P "$3" -W 1048576')
    process = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
         str(home), str(host_key), str(workdir / "dropbear.pid")],
        stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    wait_listening(port, process, log)
    return LoopbackServer("dropbear", port, f"{public[0]} {public[1]}", client_key, workdir, process)


def remove(server: LoopbackServer) -> None:
    server.stop()
    shutil.rmtree(server.workdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# A fake device: files stand in for the slot block devices and a directory for the boot partition;
# the agent runs under busybox sh with only busybox applets and openssl on PATH, as on the image.

HEALTH_DIR = AGENT_SCRIPT.parent.parent.parent / "etc/fleetforge/health.d"
# The image's own A/B boot rules (what its initramfs runs at power-on), not a copy of them.
BOOTSTATE_LIB = SHIPPED_LAYERS_DIR / "core/minimal/root_overlay/usr/lib/fleetforge/bootstate.sh"
BOOTCHAIN_LIB = BOOTSTATE_LIB.with_name("bootchain.sh")
# Power-on of a loopback device: the initramfs's boot chain, run by the shipped functions
# (bootstate.sh, bootchain.sh); only its hardware steps are played here. A device with verity
# records on its boot "partition" checks the chosen slot file with `veritysetup verify`
# (dm-verity's check, in user space) and starts the slot by recording it as booted; without
# records it only chooses. A one-shot boot fault ("STEP:error|kill|hang", STEP = watchdog, verity
# or kernel) stops the power-on at that step, as a failure, a power cut or a hang there would.
BOOT_STEPS = ("watchdog", "verity", "kernel")
POWER_ON = r"""
. "$1"; . "$2"; boot=$3; booted=$4; fault=$5; slots=$6
at_step() {
    [ -f "$fault" ] || return 0
    case $(cat "$fault") in
        "$1":error) rm -f "$fault"; return 1 ;;
        "$1":kill) rm -f "$fault"; kill -9 $$ ;;
        "$1":hang) rm -f "$fault"; while :; do sleep 1; done ;;
    esac
}
chain_verify() {
    at_step verity || return 1
    image=$slots/rootfs_$(echo "$1" | tr AB ab)
    set -- $2
    veritysetup verify "$image" "$image" "$7" --no-superblock --data-block-size="$2" \
        --hash-block-size="$3" --data-blocks="$4" --hash-offset=$(($5 * $3)) --hash="$6" \
        --salt="$8" > /dev/null 2>&1 || return 1  # any failure here is the slot's content
}
chain_boot() {
    at_step kernel || { CHAIN_REASON="its kernel cannot be started"; return 1; }
    echo "$1" > "$booted"
    exit 0
}
at_step watchdog || echo "no watchdog"
if [ -f "$boot/slot-A.verity" ] || [ -f "$boot/slot-B.verity" ]; then
    bootchain_choose "$boot"
    exit 1
fi
slot=$(bootstate_select "$boot/bootstate") && echo "$slot" > "$booted"
"""


def power_on_command(busybox: str, root: Path) -> list[str]:
    """The loopback device under `root` at power-on, up to the slot started (see POWER_ON)."""
    return [busybox, "sh", "-c", POWER_ON, "sh", str(BOOTSTATE_LIB), str(BOOTCHAIN_LIB),
            str(root / "boot"), str(root / "run" / "booted-slot"), str(root / "boot-fault"),
            str(root / "slots")]


def _arm_one_shot(path: Path, fault: str | None) -> None:
    if fault:
        path.write_text(fault + "\n")
    else:
        path.unlink(missing_ok=True)


def make_device_bin(folder: Path, *, verity: bool = False) -> Path:
    """A device's userland: busybox applets, openssl and FleetForge's ota-receive (and, for
    verified slots, veritysetup: dm-verity's check at power-on, the kernel's job on a device)."""
    folder.mkdir(parents=True, exist_ok=True)
    busybox = require_tool("busybox", "busybox")
    listing = run_tool([busybox, "--list"], debian_package="busybox").split()
    for applet in listing + ["busybox"]:
        link = folder / applet
        if not link.exists():
            link.symlink_to(busybox)
    (folder / "openssl").symlink_to(require_tool("openssl", "openssl"))
    # The segment writer a built image carries (copied: the SSH servers' sessions see another /root).
    shutil.copy2(receiver_build(), folder / "ota-receive")
    if verity:
        (folder / "veritysetup").symlink_to(require_tool("veritysetup", "cryptsetup-bin"))
    return folder


@dataclass
class FakeDevice:
    """Paths of a loopback device; `agent` is the command the client runs over SSH."""

    root: Path
    slot_size: int
    watchdog_s: float = 10.0  # a power-on that hangs longer is reset, and the device powers on again

    @property
    def agent(self) -> str:
        return str(self.root / "fleetforge-ota")

    @property
    def conf(self) -> Path:
        return self.root / "ota.conf"

    def slot(self, name: str) -> Path:
        return self.root / "slots" / f"rootfs_{name.lower()}"

    @property
    def boot_dir(self) -> Path:
        return self.root / "boot"

    @property
    def persist(self) -> Path:
        return self.root / "persist"

    @property
    def state_dir(self) -> Path:
        return self.persist / "ota"

    @property
    def boot_settled(self) -> Path:
        """The boot step's outcome (the agent's BOOT_SETTLED_FILE)."""
        return self.root / "run" / "boot-settled"

    @property
    def health_dir(self) -> Path:
        return self.root / "health.d"

    def calls(self) -> list[str]:
        """The agent commands run so far (their arguments), oldest first."""
        log = self.root / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def booted(self) -> str:
        return (self.root / "run" / "booted-slot").read_text().strip()

    def slot_bytes(self, name: str, length: int) -> bytes:
        with open(self.slot(name), "rb") as handle:
            return handle.read(length)

    def set_fault(self, fault: str | None) -> None:
        """Arm a one-shot fault: `STATE:kill|hang|error` fires when the agent next enters STATE."""
        _arm_one_shot(self.root / "fault", fault)

    def run_agent(self, *args: str, stdin: bytes = b"", timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        """Run the agent locally (as the device's init scripts do), not over SSH."""
        return subprocess.run([self.agent, *args], input=stdin, capture_output=True, timeout=timeout)

    def wait_unlocked(self, timeout: float = 20) -> None:
        """Wait until no agent holds the device's update lock."""
        deadline = time.monotonic() + timeout
        pid_file = self.root / "run" / "ota" / "lock" / "pid"
        while time.monotonic() < deadline:
            try:
                os.kill(int(pid_file.read_text()), 0)
            except (OSError, ValueError):
                return  # no lock, or its holder is gone (a stale lock the agent takes over)
            time.sleep(0.05)

    def kill_processes(self) -> None:
        """Stop every process running from this device's files (what a power cut does to them)."""
        # The agent runs with FLEETFORGE_OTA_CONF=<root>/ota.conf in its environment, its helper
        # scripts have <root> in their command line: that identifies this device's processes.
        marker = str(self.root).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                if marker in (proc / "cmdline").read_bytes() or \
                        marker + b"/ota.conf" in (proc / "environ").read_bytes():
                    os.kill(int(proc.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                continue

    def power_cycle(self, *, run_boot_step: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[bytes] | None:
        """A reboot: running agents die, /run is emptied, the boot selection picks a slot, then
        the agent's boot step runs (as the image's init script does)."""
        self.kill_processes()
        shutil.rmtree(self.root / "run" / "ota", ignore_errors=True)
        self.boot_settled.unlink(missing_ok=True)  # /run is a tmpfs
        (self.root / "reboot-requested").unlink(missing_ok=True)
        self.power_on()
        if run_boot_step:
            return self.run_agent("boot", timeout=timeout)
        return None

    def power_on(self) -> None:
        """The initramfs at power-on. One that dies (a power cut) or hangs past `watchdog_s` (the
        watchdog resets the board) is followed by another power-on."""
        for _ in range(3):
            try:
                done = subprocess.run(power_on_command("busybox", self.root), capture_output=True,
                                      timeout=self.watchdog_s)
            except subprocess.TimeoutExpired:
                continue
            if done.returncode == 0:
                return
            if done.returncode != -signal.SIGKILL:
                raise RuntimeError(f"no slot could be booted: {done.stdout.decode(errors='replace')}")
        raise RuntimeError("the device did not finish a boot in three power-ons")

    def set_boot_fault(self, fault: str | None) -> None:
        """Arm a one-shot fault for the next power-on: `STEP:error|kill|hang` (BOOT_STEPS)."""
        _arm_one_shot(self.root / "boot-fault", fault)

    @property
    def reboot_requested(self) -> bool:
        return (self.root / "reboot-requested").exists()


def make_fake_device(root: Path, rootfs: Path, *, compatible: str, trusted_keys: list[Path],
                     slot_size: int | None = None, ssh_port: int = 22, version: str = "1.0.0",
                     auto_reboot: bool = False, verity: str = "",
                     bin_dir: Path | None = None, receiver: bool = True) -> FakeDevice:
    """Lay out a device whose slots A and B both hold `rootfs` (a fresh image), booted from A.

    With `verity` (the record of `rootfs`, a slot image with its hash tree), the device boots
    verified slots: the boot partition holds both slots' records, as a built image's does.

    With `bin_dir` (a folder made by `make_device_bin`), the device's userland is that shared
    folder instead of a private one (a simulated fleet of hundreds shares one).

    With `receiver` (the default, as on a built image), the agent writes segments with ota-receive
    built for this machine; without it, with its shell path (dd and sha256sum or openssl).

    With `auto_reboot`, the agent's reboot command power-cycles the device in the background (as a
    real reboot would, the SSH session that asked for it is not waited for).
    """
    image = rootfs.read_bytes()
    size = slot_size or max(len(image) * 2, 1 << 20)
    device = FakeDevice(root, size)
    for sub in ("slots", "boot", "persist", "run", "etc/keys"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name in "AB":
        with open(device.slot(name), "wb") as out:
            out.write(image)
            out.truncate(size)
    busybox = require_tool("busybox", "busybox")
    if bin_dir is None:
        make_device_bin(root / "bin", verity=bool(verity))
    else:
        (root / "bin").symlink_to(bin_dir)
    if verity:
        for name in "AB":
            (device.boot_dir / f"slot-{name}.verity").write_text(verity + "\n")
    (root / "etc" / "compatible").write_text(compatible + "\n")
    (root / "etc" / "version").write_text(version + "\n")
    for key in trusted_keys:
        shutil.copy(key, root / "etc" / "keys" / key.name)
    shutil.copytree(HEALTH_DIR, device.health_dir, dirs_exist_ok=True)
    (root / "run" / "booted-slot").write_text("A\n")
    device.boot_settled.write_text("good slot A\n")  # a device as it comes out of its first boot
    (device.persist / "user-data.txt").write_text("robot calibration\n")
    reboot = root / "reboot"
    boot_step = shlex.join(power_on_command(busybox, root)) + f' && "{device.agent}" boot'
    reboot.write_text(
        "#!/bin/sh\n"
        f': > "{root}/reboot-requested"\n'
        + (f"( sleep 0.3; {boot_step} ) > \"{root}/reboot.log\" 2>&1 < /dev/null &\n" if auto_reboot else "")
    )
    reboot.chmod(0o755)
    device.conf.write_text(
        f"STATE_DIR={device.state_dir}\nRUN_DIR={root}/run/ota\nKEYS_DIR={root}/etc/keys\n"
        f"COMPATIBLE_FILE={root}/etc/compatible\nVERSION_FILE={root}/etc/version\n"
        f"SECURITY_VERSION_FILE={root}/etc/security-version\n"
        f"BOOTED_SLOT_FILE={root}/run/booted-slot\nHEALTH_DIR={device.health_dir}\n"
        f"BOOT_SETTLED_FILE={device.boot_settled}\n"
        f"HEALTH_TIMEOUT=10\nSSH_PORT={ssh_port}\nREBOOT_CMD={reboot}\nBOOT_DIR={device.boot_dir}\n"
        f"SLOT_A={device.slot('A')}\nSLOT_B={device.slot('B')}\nPERSIST_DIR={device.persist}\n"
        f"FAULT_FILE={root}/fault\nBOOTSTATE_LIB={BOOTSTATE_LIB}\n"
        f"ARTIFACT_HOOKS_DIR={root}/etc/artifacts.d\n"
        f"RECEIVER={root / 'bin' / ('ota-receive' if receiver else 'no-ota-receive')}\n"
    )
    wrapper = root / "fleetforge-ota"
    wrapper.write_text(
        "#!/bin/sh\n# The device's userland: busybox applets and openssl only. Every call is\n"
        "# listed in calls.log (tests count the commands a client runs).\n"
        f'echo "$*" >> "{root}/calls.log"\n'
        f'export FLEETFORGE_OTA_CONF="{device.conf}" PATH="{root}/bin"\n'
        f'exec "{busybox}" sh "{AGENT_SCRIPT}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return device
