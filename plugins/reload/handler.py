"""reload: every period, re-read the ``-conf`` file, hash its parsed blocks and, on a change,
ask the server to reload (the SIGUSR1 path). One watcher per process, even when several blocks
say ``reload``. A file that fails to parse is reported and retried; a reload that fails (bad
plugin options, a taken port) is counted and the same content is not retried until it changes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from kdns.corefile.digest import config_digest
from kdns.corefile.parser import parse_text
from kdns.errors import KdnsError
from kdns.log import plugin_log
from kdns.plugin import App, Handler, Plugin
from kdns.tasks import cancel_and_wait

from .metrics import FAILED, set_version
from .parse import ReloadConfig

log = plugin_log("reload")

# Started instances, oldest first; the newest one is the process's watcher. On a successful
# reload the old instances stop; on a failed one the new instances stop and the old one rules.
_running: list[Reload] = []


@dataclass(frozen=True, slots=True)
class Probe:
    """One look at the Corefile: its digest, or why it could not be read or parsed."""

    digest: str = ""
    parse_error: str = ""
    read_error: str = ""


def probe_file(path: str) -> Probe:
    """Read and parse ``path`` the way the server loads it at startup (blocking I/O)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        return Probe(read_error=str(e))
    try:
        return Probe(digest=config_digest(parse_text(text, path)))
    except KdnsError as e:
        return Probe(parse_error=str(e))


class Reload(Plugin):
    name = "reload"

    def __init__(self, next: Handler, cfg: ReloadConfig, app: App) -> None:
        super().__init__(next)
        self.cfg = cfg
        self.app = app
        self.period = cfg.period()
        self.digest = ""
        self._requested = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.digest = self.app.config_digest()
        _running.append(self)
        self._task = asyncio.create_task(self._watch(), name="reload-watch")

    async def stop(self) -> None:
        if self in _running:
            _running.remove(self)
        await cancel_and_wait(self._task)
        self._task = None

    async def on_reload_failed(self, error: str) -> None:
        if self._requested:
            self._requested = False
            log.error("Corefile changed but reload failed: %s", error)
            FAILED.inc()

    async def _watch(self) -> None:
        # First step runs once the whole config has started: only the newest instance logs.
        if _running and _running[-1] is self:
            log.info("Running configuration SHA512 = %s", self.digest)
            if self.app.corefile_path is None:
                log.warning("no Corefile file to watch (-conf stdin or the built-in default); "
                            "only SIGUSR1 reloads")
        while True:
            await asyncio.sleep(self.period)
            path = self.app.corefile_path
            if path is None or not _running or _running[-1] is not self:
                continue
            if self.app.shutting_down:
                return
            await self.check(path)

    async def check(self, path: str) -> None:
        probe = await asyncio.to_thread(probe_file, path)
        if probe.parse_error:
            log.warning("Corefile parse failed: %s", probe.parse_error)
            return
        if not probe.digest or probe.digest == self.digest:
            return  # unreadable for now (e.g. a ConfigMap swap in progress) or unchanged
        # Not retried until the file changes again, even if this reload fails (CoreDNS).
        set_version(self.digest, probe.digest)
        self.digest = probe.digest
        self._requested = True
        self.app.request_reload()
