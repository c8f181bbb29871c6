"""ssh's ProxyCommand for fleetforge.ssh: fetch the connected socket, hand it to ssh.

fleetforge.ssh opens the TCP socket itself (keepalive, TCP_USER_TIMEOUT) and offers it on a Unix
socket (argv[1]); ssh runs this with ProxyUseFdpass=yes and takes the descriptor passed on stdout.
Standard library only: it runs as `python -I -S` (no site packages) for a fast start.
"""
import socket
import sys

with socket.socket(socket.AF_UNIX) as offer:
    offer.connect(sys.argv[1])
    _, fds, _, _ = socket.recv_fds(offer, 1, 1)
with socket.socket(fileno=1) as to_ssh:
    socket.send_fds(to_ssh, [b"\0"], fds)
