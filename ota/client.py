"""Client side of an update: status, deploy (begin, stream, activate, reboot, await), rollback."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from fleetforge.errors import UserError
from fleetforge.progress import transfer_progress

from ota import protocol
from ota.bundle import ArtifactInBundle, Bundle
from ota.connection import DEFAULT_KNOWN_HOSTS, Connection, ConnectionLost, Target
from ota.delta import Piece, parse_device_index, plan_segment

# The agent on the device's PATH; loopback test devices point elsewhere.
AGENT = os.environ.get("FLEETFORGE_OTA_AGENT", "fleetforge-ota")


@dataclass(frozen=True)
class SshOptions:
    """How to reach devices: identity, known_hosts policy, timeouts, where the agent is."""

    identity: Path
    known_hosts: Path = DEFAULT_KNOWN_HOSTS
    trust_new_host: bool = False
    timeout: float = 20.0
    agent: str = AGENT
    # Activate re-reads the whole slot on the device: minutes on a slow board or under emulation.
    activate_timeout: float = 600.0

    def connect(self, target: Target) -> Connection:
        return Connection(target, identity=self.identity, known_hosts=self.known_hosts,
                          trust_new_host=self.trust_new_host, timeout=self.timeout)


@dataclass(frozen=True)
class InstalledArtifact:
    """An artifact installed under /persist/artifacts/NAME on the device."""

    name: str
    version: str
    sha256: str


@dataclass(frozen=True)
class DeviceStatus:
    """What the device agent reports (`fleetforge-ota status`)."""

    booted: str
    boot_order: str
    boot_left: dict[str, int]
    compatible: str
    slot_versions: dict[str, str]
    state: str
    target: str
    version: str
    seg_done: int
    result: str
    history: list[str]

    @classmethod
    def parse(cls, text: str) -> DeviceStatus:
        values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        return cls(
            booted=values.get("BOOTED", "?"), boot_order=values.get("BOOT_ORDER", ""),
            boot_left={s: int(values.get(f"BOOT_{s}_LEFT", "0") or 0) for s in "AB"},
            compatible=values.get("COMPATIBLE", ""),
            slot_versions={s: values.get(f"SLOT_{s}_VERSION", "?") for s in "AB"},
            state=values.get("STATE", "?"), target=values.get("TARGET", ""),
            version=values.get("VERSION", ""), seg_done=int(values.get("SEG_DONE", "0") or 0),
            result=values.get("RESULT", ""), history=values.get("HISTORY", "").split(),
            committed=values.get("COMMITTED", "") or "?",
            artifacts=tuple(InstalledArtifact(key.removeprefix("ARTIFACT_"), *(value.split() + ["", ""])[:2])
                            for key, value in values.items() if key.startswith("ARTIFACT_")),
        )

    committed: str = "?"  # the slot a failed or pending trial falls back to
    artifacts: tuple[InstalledArtifact, ...] = ()


@dataclass
class DeployResult:
    """The outcome of updating one device."""

    host: str
    ok: bool
    message: str
    version: str = ""
    slot: str = ""
    sent_bytes: int = 0         # bundle bytes that crossed the network
    full_bytes: int = 0         # what a full transfer would have sent
    wire_bytes: int = 0         # TCP payload both ways, SSH overhead included
    resumed_from: int = 0       # first segment sent (0 = from the start)
    seconds: float = 0.0
    stream_seconds: float = 0.0  # the segment stream alone (no begin, no on-device re-verify)
    history: list[str] = field(default_factory=list)


def agent_command(options: SshOptions, *args: str) -> list[str]:
    return [options.agent, *args]


def _checked(conn: Connection, options: SshOptions, args: list[str], stdin: bytes = b"",
             timeout: float | None = None) -> str:
    result = conn.run(agent_command(options, *args), stdin=stdin, timeout=timeout)
    if result.status != 0:
        reason = _reason(result.stderr, result.status)
        if result.status == 127:
            reason = f"update agent '{options.agent}' not found (is feature/ota in the image?)"
        raise UserError(f"device refused: {reason}", where=str(conn.target))
    return result.stdout


def read_status(conn: Connection, options: SshOptions) -> DeviceStatus:
    return DeviceStatus.parse(_checked(conn, options, ["status"]))


def status(target: Target, options: SshOptions) -> DeviceStatus:
    with options.connect(target) as conn:
        return read_status(conn, options)


def rollback(target: Target, options: SshOptions, *, reboot: bool) -> str:
    with options.connect(target) as conn:
        message = _checked(conn, options, ["rollback"]).strip().removeprefix("OK ")
        if reboot:
            _request_reboot(conn, options)
    return message


def _request_reboot(conn: Connection, options: SshOptions) -> None:
    try:
        conn.run(agent_command(options, "reboot"), timeout=15)
    except UserError:
        pass  # the link going down is what a reboot looks like


def device_chunks(conn: Connection, options: SshOptions, bases: tuple[Bundle, ...]) -> dict[str, int]:
    """Chunks the device already has in its booted slot: its own record of the last install, or,
    for a factory-flashed slot, a local bundle whose image the device proves it holds (slot-hash)."""
    have = parse_device_index(_checked(conn, options, ["index"]))
    if have:
        return have
    for base in bases:
        size = str(base.manifest.rootfs_size)
        if _checked(conn, options, ["slot-hash", size]).strip() == base.manifest.rootfs_sha256:
            return {c.sha256: c.offset for c in reversed(base.manifest.chunks)}
    return {}


def transfer(conn: Connection, options: SshOptions, bundle: Bundle, *, allow_downgrade: bool = False,
             bases: tuple[Bundle, ...] = (), on_progress: Callable[[int], None] | None = None,
             show_progress: bool = True, cut_after: int | None = None) -> DeployResult:
    """Begin (device verifies signature, compatible, version), then stream the missing segments and
    activate. Safe to call again after any failure: the device resumes at its first unverified
    segment."""
    started = time.monotonic()
    manifest = bundle.manifest
    args = ["begin", str(len(bundle.manifest_bytes))]
    if allow_downgrade:
        args.append("--allow-downgrade")
    answer = _checked(conn, options, args, stdin=bundle.manifest_bytes + bundle.signature)
    fields = dict(f.split("=", 1) for f in answer.split() if "=" in f)
    first = int(fields.get("SEG_DONE", "0"))
    staged = set(fields.get("ARTIFACTS_DONE", "-").split(","))
    sent = 0
    stream_started = time.monotonic()
    if manifest.rootfs_size:
        have = device_chunks(conn, options, bases)
        plans = [plan_segment(manifest, s, have) for s in range(first, manifest.segment_count)]
        to_send = sum(p.length for plan in plans for p in plan if p.kind == "send")
        if first < manifest.segment_count:
            sent = _stream(conn, options, bundle, first, plans, to_send, show_progress, cut_after,
                           on_progress)
    stream_seconds = time.monotonic() - stream_started
    for item in bundle.artifacts:
        if item.artifact.name not in staged:  # verified and staged by an earlier attempt
            sent += _send_artifact(conn, options, bundle, item)
    ok, message = True, "activated"
    if manifest.rootfs_size:
        _checked(conn, options, ["activate"], timeout=options.activate_timeout)
    else:
        # Artifacts only: the device switches them in place and runs their hooks (contract A);
        # a failed hook is an outcome (switched back, nothing rebooted), not a refusal.
        ok, message = _activate_in_place(conn, options)
    return DeployResult(str(conn.target), ok, message, manifest.version, sent_bytes=sent,
                        full_bytes=manifest.rootfs_size + sum(a.size for a in manifest.artifacts),
                        resumed_from=first, seconds=time.monotonic() - started,
                        stream_seconds=stream_seconds)


def _activate_in_place(conn: Connection, options: SshOptions) -> tuple[bool, str]:
    result = conn.run(agent_command(options, "activate"), timeout=options.activate_timeout)
    if result.status == 0:
        return True, result.stdout.strip().removeprefix("OK ")
    reason = _reason(result.stderr, result.status)
    if reason.startswith("rolled back: "):
        return False, reason
    raise UserError(f"device refused: {reason}", where=str(conn.target))


def _reason(stderr: str, status: int) -> str:
    """The agent's last `ERR ...` line (its one-line reason), or the exit status."""
    lines = [l.removeprefix("ERR ") for l in stderr.splitlines() if l.strip()]
    return lines[-1] if lines else f"exit status {status}"


