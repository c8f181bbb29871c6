"""Client side of an update: status, deploy (begin, stream, activate, reboot, await), rollback."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.progress import transfer_progress
from fleetforge.ssh import (DEFAULT_KNOWN_HOSTS, Connection, ConnectionLost, KnownHosts,
                            RemoteCommand, Target)

from ota import protocol
from ota.bundle import ArtifactInBundle, Bundle
from ota.delta import parse_device_index, plan_segment

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
        return Connection(target, identity=self.identity,
                          host_keys=KnownHosts(self.known_hosts, self.trust_new_host),
                          timeout=self.timeout)


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
            security_floor=int(values.get("SECURITY_FLOOR", "0") or 0),
            busy=values.get("BUSY", ""), started=values.get("STARTED", ""),
            boot_step=values.get("BOOT_STEP", ""),
            artifacts=tuple(InstalledArtifact(key.removeprefix("ARTIFACT_"), *(value.split() + ["", ""])[:2])
                            for key, value in values.items() if key.startswith("ARTIFACT_")),
        )

    committed: str = "?"  # the slot a failed or pending trial falls back to
    artifacts: tuple[InstalledArtifact, ...] = ()
    security_floor: int = 0  # the lowest security version the device still installs
    busy: str = ""           # "install since ..." while an update command holds the lock
    started: str = ""        # when the update under way (or the last one) began
    boot_step: str = ""      # this boot's boot-step outcome; "running" until it has one

    @property
    def boot_settled(self) -> bool:
        """The boot step has decided (an agent that predates BOOT_STEP says nothing: settled)."""
        return self.boot_step != "running"


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
    outcome: str = ""           # for the fleet's table: updated, up to date, rolled back, ...


def done_before(current: DeviceStatus, bundle: Bundle) -> DeployResult | None:
    """What a device already did with `bundle`, if installing it again would be a second install:
    it runs the bundle committed ("up to date"), or it rolled this version back (its health check
    failed: the same bundle would fail the same way). None: it needs the install."""
    manifest = bundle.manifest
    if current.state != "Idle" or current.busy:
        return None  # an update under way or unfinished: install resumes or starts it over
    running = current.slot_versions.get(current.booted)
    installed = {a.name: a for a in current.artifacts}
    if (not manifest.rootfs_size or (running == manifest.version
                                     and current.booted == current.committed)) and all(
            (installed.get(a.name) or InstalledArtifact("", "", "")).sha256 == a.sha256
            for a in manifest.artifacts):
        where = f"on committed slot {current.booted}" if manifest.rootfs_size else "artifacts"
        return DeployResult("", True, f"already up to date: {manifest.version} ({where})",
                            manifest.version, current.booted, outcome="up to date")
    if current.version == manifest.version and current.result.startswith("rolled back"):
        return DeployResult("", False, f"{current.result} (this version, earlier); fix the device "
                            "or the release, then deploy it alone with --host",
                            manifest.version, current.booted,
                            outcome="skipped (rolled back before)")
    return None


def agent_command(options: SshOptions, *args: str) -> list[str]:
    return [options.agent, *args]


def _reason(stderr: str, status: int) -> str:
    """The agent's last `ERR ...` line (its one-line reason), else the exit status."""
    errors = [l.removeprefix("ERR ") for l in stderr.splitlines() if l.startswith("ERR ")]
    return errors[-1] if errors else f"exit status {status}"


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


def abort(target: Target, options: SshOptions) -> str:
    """Cancel the update under way (a transfer still running is ended); the device keeps running
    its committed slot and artifacts."""
    with options.connect(target) as conn:
        return _checked(conn, options, ["abort"]).strip().removeprefix("OK ")


def recover(target: Target, options: SshOptions) -> str:
    """Whatever state the device is in: end what holds its update lock, cancel an update that
    has not booted, finish an interrupted boot step (commit or roll back), and report."""
    with options.connect(target) as conn:
        return _checked(conn, options, ["recover"], timeout=options.activate_timeout
                        ).strip().removeprefix("OK ")


def _request_reboot(conn: Connection, options: SshOptions) -> None:
    try:
        conn.run(agent_command(options, "reboot"), timeout=15)
    except UserError:
        pass  # the link going down is what a reboot looks like


def factory_chunks(conn: Connection, options: SshOptions, bases: tuple[Bundle, ...]) -> dict[str, int]:
    """Chunks of a factory-flashed booted slot (the device has no record of what it holds): a
    local bundle whose image the device proves it holds (`slot-hash`), as delta source."""
    for base in bases:
        size = str(base.manifest.rootfs_size)
        if _checked(conn, options, ["slot-hash", size]).strip() == base.manifest.rootfs_sha256:
            return {c.sha256: c.offset for c in reversed(base.manifest.chunks)}
    return {}


class LinkCut(Exception):
    """Raised by an `on_progress` callback to drop the link mid-transfer (tests and benches)."""


class _Refused(Exception):
    """The device ended the update (its reason is on stderr)."""


