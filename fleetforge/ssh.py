"""SSH to devices: the system's OpenSSH client, one multiplexed connection per device.

Why OpenSSH and not a Python SSH library: on the QEMU guest and on dropbear devices the cipher
decides the throughput, and OpenSSH negotiates chacha20-poly1305 or AES-GCM where paramiko offers
only AES-CTR with an HMAC computed in Python (docs/ota.md, "Transfer"). It is also the baseline
users measure against (`scp`, `ssh host 'cat > file'`).

Every connection here:
- checks the device's host key against the WHOLE set known for it (any key type): OpenSSH is given
  exactly that set and may negotiate only its key types, so a device that switches to another key
  type is refused like a changed key; an unknown device is refused unless the caller trusts it on
  first use (then every key it offers is recorded);
- authenticates with one identity file only, never an agent or a password;
- runs on a TCP socket made here, with keepalive and TCP_USER_TIMEOUT (a silently dropped link
  errors out instead of hanging), handed to ssh through ProxyUseFdpass; OpenSSH's own
  ServerAliveInterval watches the session on top;
- multiplexes: one authenticated master per device, each command a cheap mux client.
"""
from __future__ import annotations

import base64
import hashlib
import os
import queue
import select
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fleetforge.errors import UserError
from fleetforge.tools import require_tool

DEFAULT_KNOWN_HOSTS = Path.home() / ".ssh" / "known_hosts"
HOST_ALIAS = "fleetforge-device"  # the name the pinned keys are written under for ssh
KEEPALIVE_SECONDS = 5  # ServerAliveInterval; three missed answers end the session
# The host-key algorithms OpenSSH may negotiate for each key type it is given.
ALGORITHMS = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
}
# ssh runs this as its ProxyCommand: it fetches the socket made here and passes it to ssh.
FD_RELAY = Path(__file__).with_name("ssh_fd_relay.py")


@dataclass(frozen=True)
class Target:
    """Where a device is: user, host, port (parsed from `[user@]host[:port]`)."""

    host: str
    port: int = 22
    user: str = "root"

    @classmethod
    def parse(cls, text: str) -> Target:
        user, _, rest = text.rpartition("@")
        host, port = rest, 22
        if rest.startswith("["):
            host, _, tail = rest[1:].partition("]")
            if tail.startswith(":"):
                port = int(tail[1:])
        elif rest.count(":") == 1:
            host, port_text = rest.split(":")
            if not port_text.isdigit():
                raise UserError(f"bad port in '{text}'")
            port = int(port_text)
        if not host:
            raise UserError(f"no host in '{text}'")
        return cls(host, port, user or "root")

    @property
    def known_hosts_name(self) -> str:
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    def __str__(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class HostKey:
    """A public host key as known_hosts writes it: type and base64 blob."""

    kind: str
    blob: str

    @classmethod
    def parse(cls, text: str) -> HostKey:
        """From `TYPE BASE64 [comment]` (a .pub file or the end of a known_hosts line)."""
        fields = text.split()
        if len(fields) < 2 or fields[0] not in ALGORITHMS:
            raise UserError(f"not an SSH public key: '{text.strip()[:60]}'")
        return cls(fields[0], fields[1])

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    def __str__(self) -> str:
        return f"{self.kind} {self.fingerprint}"


@dataclass(frozen=True)
class KnownHosts:
    """Host keys from a known_hosts file: refuse unknown hosts unless `trust_new_host`, then
    record every key the host offers (trust on first use)."""

    path: Path = DEFAULT_KNOWN_HOSTS
    trust_new_host: bool = False


@dataclass(frozen=True)
class PinnedKeys:
    """Exactly these host keys (a device whose key the build created, e.g. a QEMU guest)."""

    keys: tuple[HostKey, ...]


HostKeyPolicy = KnownHosts | PinnedKeys


def known_keys(known_hosts: Path, name: str) -> tuple[list[HostKey], list[HostKey]]:
    """(keys, revoked keys) known_hosts lists for `name`, looked up by OpenSSH itself
    (`ssh-keygen -F`: hashed names, patterns and markers as ssh reads them)."""
    if not known_hosts.is_file():
        return [], []
    keygen = require_tool("ssh-keygen", "openssh-client")
    found = subprocess.run([keygen, "-F", name, "-f", str(known_hosts)], capture_output=True,
                           text=True, check=False)
    keys: list[HostKey] = []
    revoked: list[HostKey] = []
    for line in found.stdout.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = fields.pop(0) if fields[0].startswith("@") else ""
        if len(fields) < 3 or fields[1] not in ALGORITHMS or marker == "@cert-authority":
            continue
        (revoked if marker == "@revoked" else keys).append(HostKey(fields[1], fields[2]))
    return keys, revoked


def scan_keys(target: Target, timeout: float) -> list[HostKey]:
    """The host keys a server offers (ssh-keyscan: key exchange only, nothing authenticates)."""
    keyscan = require_tool("ssh-keyscan", "openssh-client")
    found = subprocess.run([keyscan, "-T", str(max(1, int(timeout))), "-p", str(target.port),
                            "-t", ",".join(("ed25519", "ecdsa", "rsa")), target.host],
                           capture_output=True, text=True, check=False)
    keys = []
    for line in found.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#") and fields[1] in ALGORITHMS:
            keys.append(HostKey(fields[1], fields[2]))
    return keys


class Unreachable(UserError):
    """No SSH session could be opened: the name does not resolve, nothing answers on the port,
    or the handshake timed out. Nothing was sent to the device."""


def open_socket(target: Target, timeout: float) -> socket.socket:
    """Connect with keepalive and TCP_USER_TIMEOUT so a silently dropped link errors out instead
    of hanging (unacknowledged data for `timeout` seconds ends the connection)."""
    last: OSError | None = None
    try:
        addresses = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise Unreachable(f"cannot resolve the host: {error}", where=str(target)) from None
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(timeout * 1000))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(address)
            sock.setblocking(True)
            return sock
        except OSError as error:
            sock.close()
            last = error
    raise Unreachable(f"cannot connect: {last}", where=str(target))


