"""hosts handler: A/AAAA/PTR from an immutable HostsTable; background re-reads of the file.

Answering is a dict lookup into ``self.table`` (a HostsTable); the background task builds a new
table off the event loop and swaps it in with one assignment. Every answer is declared reusable
by the wire fast path (kdns/wire/fastpath.py) under ``self.version``, which is bumped on each
swap, so memoized replies never outlive the data they came from. A precomputing fast path may
also read ``table``, ``origins`` and ``fall`` directly (``table.generation`` changes per swap).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import stat
from dataclasses import dataclass

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from kdns.log import plugin_log
from kdns.plugin import Handler, Plugin, Request, in_zones
from kdns.tasks import cancel_and_wait
from kdns.wire.fastpath import Version

from .metrics import HOSTS_ENTRIES, HOSTS_RELOAD_TIMESTAMP
from .parse import HostsConfig
from .table import HostLine, HostsTable, Malformed, build_table, parse_hosts

log = plugin_log("hosts")

_A = dns.rdatatype.A
_AAAA = dns.rdatatype.AAAA
_PTR = dns.rdatatype.PTR


@dataclass(frozen=True, slots=True)
class FileState:
    """What we last loaded from the hosts file: its identity and its parsed lines."""

    mtime_ns: int
    size: int
    lines: tuple[HostLine, ...]


class Hosts(Plugin):
    name = "hosts"

    def __init__(self, next: Handler, cfg: HostsConfig) -> None:
        super().__init__(next)
        self.cfg = cfg
        self.origins = cfg.origins
        self.fall = cfg.fall
        self._generation = itertools.count(1)
        self._file: FileState | None = None
        self._warned: str = ""  # the last file problem logged, so it is logged once
        self._task: asyncio.Task[None] | None = None
        self.version = Version()
        # Until start() has read the file, queries wait rather than get an NXDOMAIN for a name
        # the file has: the server binds its listeners before it starts the plugins.
        self._loaded = False
        self._loaded_event: asyncio.Event | None = None  # made on first need, inside the loop
        # Inline entries are served from the first query on; the file joins in start().
        self.table: HostsTable = self._build(())

    # --- answering ---------------------------------------------------------------------
    async def serve(self, req: Request) -> dns.message.Message:
        if not self._loaded:
            await self._until_loaded()
        qname, qtype, table = req.qname, req.qtype, self.table
        if qtype == _PTR:
            # PTR names need not be in the plugin's zones; a missing PTR always passes on.
            ptr = table.ptr(qname)
            if ptr is None:
                return await self._pass_on(req)
            r = req.reply(aa=True, by=self.name)
            r.answer = [ptr]
            req.reusable(self.version)
            return r
        if in_zones(qname, self.origins) is None:
            return await self.next.serve(req)  # never ours, whatever the data: no dependency
        rec = table.lookup(qname)
        if rec is None:
            if self.fall and in_zones(qname, self.fall) is not None:
                return await self._pass_on(req)
            req.reusable(self.version)
            return req.reply(dns.rcode.NXDOMAIN, aa=True, by=self.name)
        if qtype == _A:
            rrset = rec.a
        elif qtype == _AAAA:
            rrset = rec.aaaa
        else:
            rrset = None
            if self.cfg.fall_unsupported and in_zones(qname, self.fall) is not None:
                return await self._pass_on(req)
        r = req.reply(aa=True, by=self.name)  # NODATA when rrset is None
        if rrset is not None:
            if rec.wildcard:
                rrset = dns.rrset.from_rdata_list(req.name, rrset.ttl, list(rrset))
            r.answer = [rrset]
        req.reusable(self.version)
        return r

    async def _until_loaded(self) -> None:
        if self._loaded_event is None:
            self._loaded_event = asyncio.Event()
        await self._loaded_event.wait()

    async def _pass_on(self, req: Request) -> dns.message.Message:
        """Pass on a name our data does not answer; a replay of the next plugin's answer must
        also end when our data changes (the name may be added to the hosts file)."""
        seen = self.version.n
        resp = await self.next.serve(req)
        if req.memo_deps is not None:  # only when the rest of the chain opted in to reuse
            req.memo_deps.append((self.version, seen))
        return resp

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        outside = [n for line in self.cfg.inline for n in line.names
                   if in_zones(n, self.origins) is None]
        if outside:  # CoreDNS ignores them silently; say so once
            log.warning("inline entries outside the zones %s are ignored: %s",
                        " ".join(self.origins), " ".join(dict.fromkeys(outside)))
        try:
            await self.load()
        finally:
            self._loaded = True
            if self._loaded_event is not None:
                self._loaded_event.set()
        HOSTS_ENTRIES.labels(self.cfg.path).set(self.table.entries)
        if self.cfg.reload > 0:
            self._task = asyncio.create_task(self._reload_loop(), name="hosts-reload")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.reload)
            try:
                await self.load()
            except Exception as e:  # never let one bad read end the reloads
                log.error("%s: reload failed: %s", self.cfg.path, e)

    async def load(self) -> bool:
        """Re-read the file if its mtime or size changed; True when a new table was swapped in."""
        path = self.cfg.path
        try:
            st = os.stat(path)
        except OSError as e:
            return self._file_gone(f"{path}: {e.strerror or e}")
        if not stat.S_ISREG(st.st_mode):  # a directory, a FIFO or /dev/zero: never read it
            return self._file_gone(f"{path}: not a regular file")
        if self._file is not None and (st.st_mtime_ns, st.st_size) == (
            self._file.mtime_ns, self._file.size
        ):
            return False
        try:
            lines, bad, table = await asyncio.to_thread(self._read_and_build, path)
        except OSError as e:
            return self._file_gone(f"{path}: {e.strerror or e}")
        self._warned = ""
        self._file = FileState(st.st_mtime_ns, st.st_size, lines)
        self._swap(table, st.st_mtime_ns / 1e9)
        if bad:
            _log_malformed(path, bad)
        return True

    def _read_and_build(self, path: str) -> tuple[tuple[HostLine, ...], list[Malformed],
                                                  HostsTable]:
        # Runs in a worker thread: a large hosts file must not stall the event loop.
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        lines, bad = parse_hosts(text)
        return tuple(lines), bad, self._build(lines)

    def _file_gone(self, problem: str) -> bool:
        """The file cannot be read: serve the inline entries only (they survive deletion)."""
        if problem != self._warned:
            log.warning("File does not exist or cannot be read: %s", problem)
            self._warned = problem
        if self._file is None:
            return False
        self._file = None
        self._swap(self._build(()), None)
        return True

    def _build(self, file_lines: tuple[HostLine, ...] | list[HostLine]) -> HostsTable:
        c = self.cfg
        return build_table(file_lines, c.inline, c.origins, c.ttl, c.reverse,
                           next(self._generation))

    def _swap(self, table: HostsTable, mtime: float | None) -> None:
        self.table = table  # one assignment: queries see the old table or the new one
        self.version.bump()
        HOSTS_ENTRIES.labels(self.cfg.path).set(table.entries)
        if mtime is not None:
            HOSTS_RELOAD_TIMESTAMP.labels(self.cfg.path).set(mtime)


def _log_malformed(path: str, bad: list[Malformed]) -> None:
    first = bad[0]
    more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
    log.warning("%s: skipped %d malformed line%s: line %d %r: %s%s", path, len(bad),
                "" if len(bad) == 1 else "s", first.lineno, first.text, first.reason, more)