def _send_artifact(conn: Connection, options: SshOptions, bundle: Bundle,
                   item: ArtifactInBundle) -> int:
    """Stream one artifact's bytes to `receive-artifact NAME`; the device checks them against the
    signed manifest and stages them. Returns the bytes sent."""
    channel = conn.open_command(agent_command(options, "receive-artifact", item.artifact.name),
                                timeout=max(conn.timeout, 60))
    try:
        try:
            with open(bundle.path, "rb") as source:
                source.seek(item.offset)
                left = item.artifact.size
                while left:
                    block = source.read(min(left, 1 << 20))
                    channel.sendall(block)
                    left -= len(block)
        except OSError:
            pass  # the device stopped reading (a refusal): its reason is on stderr below
        channel.shutdown_write()
        channel.makefile("rb").read()
        err = channel.makefile_stderr("rb").read().decode("utf-8", "replace")
        code = channel.recv_exit_status()
    except (OSError, EOFError, paramiko.SSHException) as error:
        raise ConnectionLost(f"connection lost while sending artifact {item.artifact.name} "
                             f"({error}); rerun to resume", where=str(conn.target)) from None
    finally:
        channel.close()
    if code != 0:
        reason = [l.removeprefix("ERR ") for l in err.splitlines() if l.strip()]
        raise UserError(f"device refused: {reason[-1] if reason else code}", where=str(conn.target))
    return item.artifact.size