class _Session:
    """One `install` on the device: writes with a deadline, the device's answers in order."""

    def __init__(self, command: RemoteCommand, timeout: float) -> None:
        self.command = command
        self.timeout = timeout
        self.acked = -1  # the last segment the device verified and wrote
        self.sent = 0    # bundle bytes sent (segments' new bytes and artifacts)

    def write(self, data: bytes) -> None:
        try:
            self.command.write(data, self.timeout)
        except BrokenPipeError:
            raise _Refused() from None

    def expect(self, kind: str, timeout: float | None = None) -> protocol.Answer:
        while True:
            answer = self.next(timeout)
            if answer.kind == kind:
                return answer

    def raw_line(self) -> bytes:
        line = self.command.readline(self.timeout)
        if line is None:
            raise _Refused()
        return line

    def next(self, timeout: float | None = None) -> protocol.Answer:
        while True:
            line = self.command.readline(timeout or self.timeout)
            if line is None:
                raise _Refused()
            answer = protocol.Answer.parse(line)
            if answer is None:
                continue
            if answer.kind == "OK":
                self.acked = max(self.acked, int(answer.text))
            return answer

    def reason(self) -> str:
        """The agent's last `ERR ...` line (its one-line reason); an agent too old to know
        `install` (it prints its usage); else nothing (the link dropped)."""
        lines = [l for l in self.command.stderr().splitlines() if l.strip()]
        if any(l.startswith("ERR ") for l in lines):
            return _reason("\n".join(lines), 1)
        if lines and lines[-1].startswith("usage: "):
            return ("the device's update agent has no 'install' command (an older FleetForge): "
                    "update it once with a bundle of that release, or reflash")
        return ""


def transfer(conn: Connection, options: SshOptions, bundle: Bundle, *, allow_downgrade: bool = False,
             bases: tuple[Bundle, ...] = (), on_progress: Callable[[int], None] | None = None,
             show_progress: bool = True) -> DeployResult:
    """One `install` command: the device verifies the manifest (signature, compatible, versions)
    and answers where to start; the missing segments (delta pieces) and artifacts follow; the
    device activates. Safe to call again after any failure: the same bundle resumes at the first
    unverified segment, any other bundle starts over cleanly."""
    started = time.monotonic()
    manifest = bundle.manifest
    args = ["install"] + (["--allow-downgrade"] if allow_downgrade else [])
    session = _Session(conn.start(agent_command(options, *args)), options.timeout)
    first = 0
    stream_seconds = 0.0
    try:
        session.write(protocol.manifest_header(len(bundle.manifest_bytes)) + bundle.manifest_bytes
                      + bundle.signature)
        fields = session.expect("BEGIN").fields()
        # The booted slot's chunk index follows BEGIN: the delta's source.
        have = parse_device_index(b"".join(session.raw_line() for _ in
                                           range(int(fields.get("INDEX", "0")))).decode())
        if not have and manifest.rootfs_size and bases:
            have = factory_chunks(conn, options, bases)
        first = int(fields.get("SEG_DONE", "0"))
        session.acked = first - 1
        staged = set(fields.get("ARTIFACTS_DONE", "-").split(","))
        stream_started = time.monotonic()
        if manifest.rootfs_size and fields.get("ACTIVATED") != "1" and first < manifest.segment_count:
            _stream(session, bundle, first, have, show_progress, on_progress, str(conn.target))
        stream_seconds = time.monotonic() - stream_started
        for item in bundle.artifacts:
            if item.artifact.name not in staged:  # verified and staged by an earlier attempt
                _send_artifact(session, bundle, item)
        session.write(protocol.END)
        session.command.close_stdin()
        # Activation re-reads the slot on the device: minutes on a slow board or under emulation.
        done = session.expect("DONE", options.activate_timeout).text
    except LinkCut:
        session.command.kill()
        raise ConnectionLost(f"connection cut after {session.sent} bytes; rerun the same deploy to resume",
                             where=str(conn.target)) from None
    except TimeoutError as silent:
        session.command.kill()
        raise ConnectionLost(f"{silent} (after {session.sent} bytes): rerun the same deploy to resume; if "
                             "it keeps hanging: fleetforge ota.recover", where=str(conn.target)) from None
    except _Refused:
        reason = session.reason()
        session.command.kill()
        if not reason:
            raise ConnectionLost(f"connection lost after {session.sent} bytes; rerun the same deploy to "
                                 "resume", where=str(conn.target)) from None
        if reason.startswith("rolled back: "):  # an artifact hook failed (contract A): an outcome
            return DeployResult(str(conn.target), False, reason, manifest.version,
                                sent_bytes=session.sent,
                                full_bytes=_full_bytes(manifest), resumed_from=first,
                                seconds=time.monotonic() - started, stream_seconds=stream_seconds)
        raise UserError(f"device refused: {reason}", where=str(conn.target)) from None
    session.command.wait(options.timeout)
    return DeployResult(str(conn.target), True, done.strip() if not manifest.rootfs_size else "activated",
                        manifest.version, sent_bytes=session.sent, full_bytes=_full_bytes(manifest),
                        resumed_from=first, seconds=time.monotonic() - started,
                        stream_seconds=stream_seconds)


