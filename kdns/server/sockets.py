"""Socket creation for DNS listeners: dual-stack when IPv6 exists, SO_REUSEPORT, big buffers."""

from __future__ import annotations

import os
import socket

RECV_BUFFER = 4 * 1024 * 1024
SEND_BUFFER = 1 * 1024 * 1024
# Test-only: a tiny UDP send buffer makes sendto block, so the reply queue's cap can be tested
# (tests/reliability/test_transport.py, T8). Never set in production.
TEST_UDP_SNDBUF_ENV = "KDNS_TEST_UDP_SNDBUF"


def _family_and_host(host: str) -> tuple[socket.AddressFamily, str]:
    if host:
        return (socket.AF_INET6 if ":" in host else socket.AF_INET), host
    if socket.has_ipv6:
        try:
            s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            s.close()
            return socket.AF_INET6, "::"
        except OSError:
            pass
    return socket.AF_INET, "0.0.0.0"


def _base(kind: socket.SocketKind, host: str, port: int) -> socket.socket:
    family, bind_host = _family_and_host(host)
    sock = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6 and not host:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        for opt, size in ((socket.SO_RCVBUF, RECV_BUFFER), (socket.SO_SNDBUF, SEND_BUFFER)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, opt, size)
            except OSError:
                pass
        sock.bind((bind_host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def udp_socket(host: str, port: int) -> socket.socket:
    sock = _base(socket.SOCK_DGRAM, host, port)
    test_sndbuf = os.environ.get(TEST_UDP_SNDBUF_ENV)
    if test_sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(test_sndbuf))
    return sock


TCP_BACKLOG = 1024


def tcp_socket(host: str, port: int, backlog: int = TCP_BACKLOG) -> socket.socket:
    sock = _base(socket.SOCK_STREAM, host, port)
    sock.listen(backlog)
    return sock


def client_addr(addr: tuple[object, ...]) -> tuple[str, int]:
    """Normalise a peer address: IPv4-mapped IPv6 becomes plain IPv4, as Go reports it."""
    host = str(addr[0])
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, int(addr[1])  # type: ignore[call-overload]
