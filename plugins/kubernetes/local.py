"""The host's non-loopback interface addresses (CoreDNS boundIPs with no ``bind`` plugin):
the NS answer and ``ns.dns.<zone>`` are built from them. Read once at start-up."""

from __future__ import annotations

import array
import fcntl
import ipaddress
import socket
import struct

_SIOCGIFCONF = 0x8912
_IFREQ_SIZE = 40  # struct ifreq on 64-bit Linux


def _ipv4() -> list[str]:
    out: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        size = 64 * _IFREQ_SIZE
        buf = array.array("B", b"\0" * size)
        addr, _ = buf.buffer_info()
        res = fcntl.ioctl(s.fileno(), _SIOCGIFCONF, struct.pack("iL", size, addr))
        used = struct.unpack("iL", res)[0]
        data = buf.tobytes()[:used]
        for i in range(0, used, _IFREQ_SIZE):
            out.append(socket.inet_ntoa(data[i + 20 : i + 24]))
    return out


def _ipv6() -> list[str]:
    out: list[str] = []
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return out
    for line in lines:
        hexaddr = line.split()[0]
        out.append(str(ipaddress.IPv6Address(int(hexaddr, 16))))
    return out


def local_ips() -> list[str]:
    """Non-loopback addresses of this host, IPv4 first; [] when they cannot be read."""
    try:
        ips = _ipv4() + _ipv6()
    except OSError:
        return []
    return list(dict.fromkeys(ip for ip in ips if not ipaddress.ip_address(ip).is_loopback))
