"""SSH to a device with paramiko: checked host keys, key auth, a socket that notices dead links."""
from __future__ import annotations

import base64
import hashlib
import logging
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path

import paramiko

from fleetforge.errors import UserError

# paramiko logs every failed connection attempt with a traceback (e.g. while a device reboots);
# our errors say what happened in one line instead.
logging.getLogger("paramiko").setLevel(logging.CRITICAL)

DEFAULT_KNOWN_HOSTS = Path.home() / ".ssh" / "known_hosts"
# GCM first: no separate MAC pass, the fastest cipher paramiko and OpenSSH share.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes128-ctr", "aes256-gcm@openssh.com", "aes256-ctr")
WINDOW = 8 << 20


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


class CountingSocket(socket.socket):
    """A TCP socket that counts the bytes it moves (the bench reports bytes on the wire)."""

    sent = 0
    received = 0

    def send(self, data, *args):  # type: ignore[no-untyped-def,override]
        n = super().send(data, *args)
        self.sent += n
        return n

    def sendall(self, data, *args):  # type: ignore[no-untyped-def,override]
        super().sendall(data, *args)
        self.sent += len(data)

    def recv(self, size, *args):  # type: ignore[no-untyped-def,override]
        data = super().recv(size, *args)
        self.received += len(data)
        # ACK at once: sshd sends a command's exit-status, EOF and close as separate small
        # packets, and Nagle on its side waits for our (otherwise delayed, up to 200 ms) ACK.
        self.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        return data


def open_socket(target: Target, timeout: float) -> CountingSocket:
    """Connect with keepalive and TCP_USER_TIMEOUT so a silently dropped link errors out instead
    of hanging paramiko forever (a known paramiko failure mode)."""
    last: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(target.host, target.port,
                                                               type=socket.SOCK_STREAM):
        sock = CountingSocket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 5)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(timeout * 1000))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(address)
            return sock
        except OSError as error:
            sock.close()
            last = error
    raise UserError(f"cannot connect: {last}", where=str(target))


def fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class CommandResult:
    status: int
    stdout: str
    stderr: str


class Connection:
    """An authenticated SSH session to one device; commands run on exec channels (no SFTP needed)."""

    def __init__(self, target: Target, *, identity: Path, known_hosts: Path = DEFAULT_KNOWN_HOSTS,
                 trust_new_host: bool = False, timeout: float = 20.0) -> None:
        self.target = target
        self.timeout = timeout
        self.sock = open_socket(target, timeout)
        self.transport = paramiko.Transport(self.sock, default_window_size=WINDOW)
        options = self.transport.get_security_options()
        options.ciphers = tuple(c for c in PREFERRED_CIPHERS if c in options.ciphers) + tuple(
            c for c in options.ciphers if c not in PREFERRED_CIPHERS)
        try:
            try:
                self.transport.start_client(timeout=timeout)
            except (paramiko.SSHException, OSError, EOFError) as error:
                raise UserError(f"SSH handshake failed: {error}", where=str(target)) from None
            self._check_host_key(known_hosts, trust_new_host)
            self._authenticate(identity)
        except BaseException:
            self.close()
            raise
        self.transport.set_keepalive(10)

    def _check_host_key(self, known_hosts: Path, trust_new_host: bool) -> None:
        key = self.transport.get_remote_server_key()
        name = self.target.known_hosts_name
        entries = paramiko.HostKeys()
        if known_hosts.is_file():
            try:
                entries.load(str(known_hosts))
            except (OSError, paramiko.SSHException) as error:
                raise UserError(f"cannot read known_hosts: {error}", where=str(known_hosts)) from None
        known = entries.lookup(name)
        if known and key.get_name() in known:
            if known[key.get_name()] != key:
                raise UserError(
                    f"HOST KEY CHANGED: {key.get_name()} {fingerprint(key)} does not match "
                    f"{known_hosts}; refusing to connect", where=str(self.target))
            return
        if not trust_new_host:
            raise UserError(
                f"unknown host key {key.get_name()} {fingerprint(key)} (not in {known_hosts}); "
                "check it and rerun with --trust-new-host to record it", where=str(self.target))
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        with open(known_hosts, "a", encoding="ascii") as out:
            out.write(f"{name} {key.get_name()} {key.get_base64()}\n")

    def _authenticate(self, identity: Path) -> None:
        if not identity.is_file():
            raise UserError("SSH identity (private key) not found", where=str(identity))
        try:
            pkey = paramiko.PKey.from_path(identity)
        except (paramiko.SSHException, OSError, ValueError) as error:
            raise UserError(f"cannot load SSH key: {error}", where=str(identity)) from None
        try:
            self.transport.auth_publickey(self.target.user, pkey)
        except paramiko.AuthenticationException:
            raise UserError(f"the device refused key {identity.name} for user {self.target.user}",
                            where=str(self.target)) from None

    def open_command(self, argv: list[str], timeout: float | None = None) -> paramiko.Channel:
        """Start `argv` on the device; every argument is shell-quoted (shlex.join)."""
        channel = self.transport.open_session(window_size=WINDOW)
        channel.settimeout(timeout or self.timeout)
        channel.exec_command(shlex.join(argv))
        return channel

    def run(self, argv: list[str], stdin: bytes = b"", timeout: float | None = None) -> CommandResult:
        channel = self.open_command(argv, timeout)
        try:
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            out = _read_all(channel.makefile("rb"))
            err = _read_all(channel.makefile_stderr("rb"))
            status = channel.recv_exit_status()
        except (socket.timeout, TimeoutError):
            raise UserError(f"'{argv[0]} {argv[1] if len(argv) > 1 else ''}' timed out",
                            where=str(self.target)) from None
        except (OSError, EOFError, paramiko.SSHException) as error:
            raise ConnectionLost(f"connection lost: {error}", where=str(self.target)) from None
        finally:
            channel.close()
        return CommandResult(status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    @property
    def wire_bytes(self) -> int:
        return self.sock.sent + self.sock.received

    def close(self) -> None:
        self.transport.close()
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ConnectionLost(UserError):
    """The link dropped mid-command; the device keeps its persisted state, a rerun resumes."""


def _read_all(handle) -> bytes:  # type: ignore[no-untyped-def]
    return handle.read()
