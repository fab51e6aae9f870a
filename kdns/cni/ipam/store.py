"""host-local's on-disk reservation store, byte for byte, behind an flock.

Layout under <dataDir>/<network>/: one file per reserved IP named by the address and holding
"<containerID>\\r\\n<ifname>" (no trailing newline), last_reserved_ip.<rangeSetIndex> holding the
last address handed out, and an empty "lock" file that every operation flock()s. Sharing the
format and the lock means kdns-ipam and the reference host-local can run on the same node, even
at the same time, without losing or duplicating allocations.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from kdns.cni.errors import IO_FAILURE, TRY_AGAIN_LATER, CniError
from kdns.cni.result import IPAddress, parse_address

LINE_BREAK: Final = "\r\n"
LAST_IP_PREFIX: Final = "last_reserved_ip."
LOCK_NAME: Final = "lock"
LOCK_TIMEOUT_S: Final = 60.0


def owner_bytes(container_id: str, ifname: str) -> bytes:
    return (container_id.strip() + LINE_BREAK + ifname).encode()


def parse_owner(content: bytes) -> tuple[str, str]:
    cid, _, ifname = content.decode(errors="replace").strip().partition(LINE_BREAK)
    return cid.strip(), ifname.strip()


@dataclass(frozen=True, slots=True)
class Allocation:
    ip: IPAddress
    container_id: str
    ifname: str


class Store:
    def __init__(self, data_dir: str, network: str) -> None:
        self.dir = os.path.join(data_dir, network)
        try:
            os.makedirs(self.dir, mode=0o755, exist_ok=True)
        except OSError as e:
            raise CniError(IO_FAILURE, f"cannot create IPAM data dir {self.dir}", str(e)) from e

    @contextlib.contextmanager
    def locked(self, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        fd = os.open(os.path.join(self.dir, LOCK_NAME), os.O_RDONLY | os.O_CREAT, 0o750)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        msg = f"IPAM store {self.dir} is locked"
                        raise CniError(TRY_AGAIN_LATER, msg) from None
                    time.sleep(0.005)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    def _path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def reserve(self, container_id: str, ifname: str, ip: IPAddress, range_id: int) -> bool:
        """Caller holds the lock. False when the address is already taken."""
        path = self._path(str(ip))
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(owner_bytes(container_id, ifname))
        except OSError as e:
            os.unlink(path)
            raise CniError(IO_FAILURE, f"cannot write {path}", str(e)) from e
        self._write(LAST_IP_PREFIX + str(range_id), str(ip).encode())
        return True

    def _write(self, name: str, data: bytes) -> None:
        with open(self._path(name), "wb") as f:
            f.write(data)
        os.chmod(self._path(name), 0o644)

    def last_reserved(self, range_id: int) -> IPAddress | None:
        try:
            with open(self._path(LAST_IP_PREFIX + str(range_id)), "rb") as f:
                text = f.read().decode(errors="replace").strip()
            return parse_address(text)
        except (OSError, CniError):
            return None  # host-local also just loses round-robin once

    def allocations(self) -> list[Allocation]:
        out: list[Allocation] = []
        for name in sorted(os.listdir(self.dir)):
            if name == LOCK_NAME or name.startswith(LAST_IP_PREFIX):
                continue
            try:
                ip = parse_address(name)
                with open(self._path(name), "rb") as f:
                    cid, ifname = parse_owner(f.read())
            except (OSError, CniError):
                continue  # not ours, or removed meanwhile
            out.append(Allocation(ip=ip, container_id=cid, ifname=ifname))
        return out

    def find(self, container_id: str, ifname: str) -> list[IPAddress]:
        return [a.ip for a in self.allocations() if self._owned(a, container_id, ifname)]

    @staticmethod
    def _owned(a: Allocation, container_id: str, ifname: str) -> bool:
        return a.container_id == container_id.strip() and a.ifname in (ifname, "")

    def release(self, ip: IPAddress) -> None:
        try:
            os.unlink(self._path(str(ip)))
        except OSError as e:
            if e.errno != errno.ENOENT:
                raise CniError(IO_FAILURE, f"cannot release {ip}", str(e)) from e

    def release_owner(self, container_id: str, ifname: str) -> list[IPAddress]:
        released = self.find(container_id, ifname)
        for ip in released:
            self.release(ip)
        return released
