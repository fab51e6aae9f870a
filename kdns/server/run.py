"""Lifecycle: load the Corefile, bind listeners, run plugins, reload, shut down in stages.

Shutdown (SIGTERM/SIGINT): /ready turns 503 at once, plugins' on_shutdown run while DNS is still
served (health's lameduck), listeners close, in-flight queries drain within GRACE, plugins stop,
exit 0. A second signal exits at once. SIGUSR1 reloads; a broken new Corefile keeps the old one.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from kdns import gcstats
from kdns.chain import Chain, Listener, build
from kdns.corefile.digest import config_digest
from kdns.corefile.parser import parse_text
from kdns.errors import KdnsError
from kdns.metrics import STATS, register_server_stats
from kdns.plugin import Handler, HttpRoute
from kdns.query import QueryProcessor
from kdns.server.http import HttpSideServers
from kdns.server.sockets import TCP_BACKLOG, tcp_socket, udp_socket
from kdns.server.tcp import TcpProtocol, TcpState
from kdns.server.udp import InflightTracker, UdpListener, register_udp_stats

log = logging.getLogger("kdns.core")
GRACE = 5.0


@dataclass
class Config:
    listeners: list[Listener]
    digest: str

    def plugins(self) -> list[Handler]:
        seen: dict[int, Handler] = {}
        for lst in self.listeners:
            for chain in lst.zones.values():
                for p in chain.plugins:
                    seen.setdefault(id(p), p)
        return list(seen.values())

    def chains(self) -> list[Chain]:
        out: dict[int, Chain] = {}
        for lst in self.listeners:
            for c in lst.zones.values():
                out.setdefault(id(c), c)
        return list(out.values())


@dataclass
class BoundListener:
    processor: QueryProcessor
    udp: UdpListener
    tcp: asyncio.Server
    tcp_state: TcpState


class Server:
    """Implements kdns.plugin.App for the plugins."""

    def __init__(self, corefile_text: str, corefile_path: str | None, dns_port: int = 53,
                 quiet: bool = False, read_corefile: bool = True, role: str = "single") -> None:
        # role: "single" serves everything; with -workers the "parent" runs the watches and the
        # HTTP side servers and binds no DNS socket, each "worker" binds DNS (SO_REUSEPORT) only.
        self.role = role
        self.extra_not_ready: Callable[[], list[str]] = list
        self.on_stop: list[Callable[[], None]] = []
        self.on_reload: list[Callable[[], None]] = []
        self.corefile_text = corefile_text
        self.corefile_path = corefile_path
        self.dns_port = dns_port
        self.quiet = quiet
        self.read_corefile = read_corefile
        self.config: Config | None = None
        self.bound: dict[tuple[str, int], BoundListener] = {}
        self.http = HttpSideServers()
        self.tracker = InflightTracker()
        self._stop = asyncio.Event()
        self._shutting_down = False
        self._reload_lock = asyncio.Lock()
        self._reload_requested = asyncio.Event()
        self._starting: Config | None = None  # config whose plugins are starting
        self.signals_received = 0

    # --- App protocol -------------------------------------------------------------------
    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def request_reload(self) -> None:
        self._reload_requested.set()

    def not_ready(self) -> list[str]:
        names = set()
        if self.config is not None:
            for p in self.config.plugins():
                ready = getattr(p, "ready", None)
                if ready is not None and ready() is False:
                    names.add(p.name)
        names.update(self.extra_not_ready())
        return sorted(names)

    def config_digest(self) -> str:
        # During start() a plugin (reload) must see the digest of the config it belongs to.
        config = self._starting or self.config
        return config.digest if config else ""

    # --- loading ------------------------------------------------------------------------
    def _load(self, text: str) -> Config:
        blocks = parse_text(text, self.corefile_path or "Corefile")
        listeners = build(blocks, self.dns_port, self)
        return Config(listeners, config_digest(blocks))

    def read_current_text(self) -> str:
        if self.read_corefile and self.corefile_path:
            with open(self.corefile_path, encoding="utf-8") as f:
                return f.read()
        return self.corefile_text

    # --- run ----------------------------------------------------------------------------
    async def run(self) -> int:
        register_server_stats()
        register_udp_stats()
        gcstats.install()
        config = self._load(self.corefile_text)
        # Plugins start before the listeners open, so no query meets a plugin that has not
        # started (the loop probe and the kubernetes sync run in background tasks).
        await self._start_plugins(config)
        try:
            if self.role != "parent":
                await self._bind(config)
            self.config = config
            self._record_enabled(config)
            if self.role != "worker":
                await self.http.start(self._routes(config))
        except BaseException:
            await self._close_listeners()
            await self._stop_plugins(config)
            raise
        self._banner(config)
        gc.freeze()  # long-lived config and zone objects stay out of every collection
        self._install_signals()
        reloader = asyncio.create_task(self._reload_loop())
        await self._stop.wait()
        reloader.cancel()
        return await self._shutdown()

    async def _bind(self, config: Config) -> None:
        loop = asyncio.get_running_loop()
        for lst in config.listeners:
            key = (lst.scheme, lst.port)
            if key in self.bound:
                continue
            processor = QueryProcessor(lst)
            try:
                usock = udp_socket(lst.host, lst.port)
                tsock = tcp_socket(lst.host, lst.port)
            except OSError as e:
                raise KdnsError(f"Listen: listen {lst.server_label}: {e.strerror or e}") from None
            tracker = self.tracker
            udp = UdpListener(usock, processor, tracker)
            state = TcpState(processor, tracker)
            # create_server listen()s again with its own backlog (100 by default), which
            # would undo tcp_socket's: SYNs of a connection burst beyond 100 were dropped.
            try:
                tcp = await loop.create_server(partial(TcpProtocol, state), sock=tsock,
                                               backlog=TCP_BACKLOG)
            except BaseException:
                udp.close()
                raise
            self.bound[key] = BoundListener(processor, udp, tcp, state)

    async def _start_plugins(self, config: Config) -> None:
        started: list[Handler] = []
        self._starting = config
        try:
            for p in config.plugins():
                start = getattr(p, "start", None)
                if start is not None:
                    await start()
                started.append(p)
        except BaseException:
            await self._stop_plugins_list(started)
            raise
        finally:
            self._starting = None

    async def _stop_plugins(self, config: Config) -> None:
        await self._stop_plugins_list(config.plugins())

    async def _stop_plugins_list(self, plugins: list[Handler]) -> None:
        for p in reversed(plugins):
            stop = getattr(p, "stop", None)
            if stop is None:
                continue
            try:
                await asyncio.wait_for(stop(), GRACE)
            except Exception as e:
                log.error("plugin %s failed to stop: %s", p.name, e)

    def _routes(self, config: Config) -> list[HttpRoute]:
        routes: list[HttpRoute] = []
        for p in config.plugins():
            fn = getattr(p, "http_routes", None)
            if fn is not None:
                routes += fn()
        return routes

    def _record_enabled(self, config: Config) -> None:
        STATS.plugins_enabled.clear()
        side_only = {"health", "ready", "reload"}
        for lst in config.listeners:
            for zone, chain in lst.zones.items():
                for name in chain.names:
                    if name not in side_only:
                        STATS.plugins_enabled.add((lst.server_label, zone, name))

    def _banner(self, config: Config) -> None:
        if self.quiet:
            return
        from kdns import VERSION_BANNER

        for lst in config.listeners:
            for zone in lst.zones:
                print(f"{zone}:{lst.port}", flush=True)
        print(VERSION_BANNER, flush=True)

    # --- signals, reload, shutdown ------------------------------------------------------
    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_stop_signal, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._on_stop_signal, "SIGINT")
        loop.add_signal_handler(signal.SIGUSR1, self._on_reload_signal)
        loop.add_signal_handler(signal.SIGUSR2, self._on_reload_signal)
        loop.add_signal_handler(signal.SIGHUP, lambda: None)  # ignored on purpose, as CoreDNS
        loop.add_signal_handler(signal.SIGQUIT, lambda: os._exit(0))

    def _on_stop_signal(self, name: str) -> None:
        self.signals_received += 1
        if self.signals_received > 1:
            log.info("%s: Exiting immediately", name)
            os._exit(2 if name == "SIGINT" else 0)
        log.info("%s: Shutting down servers then terminating", name)
        self._shutting_down = True
        for hook in self.on_stop:
            hook()
        self._stop.set()

    def _on_reload_signal(self) -> None:
        log.info("SIGUSR1: Reloading")
        for hook in self.on_reload:
            hook()
        self.request_reload()

    async def _reload_loop(self) -> None:
        while True:
            await self._reload_requested.wait()
            self._reload_requested.clear()
            await self.reload()

    async def reload(self) -> bool:
        """Swap in the Corefile as it is now; keep the running config if the new one fails."""
        async with self._reload_lock:
            log.info("Reloading")
            old = self.config
            assert old is not None
            try:
                text = self.read_current_text()
                new = self._load(text)
                await self._start_plugins(new)
                if self.role != "parent":
                    try:
                        await self._bind(new)
                    except BaseException:
                        await self._stop_plugins(new)
                        raise
            except Exception as e:  # any failure keeps the running config (bad UTF-8, bugs...)
                log.error("Restart failed: %s", e)
                self._drop_unused_listeners(old)
                await self._reload_failed(old, str(e))
                return False
            await self.http.stop()
            try:
                if self.role != "worker":
                    await self.http.start(self._routes(new))
            except (KdnsError, OSError) as e:
                log.error("Restart failed: %s", e)
                await self._stop_plugins(new)
                self._drop_unused_listeners(old)
                if self.role != "worker":
                    try:
                        await self.http.start(self._routes(old))
                    except (KdnsError, OSError) as again:
                        log.error("HTTP side servers of the running config: %s", again)
                await self._reload_failed(old, str(e))
                return False
            self.corefile_text = text
            for lst in new.listeners:
                bound = self.bound[(lst.scheme, lst.port)]
                bound.processor.listener = lst
                bound.processor.server = lst.server_label
                bound.processor.clear_memo()
            self.config = new
            self._record_enabled(new)
            self._drop_unused_listeners(new)
            await self._stop_plugins(old)
            log.info("Reloading complete")
            return True

    async def _reload_failed(self, running: Config, error: str) -> None:
        """CoreDNS's OnRestartFailed: tell the plugins that keep running (reload counts it)."""
        for p in running.plugins():
            hook = getattr(p, "on_reload_failed", None)
            if hook is None:
                continue
            try:
                await hook(error)
            except Exception as e:
                log.error("reload-failed callback of %s failed: %s", p.name, e)

    def _drop_unused_listeners(self, keep: Config) -> None:
        wanted = {(lst.scheme, lst.port) for lst in keep.listeners}
        for key in list(self.bound):
            if key not in wanted:
                b = self.bound.pop(key)
                b.udp.close()
                b.tcp.close()

    async def _shutdown(self) -> int:
        config = self.config
        assert config is not None
        code = 0
        for p in config.plugins():  # lameduck: DNS still served meanwhile
            hook = getattr(p, "on_shutdown", None)
            if hook is not None:
                try:
                    await hook()
                except Exception as e:
                    log.error("shutdown callback of %s failed: %s", p.name, e)
                    code = 4
        await self._close_listeners()
        await self.tracker.drain(GRACE)
        await self._stop_plugins(config)
        await self.http.stop()
        return code

    async def _close_listeners(self) -> None:
        for b in self.bound.values():
            b.udp.close()
            b.tcp.close()
            for conn in list(b.tcp_state.connections):
                conn.close_when_idle()
        self.bound.clear()
