"""FakeApi: an aiohttp server speaking the Kubernetes list/watch wire protocol, with faults.

Run it inside a test's event loop (``async with FakeApi() as api``); ``FakeApiServer`` in
``thread.py`` runs the same thing on a background thread for synchronous tests and for a kdns
process under test. Sync methods must be called on the server's loop thread.

Protocol: ``GET`` collection paths (``/api/v1/services``, ``/api/v1/namespaces/NS/services``,
``/apis/discovery.k8s.io/v1/endpointslices`` ...) with ``limit``/``continue`` (snapshot
tokens that expire -> 410 Expired), ``labelSelector``, ``fieldSelector``; ``watch=true`` with
``resourceVersion`` (too old -> ERROR event with a 410 Status), ``allowWatchBookmarks``,
``timeoutSeconds``; chunked JSON lines. Every request is recorded (RBAC audit).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from tests.fakeapi.selectors import SelectorError, parse_field_selector, parse_label_selector
from tests.fakeapi.store import BY_KIND, BY_PATH, Kind, Store, Watcher
from tests.fakeapi.tls import TlsBundle

_WAKE = "__WAKE__"
_BOOKMARK = "__BOOKMARK__"
_RAW = "__RAW__"
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            410: "Expired", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable", 504: "Timeout"}


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    client_cert_cn: str | None
    time: float  # time.monotonic() when the request arrived

    @property
    def watch(self) -> bool:
        return self.query.get("watch") in ("true", "1")

    @property
    def rbac(self) -> tuple[str, str, str] | None:
        """(verb, apiGroup, resource) as RBAC sees this request; None for non-resource paths."""
        parsed = _parse_path(self.path)
        if parsed is None:
            return None
        kind, _, name = parsed
        group = kind.api_version.rpartition("/")[0]
        verb = "get" if name else "watch" if self.watch else "list"
        return (verb if self.method == "GET" else self.method.lower(), group, kind.plural)


@dataclass
class _Fault:
    action: str  # "status" | "hang" | "drop"
    remaining: int | None  # None: until clear_faults()
    status: int = 500
    path: str | None = None
    watch: bool | None = None
    param: str | None = None
    retry_after: int | None = None

    def matches(self, path: str, is_watch: bool, query: Any) -> bool:
        if self.path is not None and not path.startswith(self.path):
            return False
        if self.param is not None and self.param not in query:
            return False
        return self.watch is None or self.watch == is_watch


def status_body(code: int, message: str, reason: str | None = None) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason or _REASONS.get(code, "Unknown"), "code": code}


def _status(code: int, message: str, reason: str | None = None) -> web.Response:
    return web.json_response(status_body(code, message, reason), status=code)


def load_objects(path: str | Path) -> list[dict[str, Any]]:
    """Objects from a YAML/JSON file or every *.yaml/*.yml/*.json file of a directory
    (multi-document files and ``kind: List`` are expanded)."""
    p = Path(path)
    files = sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json")) \
        if p.is_dir() else [p]
    out: list[dict[str, Any]] = []
    for f in files:
        text = f.read_text()
        docs = [json.loads(text)] if f.suffix == ".json" else yaml.safe_load_all(text)
        for doc in docs:
            if not doc:
                continue
            out.extend(doc.get("items") or [] if doc.get("kind", "").endswith("List") else [doc])
    return out


class FakeApi:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: TlsBundle | None = None,
        tokens: Iterable[str] | None = None,
        require_client_cert: bool = False,
        history_size: int = 1000,
        bookmark_interval: float | None = None,
        continue_ttl: float = 300.0,
        max_watch_seconds: float = 1800.0,
    ) -> None:
        self.host, self.port = host, port
        self.tls = tls
        self.tokens: set[str] | None = set(tokens) if tokens is not None else None
        self.require_client_cert = require_client_cert
        self.store = Store(history_size=history_size)
        self.bookmark_interval = bookmark_interval
        self.continue_ttl = continue_ttl
        self.max_watch_seconds = max_watch_seconds
        self.requests: list[RequestRecord] = []
        self.faults: list[_Fault] = []
        self.hanging = 0  # requests currently held by a hang fault
        self._hang_release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.SockSite | None = None
        self._blackhole: asyncio.Server | None = None
        self._blackhole_conns: set[asyncio.BaseTransport] = set()
        self._ssl: ssl.SSLContext | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self.host}:{self.port}"

    async def __aenter__(self) -> FakeApi:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0,
                                     access_log=None)
        await self._runner.setup()
        if self.tls:
            self._ssl = self.tls.server_context(self.require_client_cert)
        await self.up()

    async def up(self) -> None:
        """(Re)open the listener on the same port."""
        assert self._runner is not None
        await self._close_blackhole()
        if self._site is not None:
            return
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._site = web.SockSite(self._runner, sock, ssl_context=self._ssl)
        await self._site.start()

    async def down(self) -> None:
        """Close the listener and every connection (clients then get connection refused)."""
        await self._close_blackhole()
        if self._site is not None:
            await self._site.stop()
            self._site = None
        self._abort_everything()

    async def blackhole(self) -> None:
        """Like down(), but the port keeps accepting TCP connections and never reads from them:
        clients hang in the TLS handshake or waiting for headers. up() ends it."""
        await self.down()
        loop = asyncio.get_running_loop()
        self._blackhole = await loop.create_server(
            lambda: _Silent(self._blackhole_conns), self.host, self.port, reuse_address=True)

    async def _close_blackhole(self) -> None:
        if self._blackhole is not None:
            self._blackhole.close()
            for transport in list(self._blackhole_conns):
                transport.abort()
            self._blackhole_conns.clear()
            await self._blackhole.wait_closed()
            self._blackhole = None

    async def stop(self) -> None:
        await self.down()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _abort_everything(self) -> None:
        for w in list(self.store.watchers):
            self._poke(w, "drop")
        self.release_hangs()
        server = self._runner.server if self._runner else None
        for conn in list(server.connections if server else []):
            transport = conn.transport
            conn.force_close()
            if transport is not None:
                transport.abort()

    # -- objects -----------------------------------------------------------------------------

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or update (by kind, namespace, name); returns the stored object."""
        return self.store.put(obj)

    def put_many(self, objs: Iterable[dict[str, Any]]) -> None:
        for obj in objs:
            self.store.put(obj)

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        return self.store.delete(kind, namespace, name) is not None

    def load(self, path: str | Path) -> int:
        objs = load_objects(path)
        self.put_many(objs)
        return len(objs)

    def objects(self, kind: str) -> list[dict[str, Any]]:
        return list(self.store.objects[BY_KIND[kind].plural].values())

    @property
    def resource_version(self) -> int:
        return self.store.rv

    def access_summary(self) -> set[tuple[str, str, str]]:
        """Every (verb, apiGroup, resource) requested so far, to compare with a ClusterRole."""
        return {r.rbac for r in self.requests if r.rbac is not None}

    # -- faults ------------------------------------------------------------------------------

    # Fault matching: ``path`` is a path prefix, ``watch`` True/False limits to watch/list
    # requests, ``param`` to requests carrying that query parameter (e.g. "continue").

    def fail_next(self, count: int | None = 1, status: int = 500, *, path: str | None = None,
                  watch: bool | None = None, param: str | None = None,
                  retry_after: int | None = None) -> None:
        """The next ``count`` matching requests get an error Status (None: until cleared),
        with a Retry-After header when ``retry_after`` is set (429 from API priority)."""
        self.faults.append(_Fault("status", count, status, path, watch, param, retry_after))

    def gone_next(self, count: int | None = 1, *, path: str | None = None,
                  watch: bool | None = None, param: str | None = None) -> None:
        """HTTP 410 Gone for the next matching requests."""
        self.fail_next(count, 410, path=path, watch=watch, param=param)

    def hang_next(self, count: int | None = 1, *, path: str | None = None,
                  watch: bool | None = None, param: str | None = None) -> None:
        """Accept the next matching requests and never answer (until release_hangs())."""
        self.faults.append(_Fault("hang", count, path=path, watch=watch, param=param))

    def drop_next(self, count: int | None = 1, *, path: str | None = None,
                  watch: bool | None = None, param: str | None = None) -> None:
        """Reset the connection of the next matching requests without any response."""
        self.faults.append(_Fault("drop", count, path=path, watch=watch, param=param))

    def clear_faults(self) -> None:
        self.faults.clear()
        self.release_hangs()

    def release_hangs(self) -> None:
        """Held requests get their connection reset."""
        self._hang_release.set()
        self._hang_release = asyncio.Event()

    def drop_watches(self) -> int:
        """Reset every open watch connection mid-stream; returns how many."""
        return self._poke_all("drop")

    def end_watches(self) -> int:
        """End every open watch cleanly (as the server does at timeoutSeconds), after the
        events already queued for it."""
        return self._poke_all("end")

    def expire_watches(self) -> int:
        """Send an ERROR event (410 Expired) on every open watch and end it; also compacts,
        so resuming from an old resourceVersion gets 410 too."""
        self.store.compact()
        return self._poke_all("gone")

    def stall_watches(self) -> int:
        """Open watches go silent (no events, no bookmarks) until the client gives up."""
        n = 0
        for w in self.store.watchers:
            w.stalled = True
            w.queue.put_nowait((_WAKE, {}))
            n += 1
        return n

    def send_bookmarks(self) -> int:
        for w in self.store.watchers:
            w.queue.put_nowait((_BOOKMARK, {"rv": self.store.rv}))
        return len(self.store.watchers)

    def inject_raw(self, line: bytes) -> int:
        """Write ``line`` (plus a newline) verbatim into every open watch stream."""
        for w in self.store.watchers:
            w.queue.put_nowait((_RAW, {"line": line}))
        return len(self.store.watchers)

    def compact(self) -> None:
        """Drop event history and list snapshots (old resourceVersions and tokens -> 410)."""
        self.store.compact()

    def expire_continue_tokens(self) -> None:
        self.store.snapshots.clear()

    @property
    def active_watches(self) -> int:
        return len(self.store.watchers)

    def _poke_all(self, action: str) -> int:
        watchers = list(self.store.watchers)
        for w in watchers:
            self._poke(w, action)
        return len(watchers)

    @staticmethod
    def _poke(w: Watcher, action: str) -> None:
        w.action = action
        w.wake.set()
        w.queue.put_nowait((_WAKE, {}))

    # -- HTTP --------------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(RequestRecord(
            request.method, request.path, dict(request.query),
            request.headers.get("Authorization"), _peer_cn(request), time.monotonic()))
        is_watch = request.query.get("watch") in ("true", "1")
        for fault in self.faults:
            if fault.remaining != 0 and fault.matches(request.path, is_watch, request.query):
                if fault.remaining is not None:
                    fault.remaining -= 1
                return await self._inject(fault, request)
        if self.tokens is not None:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                return _status(401, "Unauthorized")
        if self.require_client_cert and _peer_cn(request) is None:
            return _status(401, "Unauthorized: no client certificate")
        response: web.StreamResponse = await handler(request)
        return response

    async def _inject(self, fault: _Fault, request: web.Request) -> web.StreamResponse:
        if fault.action == "status":
            resp = _status(fault.status, f"injected fault: HTTP {fault.status}")
            if fault.retry_after is not None:
                resp.headers["Retry-After"] = str(fault.retry_after)
            return resp
        if fault.action == "hang":
            self.hanging += 1
            try:
                await self._hang_release.wait()
            finally:
                self.hanging -= 1
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # nothing more to send on a reset connection

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            return _status(405, f"method {request.method} not supported by the fake")
        if request.path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if request.path == "/version":
            return web.json_response({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake"})
        parsed = _parse_path(request.path)
        if parsed is None:
            return _status(404, f"the server could not find the resource ({request.path})")
        kind, namespace, name = parsed
        try:
            labels = parse_label_selector(request.query.get("labelSelector"))
            fields = parse_field_selector(request.query.get("fieldSelector"))
        except SelectorError as exc:
            return _status(400, str(exc))
        w = Watcher(kind.plural, namespace, labels, fields)
        if name is not None:
            obj = self.store.objects[kind.plural].get(f"{namespace}/{name}" if namespace else name)
            if obj is None:
                return _status(404, f'{kind.plural} "{name}" not found')
            return web.json_response(_with_kind(obj, kind))
        if request.query.get("watch") in ("true", "1"):
            return await self._watch(request, kind, w)
        return self._list(request, kind, w)

    def _list(self, request: web.Request, kind: Kind, w: Watcher) -> web.Response:
        try:
            limit = int(request.query.get("limit") or 0)
        except ValueError:
            return _status(400, "limit must be an integer")
        token = request.query.get("continue")
        if token:
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                snap_id, start, rv = str(state["snap"]), int(state["start"]), int(state["rv"])
            except (ValueError, KeyError, TypeError):
                return _status(400, "continue key is not valid")
            snap = self.store.snapshots.get(snap_id)
            if snap is None or time.monotonic() - snap[0] > self.continue_ttl:
                return _status(410, "The provided continue parameter is too old to display a "
                               "consistent list result. You can start a new list without the "
                               "continue parameter.", "Expired")
            items = snap[1]
        else:
            items, start, rv = self.store.matching(kind.plural, w), 0, self.store.rv
            snap_id = ""
        end = start + limit if limit > 0 else len(items)
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        if end < len(items):
            if not snap_id:
                snap_id = self.store.snapshot(items)
            raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": end, "snap": snap_id})
            meta["continue"] = base64.urlsafe_b64encode(raw.encode()).decode()
            meta["remainingItemCount"] = len(items) - end
        body = {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": meta,
                "items": items[start:end]}
        return web.json_response(body)

    async def _watch(self, request: web.Request, kind: Kind, w: Watcher) -> web.StreamResponse:
        rv_text = request.query.get("resourceVersion", "")
        try:
            since = None if rv_text in ("", "0") else int(rv_text)
            timeout = float(request.query.get("timeoutSeconds") or self.max_watch_seconds)
        except ValueError:
            return _status(400, "resourceVersion and timeoutSeconds must be integers")
        bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1")
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        if not self.store.add_watcher(w, since):
            await resp.prepare(request)
            gone = status_body(410, f"too old resource version: {since} "
                               f"({self.store.compacted_rv})", "Expired")
            await resp.write(_line("ERROR", gone))
            await resp.write_eof()
            return resp
        try:
            await resp.prepare(request)
            await self._stream(request, resp, kind, w, min(timeout, self.max_watch_seconds),
                               bookmarks)
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            self.store.watchers.discard(w)
        return resp

    async def _stream(self, request: web.Request, resp: web.StreamResponse, kind: Kind,
                      w: Watcher, timeout: float, bookmarks: bool) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        next_bookmark = loop.time() + (self.bookmark_interval or 1e9)
        while True:
            if w.action == "drop":
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError
            if w.action == "gone":
                await resp.write(_line("ERROR", status_body(410, "watch expired", "Expired")))
                break
            if w.action == "end" and w.queue.empty():
                break  # a clean end sends what was already queued first
            if w.stalled:
                await w.wake.wait()
                w.wake.clear()
                continue
            wait = min(deadline, next_bookmark) - loop.time()
            try:
                etype, obj = await asyncio.wait_for(w.queue.get(), max(wait, 0))
            except TimeoutError:
                if loop.time() >= deadline:
                    break
                if bookmarks:
                    await resp.write(_bookmark(kind, self.store.rv))
                next_bookmark = loop.time() + (self.bookmark_interval or 1e9)
                continue
            if etype == _WAKE:
                continue
            if etype == _RAW:
                await resp.write(obj["line"] + b"\n")
                continue
            if etype == _BOOKMARK:
                if bookmarks:
                    await resp.write(_bookmark(kind, obj["rv"]))
                continue
            await resp.write(_line(etype, _with_kind(obj, kind)))
        await resp.write_eof()


class _Silent(asyncio.Protocol):
    """Accepts a connection and ignores it (the blackhole fault)."""

    def __init__(self, conns: set[asyncio.BaseTransport]) -> None:
        self.conns = conns

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conns.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        pass


def _line(etype: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": etype, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _bookmark(kind: Kind, rv: int) -> bytes:
    return _line("BOOKMARK", {"kind": kind.kind, "apiVersion": kind.api_version,
                              "metadata": {"resourceVersion": str(rv)}})


def _with_kind(obj: dict[str, Any], kind: Kind) -> dict[str, Any]:
    if obj.get("kind") == kind.kind and obj.get("apiVersion") == kind.api_version:
        return obj
    return {"kind": kind.kind, "apiVersion": kind.api_version, **obj}


def _parse_path(path: str) -> tuple[Kind, str | None, str | None] | None:
    """(kind, namespace, name) for collection and object paths; None when unknown."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        version, rest = "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        version, rest = f"{parts[1]}/{parts[2]}", parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 2:
        return None
    kind = BY_PATH.get((version, rest[0]))
    if kind is None or (namespace is not None and not kind.namespaced):
        return None
    name = rest[1] if len(rest) == 2 else None
    if name is not None and kind.namespaced and namespace is None:
        return None
    return kind, namespace, name


def _peer_cn(request: web.Request) -> str | None:
    transport = request.transport
    ssl_obj = transport.get_extra_info("ssl_object") if transport else None
    cert = ssl_obj.getpeercert() if ssl_obj is not None else None
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