def _stream(conn: Connection, options: SshOptions, bundle: Bundle, first: int,
            plans: list[list[Piece]], to_send: int, show_progress: bool,
            cut_after: int | None, on_progress: Callable[[int], None] | None) -> int:
    """Send segments `first`.. on one `receive` channel; returns the bundle bytes sent."""
    manifest = bundle.manifest
    sent = 0
    acks = _Acks(first)
    channel = conn.open_command(agent_command(options, "receive"), timeout=max(conn.timeout, 60))
    progress = transfer_progress() if show_progress else None
    try:
        if progress:
            progress.start()
            task = progress.add_task(f"{conn.target.host} v{manifest.version}", total=to_send)
        with open(bundle.path, "rb") as source:
            for index, plan in zip(range(first, manifest.segment_count), plans):
                channel.sendall(protocol.segment_header(index, plan))
                for piece in plan:
                    channel.sendall(protocol.piece_header(piece))
                    if piece.kind == "send":
                        source.seek(bundle.rootfs_offset + piece.source)
                        left = piece.length
                        while left:
                            block = source.read(min(left, 1 << 20))
                            if cut_after is not None and sent + len(block) > cut_after:
                                conn.close()  # test hook: the link drops mid-transfer
                                raise ConnectionLost("connection cut (test)", where=str(conn.target))
                            channel.sendall(block)
                            left -= len(block)
                            sent += len(block)
                            if progress:
                                progress.update(task, completed=sent)
                            if on_progress:
                                on_progress(sent)
                acks.sent(index)
                # Stay at most MAX_AHEAD segments ahead of the device's verified writes: a drop
                # then loses little, and a device that stops answering trips the channel timeout
                # (the progress watchdog) instead of hanging.
                while acks.unacked > MAX_AHEAD and not channel.exit_status_ready():
                    acks.wait(channel)
                if channel.exit_status_ready():
                    break  # the device gave up (its reason is on stderr)
            channel.sendall(protocol.END)
            channel.shutdown_write()
            acks.feed(channel.makefile("rb").read())
            err = channel.makefile_stderr("rb").read().decode("utf-8", "replace")
            code = channel.recv_exit_status()
    except ConnectionLost:
        raise
    except (OSError, EOFError, paramiko.SSHException) as error:
        raise ConnectionLost(f"connection lost during transfer after {sent} of {to_send} bytes "
                             f"({error}); rerun to resume", where=str(conn.target)) from None
    finally:
        if progress:
            progress.stop()
        channel.close()
    if code != 0:
        reason = [l.removeprefix("ERR ") for l in err.splitlines() if l.strip()]
        raise UserError(f"device refused: {reason[-1] if reason else code}", where=str(conn.target))
    return sent


MAX_AHEAD = 2


class _Acks:
    """Tracks the device's `OK <segment>` lines on the receive channel's stdout."""

    def __init__(self, first: int) -> None:
        self.last_sent = first - 1
        self.last_acked = first - 1
        self.buffer = b""

    def sent(self, index: int) -> None:
        self.last_sent = index

    @property
    def unacked(self) -> int:
        return self.last_sent - self.last_acked

    def feed(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            fields = line.split()
            if len(fields) == 2 and fields[0] == b"OK":
                self.last_acked = max(self.last_acked, int(fields[1]))

    def wait(self, channel: paramiko.Channel) -> None:
        data = channel.recv(4096)
        if not data and not channel.exit_status_ready():
            raise EOFError("the device closed the stream")
        self.feed(data)


def wait_for_outcome(target: Target, options: SshOptions, *, timeout: float = 600) -> DeviceStatus:
    """After a reboot: poll until the device is back and its boot step settled (Idle)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with options.connect(target) as conn:
                current = read_status(conn, options)
            if current.state == "Idle" and current.history and current.history[-1] == "Idle":
                return current
            last = f"state {current.state}"
        except UserError as error:
            if "HOST KEY" in str(error) or "unknown host key" in str(error):
                raise
            last = str(error)
        time.sleep(1)
    raise UserError(f"device did not settle after reboot within {timeout:.0f} s ({last})",
                    where=str(target))


def deploy(target: Target, options: SshOptions, bundle: Bundle, *, reboot: bool = True,
           allow_downgrade: bool = False, show_progress: bool = True,
           boot_timeout: float = 600, cut_after: int | None = None,
           bases: tuple[Bundle, ...] = (),
           on_progress: Callable[[int], None] | None = None) -> DeployResult:
    started = time.monotonic()
    slots = bool(bundle.manifest.rootfs_size)  # an artifact-only bundle installs without a reboot
    with options.connect(target) as conn:
        result = transfer(conn, options, bundle, allow_downgrade=allow_downgrade,
                          show_progress=show_progress, cut_after=cut_after, bases=bases,
                          on_progress=on_progress)
        if reboot and slots:
            _request_reboot(conn, options)
        result.wire_bytes = conn.wire_bytes
    if not slots:
        result.seconds = time.monotonic() - started
        return result
    if not reboot:
        result.message = "installed; trial boot on next reboot"
        result.seconds = time.monotonic() - started
        return result
    final = wait_for_outcome(target, options, timeout=boot_timeout)
    result.history = final.history
    result.slot = final.booted
    result.ok = final.result.startswith("committed")
    result.message = final.result or "no result reported"
    result.seconds = time.monotonic() - started
    return result
