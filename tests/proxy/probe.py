"""Tiny network probe run inside test network namespaces (``ip netns exec NS python3 probe.py``).

serve NAME [--tcp PORT] [--udp PORT]: answers every TCP line and UDP datagram with
    "NAME PEER_IP"; prints "ready" once bound (v4 and v6).
tcp HOST PORT [--count N] [--timeout S]: N fresh connections; prints a JSON list of the answers,
    or "ERR <errno name> <seconds>" per failed attempt.
udp HOST PORT [--count N] [--sport P] [--timeout S]: N datagrams (from one fixed source port
    when --sport is given); JSON list of answers or "ERR timeout".
get URL / post URL JSON: one HTTP request; prints {"status": ..., "body": ...} as JSON.
hold HOST PORT: one connection; sends a line, prints the answer, then waits for a line on stdin
    and sends a second one over the same connection, printing that answer too.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import socket
import sys
import time


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _dual_stack(kind: socket.SocketKind, port: int) -> socket.socket:
    # asyncio would set IPV6_V6ONLY on "::"; one socket for both families needs it off.
    sock = socket.socket(socket.AF_INET6, kind)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::", port))
    if kind == socket.SOCK_STREAM:
        sock.listen(64)
    return sock


async def serve(name: str, tcp: int | None, udp: int | None) -> None:
    loop = asyncio.get_running_loop()

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")[0]
        try:
            while await reader.readline():
                writer.write(f"{name} {peer}\n".encode())
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(f"{name} {addr[0]}".encode(), addr)  # type: ignore[attr-defined]

    if tcp:
        await asyncio.start_server(on_conn, sock=_dual_stack(socket.SOCK_STREAM, tcp))
    if udp:
        await loop.create_datagram_endpoint(Echo, sock=_dual_stack(socket.SOCK_DGRAM, udp))
    print("ready", flush=True)
    await asyncio.Event().wait()


def _clean(peer: str) -> str:
    return peer.removeprefix("::ffff:")


def tcp(host: str, port: int, count: int, timeout: float) -> list[str]:
    out = []
    for _ in range(count):
        start = time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.sendall(b"hi\n")
                reply = s.makefile().readline().strip()
                name, _, peer = reply.partition(" ")
                out.append(f"{name} {_clean(peer)}")
        except OSError as e:
            code = errno.errorcode.get(e.errno or 0, "timeout") if e.errno else "timeout"
            out.append(f"ERR {code} {time.monotonic() - start:.3f}")
    return out


def udp(host: str, port: int, count: int, sport: int | None, timeout: float) -> list[str]:
    out = []
    s = socket.socket(_family(host), socket.SOCK_DGRAM)
    s.settimeout(timeout)
    if sport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::" if ":" in host else "0.0.0.0", sport))
    for i in range(count):
        if not sport and i:
            s.close()
            s = socket.socket(_family(host), socket.SOCK_DGRAM)
            s.settimeout(timeout)
        try:
            # A connected socket, like a stub resolver's: ICMP errors surface as ECONNREFUSED.
            s.connect((host, port))
            s.send(b"q")
            name, _, peer = s.recv(512).decode().partition(" ")
            out.append(f"{name} {_clean(peer)}")
        except TimeoutError:
            out.append("ERR timeout")
        except OSError as e:
            out.append(f"ERR {errno.errorcode.get(e.errno or 0, 'oserror')}")
    s.close()
    return out


def hold(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=5) as s:
        f = s.makefile("rw")
        f.write("1\n")
        f.flush()
        print(f.readline().strip(), flush=True)
        sys.stdin.readline()
        f.write("2\n")
        f.flush()
        print(f.readline().strip(), flush=True)


def http(url: str, body: str | None) -> dict[str, object]:
    import urllib.error
    import urllib.request

    data = body.encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return {"status": resp.status, "body": resp.read().decode()}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode()}
    except OSError as e:
        return {"status": 0, "body": str(e)}


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("name")
    s.add_argument("--tcp", type=int)
    s.add_argument("--udp", type=int)
    for cmd in ("tcp", "udp", "hold"):
        c = sub.add_parser(cmd)
        c.add_argument("host")
        c.add_argument("port", type=int)
        c.add_argument("--count", type=int, default=1)
        c.add_argument("--timeout", type=float, default=2.0)
        c.add_argument("--sport", type=int)
    g = sub.add_parser("get")
    g.add_argument("url")
    g = sub.add_parser("post")
    g.add_argument("url")
    g.add_argument("body")
    a = p.parse_args()
    if a.cmd in ("get", "post"):
        print(json.dumps(http(a.url, getattr(a, "body", None))))
    elif a.cmd == "serve":
        asyncio.run(serve(a.name, a.tcp, a.udp))
    elif a.cmd == "tcp":
        print(json.dumps(tcp(a.host, a.port, a.count, a.timeout)))
    elif a.cmd == "udp":
        print(json.dumps(udp(a.host, a.port, a.count, a.sport, a.timeout)))
    else:
        hold(a.host, a.port)


if __name__ == "__main__":
    main()