def _full_bytes(manifest) -> int:  # type: ignore[no-untyped-def]
    return manifest.rootfs_size + sum(a.size for a in manifest.artifacts)


def _send_artifact(session: _Session, bundle: Bundle, item: ArtifactInBundle) -> None:
    """One artifact's bytes as an ART record; the device checks them against the signed manifest
    and stages them."""
    session.write(protocol.artifact_header(item.artifact.name, item.artifact.size))
    with open(bundle.path, "rb") as source:
        source.seek(item.offset)
        left = item.artifact.size
        while left:
            block = source.read(min(left, 1 << 20))
            session.write(block)
            left -= len(block)
            session.sent += len(block)


def _stream(session: _Session, bundle: Bundle, first: int, have: dict[str, int],
            show_progress: bool, on_progress: Callable[[int], None] | None, host: str) -> None:
    """Send segments `first`.. as SEG records."""
    manifest = bundle.manifest
    plans = [plan_segment(manifest, s, have) for s in range(first, manifest.segment_count)]
    to_send = sum(p.length for plan in plans for p in plan if p.kind == "send")
    sent = 0  # of this stream
    progress = transfer_progress() if show_progress else None
    try:
        if progress:
            progress.start()
            task = progress.add_task(f"{host} v{manifest.version}", total=to_send)
        with open(bundle.path, "rb") as source:
            for index, plan in zip(range(first, manifest.segment_count), plans):
                session.write(protocol.segment_header(index, plan))
                for piece in plan:
                    session.write(protocol.piece_header(piece))
                    if piece.kind != "send":
                        continue
                    source.seek(bundle.rootfs_offset + piece.source)
                    left = piece.length
                    while left:
                        block = source.read(min(left, 1 << 20))
                        session.write(block)
                        left -= len(block)
                        sent += len(block)
                        session.sent += len(block)
                        if progress:
                            progress.update(task, completed=sent)
                        if on_progress:
                            on_progress(sent)
                # Stay at most MAX_AHEAD segments ahead of the device's verified writes: a drop
                # then loses little, and a device that stops answering trips the timeout.
                while index - session.acked > MAX_AHEAD:
                    session.next()
    finally:
        if progress:
            progress.stop()


MAX_AHEAD = 2


def wait_for_outcome(target: Target, options: SshOptions, *, timeout: float = 600) -> DeviceStatus:
    """After a reboot: poll until the device is back and its boot step settled (Idle)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with options.connect(target) as conn:
                current = read_status(conn, options)
            if current.boot_settled and current.state == "Idle" and current.history \
                    and current.history[-1] == "Idle":
                return current
            last = f"state {current.state}, boot step {current.boot_step or '?'}"
        except UserError as error:
            if "HOST KEY" in str(error) or "unknown host key" in str(error):
                raise
            last = str(error)
        time.sleep(1)
    raise UserError(f"device did not settle after reboot within {timeout:.0f} s ({last})",
                    where=str(target))


def deploy(target: Target, options: SshOptions, bundle: Bundle, *, reboot: bool = True,
           allow_downgrade: bool = False, show_progress: bool = True,
           boot_timeout: float = 600, bases: tuple[Bundle, ...] = (),
           on_progress: Callable[[int], None] | None = None,
           skip_done: bool = False) -> DeployResult:
    """Update one device. With `skip_done` (fleets: rerunning the same command finishes only what
    is left), a device that already runs the bundle or rolled it back is reported, not updated."""
    started = time.monotonic()
    slots = bool(bundle.manifest.rootfs_size)  # an artifact-only bundle installs without a reboot
    with options.connect(target) as conn:
        if skip_done and (before := done_before(read_status(conn, options), bundle)):
            before.host = str(target)
            before.seconds = time.monotonic() - started
            return before
        result = transfer(conn, options, bundle, allow_downgrade=allow_downgrade,
                          show_progress=show_progress, bases=bases,
                          on_progress=on_progress)
        if reboot and slots:
            _request_reboot(conn, options)
        result.wire_bytes = conn.wire_bytes
    if not slots:
        result.seconds = time.monotonic() - started
        result.outcome = "updated" if result.ok else "rolled back"
        return result
    if not reboot:
        result.message = "installed; trial boot on next reboot"
        result.seconds = time.monotonic() - started
        result.outcome = "staged"
        return result
    final = wait_for_outcome(target, options, timeout=boot_timeout)
    result.history = final.history
    result.slot = final.booted
    result.ok = final.result.startswith("committed")
    result.message = final.result or "no result reported"
    result.outcome = "updated" if result.ok else (
        "rolled back" if final.result.startswith("rolled back") else "failed")
    result.seconds = time.monotonic() - started
    return result