def _offer_socket(server: socket.socket, sock: socket.socket, timeout: float) -> None:
    """Give `sock` to the one relay process that connects to `server` (ssh's ProxyCommand)."""
    with server:
        server.settimeout(timeout + 5)
        try:
            peer, _ = server.accept()
        except OSError:
            return  # ssh never ran its ProxyCommand: the master's own error says why
        with peer:
            socket.send_fds(peer, [b"\0"], [sock.fileno()])


@dataclass(frozen=True)
class CommandResult:
    status: int
    stdout: str
    stderr: str


class RemoteCommand:
    """A command running on the device. Its output is read on threads and every write has a
    deadline, so a device (or link) that stops answering never blocks the caller: with SSH
    multiplexing the master, not this process, holds the other ends of the pipes."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr = bytearray()
        self._stderr_done = threading.Event()
        assert process.stdin is not None
        self._stdin = process.stdin.fileno()
        os.set_blocking(self._stdin, False)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in iter(self.process.stdout.readline, b""):
            self.lines.put(line)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for chunk in iter(lambda: self.process.stderr.read1(4096), b""):  # type: ignore[union-attr]
            self._stderr += chunk
        self._stderr_done.set()

    def write(self, data: bytes | memoryview, timeout: float) -> None:
        """Write all of `data`; TimeoutError when the device takes nothing for `timeout` seconds,
        BrokenPipeError when the command ended."""
        view = memoryview(data)
        while view:
            _, ready, _ = select.select([], [self._stdin], [], timeout)
            if not ready:
                raise TimeoutError(f"the device took no data for {timeout:.0f} s")
            try:
                view = view[os.write(self._stdin, view):]
            except BlockingIOError:
                continue

    def close_stdin(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass

    def readline(self, timeout: float) -> bytes | None:
        """The next line of stdout; None once it ended; TimeoutError after `timeout` seconds."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"the device said nothing for {timeout:.0f} s") from None

    def read_all(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        out = bytearray()
        while (line := self.readline(max(0.0, deadline - time.monotonic()))) is not None:
            out += line
        return bytes(out)

    def stderr(self, wait: float = 2.0) -> str:
        """What the command wrote to stderr (waits up to `wait` seconds for it to end)."""
        self._stderr_done.wait(wait)
        return self._stderr.decode("utf-8", "replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"the command did not end within {timeout:.0f} s") from None

    def kill(self) -> None:
        """Stop waiting for the command (the device side ends when its connection closes)."""
        self.close_stdin()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class ConnectionLost(UserError):
    """The link dropped mid-command; the device keeps its persisted state."""


class Connection:
    """An authenticated SSH connection to one device (an OpenSSH control master); commands run
    as mux clients on exec channels, so the device needs no SFTP."""

    def __init__(self, target: Target, *, identity: Path, host_keys: HostKeyPolicy = KnownHosts(),
                 timeout: float = 20.0) -> None:
        self.target = target
        self.timeout = timeout
        self.ssh = require_tool("ssh", "openssh-client")
        if not identity.is_file():
            raise UserError("SSH identity (private key) not found", where=str(identity))
        self._dir = Path(tempfile.mkdtemp(prefix="fleetforge-ssh-"))
        self.control = self._dir / "control"
        self.sock: socket.socket | None = None
        self.master: subprocess.Popen[bytes] | None = None
        try:
            pinned, revoked = self._host_keys(host_keys)
            self._start_master(identity, pinned, revoked)
        except BaseException:
            self.close()
            raise

    # -- host keys ---------------------------------------------------------------------------
    def _host_keys(self, policy: HostKeyPolicy) -> tuple[list[HostKey], list[HostKey]]:
        if isinstance(policy, PinnedKeys):
            return list(policy.keys), []
        name = self.target.known_hosts_name
        keys, revoked = known_keys(policy.path, name)
        if keys:
            return keys, revoked
        offered = [k for k in scan_keys(self.target, self.timeout) if k not in revoked]
        if not offered:
            raise UserError("the device offered no usable SSH host key (is it an SSH server?)",
                            where=str(self.target))
        if not policy.trust_new_host:
            raise UserError(
                f"unknown host key {offered[0]} (not in {policy.path}); check it and rerun "
                "with --trust-new-host to record it", where=str(self.target))
        policy.path.parent.mkdir(parents=True, exist_ok=True)
        with open(policy.path, "a", encoding="ascii") as out:
            out.writelines(f"{name} {key.kind} {key.blob}\n" for key in offered)
        return offered, revoked

    def _changed_key_error(self, pinned: list[HostKey]) -> UserError:
        offered = scan_keys(self.target, self.timeout)
        now = ", ".join(str(k) for k in offered) or "no key it would show"
        return UserError(
            f"HOST KEY CHANGED: the device offers {now}, none of the known "
            f"{', '.join(str(k) for k in pinned)}; refusing to connect (if the device was "
            "reinstalled, remove its old key from known_hosts and connect with --trust-new-host)",
            where=str(self.target))

    # -- the master ------------------------------------------------------------------------------
    def _options(self) -> list[str]:
        # For every ssh process here; ssh takes the FIRST value of an option, so a caller's
        # own options go before these.
        return ["-F", "none", "-o", f"ControlPath={self.control}", "-o", "BatchMode=yes",
                "-o", "LogLevel=ERROR", "-p", str(self.target.port), "-l", self.target.user]

    def _start_master(self, identity: Path, pinned: list[HostKey], revoked: list[HostKey]) -> None:
        known = self._dir / "known_hosts"
        known.write_text("".join(f"{HOST_ALIAS} {k.kind} {k.blob}\n" for k in pinned)
                         + "".join(f"@revoked {HOST_ALIAS} {k.kind} {k.blob}\n" for k in revoked))
        algorithms = ",".join(dict.fromkeys(a for k in pinned for a in ALGORITHMS[k.kind]))
        self.sock = open_socket(self.target, self.timeout)
        offer = self._dir / "socket"
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(offer))
        server.listen(1)
        threading.Thread(target=_offer_socket, args=(server, self.sock, self.timeout),
                         daemon=True).start()
        relay = (f"{shlex.quote(sys.executable)} -I -S {shlex.quote(str(FD_RELAY))} "
                 f"{shlex.quote(str(offer))}")
        # The master says why it failed (INFO: a key exchange that found no common host key
        # type is logged there); commands stay quiet (ERROR) so their stderr is the device's.
        args = [self.ssh, "-M", "-N", "-o", "LogLevel=INFO", *self._options(),
                "-o", "ControlMaster=yes", "-o", "ControlPersist=no",
                "-o", f"ProxyCommand={relay}", "-o", "ProxyUseFdpass=yes",
                "-o", f"HostKeyAlias={HOST_ALIAS}", "-o", f"UserKnownHostsFile={known}",
                "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
                "-o", "UpdateHostKeys=no", "-o", "CheckHostIP=no",
                "-o", f"HostKeyAlgorithms={algorithms}",
                "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-i", str(identity),
                "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
                "-o", f"ConnectTimeout={max(1, int(self.timeout))}",
                "-o", f"ServerAliveInterval={KEEPALIVE_SECONDS}", "-o", "ServerAliveCountMax=3",
                "-o", "TCPKeepAlive=yes", self.target.host]
        self.master = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.timeout + 5
        while not self.control.exists():
            if self.master.poll() is not None:
                raise self._master_error(identity, pinned)
            if time.monotonic() > deadline:
                raise Unreachable(f"SSH handshake timed out after {self.timeout:.0f} s",
                                where=str(self.target))
            time.sleep(0.005)

    def _master_error(self, identity: Path, pinned: list[HostKey]) -> UserError:
        assert self.master is not None and self.master.stderr is not None
        text = self.master.stderr.read().decode("utf-8", "replace")
        if "host key" in text.lower() or "HOST IDENTIFICATION" in text or "REVOKED" in text:
            return self._changed_key_error(pinned)
        if "Permission denied" in text:
            return UserError(f"the device refused key {identity.name} for user {self.target.user}",
                             where=str(self.target))
        lines = [line for line in text.splitlines() if line.strip()]
        return UserError(f"SSH connection failed: {lines[-1] if lines else 'ssh exited'}",
                         where=str(self.target))

    # -- commands ------------------------------------------------------------------------------
    def start(self, argv: list[str]) -> RemoteCommand:
        """Start `argv` on the device (every argument shell-quoted)."""
        return RemoteCommand(subprocess.Popen(
            [self.ssh, *self._options(), "-o", "ControlMaster=no", "-T", self.target.host, "--",
             shlex.join(argv)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))

    def run(self, argv: list[str], stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        limit = timeout or self.timeout
        command = self.start(argv)
        try:
            if stdin:
                command.write(stdin, limit)
            command.close_stdin()
            out = command.read_all(limit)
            status = command.wait(limit)
        except TimeoutError:
            command.kill()
            raise UserError(f"'{' '.join(argv[:2])}' timed out after {limit:.0f} s",
                            where=str(self.target)) from None
        except BrokenPipeError:
            status, out = command.wait(limit), b""
        if status == 255 and not self.alive():
            raise ConnectionLost("connection lost", where=str(self.target))
        return CommandResult(status, out.decode("utf-8", "replace"), command.stderr())

    def alive(self) -> bool:
        return self.master is not None and self.master.poll() is None

    @property
    def wire_bytes(self) -> int:
        """TCP payload both ways so far, SSH overhead included (the kernel's count)."""
        if self.sock is None or self.sock.fileno() < 0:
            return 0
        info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        acked, received = struct.unpack_from("QQ", info, 120)  # tcpi_bytes_acked, _received
        return acked + received

    def close(self) -> None:
        if self.master is not None and self.master.poll() is None:
            self.master.terminate()
            try:
                self.master.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.master.kill()
                self.master.wait()
        if self.master is not None and self.master.stderr is not None:
            self.master.stderr.close()
        if self.sock is not None:
            self.sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
