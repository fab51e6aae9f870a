"""Raw-JSON Kubernetes API client: paginated list and chunked watch over one aiohttp session.

No generated models: objects stay plain dicts until a reducer turns them into compact records.
Every transport failure is mapped here, at the boundary, to ``kdns.k8s.errors``:
``ApiConnectionError`` (connect/TLS/reset/timeouts, ``WatchStalled`` for a silent watch),
``ApiError``/``ApiGone`` (HTTP error status or watch ERROR event), ``ApiProtocolError``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Final, NamedTuple

import aiohttp

from kdns.k8s import metrics
from kdns.k8s.config import ApiConfig, TokenFile, from_kubeconfig
from kdns.k8s.errors import (
    ApiConnectionError,
    ApiError,
    ApiProtocolError,
    K8sError,
    WatchStalled,
    api_error,
)
from kdns.k8s.watchstream import MALFORMED as MALFORMED  # re-exported
from kdns.k8s.watchstream import WatchDecoder
from kdns.k8s.watchstream import WatchEvent as WatchEvent  # re-exported

USER_AGENT: Final = "kdns/0.1 (kubernetes)"
# RuntimeError: aiohttp's "Connection closed." / "Session is closed" when close() races a request.
_TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, ssl.SSLError, TimeoutError, RuntimeError)
RELOAD_INTERVAL: Final = 10.0  # seconds between kubeconfig re-resolutions after 401s


class ListPage(NamedTuple):
    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str
    malformed: int  # items that were not JSON objects and were dropped
    size: int = 0  # bytes of the response body (callers size their next page with it)


class _TokenBucket:
    """client-go style QPS/burst limiter."""

    def __init__(self, qps: float, burst: int) -> None:
        self._rate = qps
        self._capacity = float(max(1, burst))
        self._tokens = self._capacity
        self._stamp = time.monotonic()

    async def acquire(self) -> None:
        while True:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return
            await asyncio.sleep((1.0 - self._tokens) / self._rate)


class ApiClient:
    """One API server connection pool. Use as ``async with ApiClient(cfg) as client``.

    ``request_timeout`` bounds a list page (headers + body) and the wait for a watch's response
    headers; a watch body is bounded by its ``idle_timeout`` instead. ``qps``/``burst`` and
    ``max_inflight`` mirror CoreDNS's ``apiserver_qps``/``_burst``/``_max_inflight``
    (max_inflight counts list requests only: watches are long-running).
    """

    def __init__(
        self,
        config: ApiConfig,
        *,
        connect_timeout: float = 10.0,
        request_timeout: float = 60.0,
        qps: float | None = None,
        burst: int | None = None,
        max_inflight: int | None = None,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.config = config
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self._ssl = config.ssl_context()
        self._token_file = TokenFile(config.token_file) if config.token_file else None
        self._token = config.token
        self._reloaded_at: float | None = None  # monotonic time of the last kubeconfig reload
        self._limiter = _TokenBucket(qps, burst or max(1, int(qps))) if qps else None
        self._inflight = asyncio.Semaphore(max_inflight) if max_inflight else None
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._host = config.host

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connections; requests made afterwards fail with ApiConnectionError."""
        self._closed = True
        await self._drop_session()

    async def _drop_session(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ApiConnectionError("the API client is closed")
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl else True)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self._user_agent, "Accept": "application/json"},
                trust_env=False,
            )
        return self._session

    def _auth_headers(self) -> dict[str, str]:
        token = self._token_file.read() if self._token_file else self._token
        return {"Authorization": f"Bearer {token}"} if token else {}

    # -- list ------------------------------------------------------------------------------

    async def list_page(
        self,
        path: str,
        *,
        limit: int | None = 500,
        continue_token: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
    ) -> ListPage:
        """One page of a collection. Raises ApiGone when ``continue_token`` has expired."""
        params = _selectors(label_selector, field_selector)
        if limit:
            params["limit"] = str(limit)
        if continue_token:
            params["continue"] = continue_token
        elif resource_version is not None:
            params["resourceVersion"] = resource_version
        if self._inflight is not None:
            async with self._inflight:
                body = await self._get_body(path, params)
        else:
            body = await self._get_body(path, params)
        return _parse_list(path, body)._replace(size=len(body))

    async def list_pages(
        self,
        path: str,
        *,
        limit: int | None = 500,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> AsyncGenerator[ListPage, None]:
        """Every page of a consistent list, in order; the last page's continue_token is ""."""
        token: str | None = None
        while True:
            page = await self.list_page(
                path,
                limit=limit,
                continue_token=token,
                label_selector=label_selector,
                field_selector=field_selector,
            )
            yield page
            if not page.continue_token:
                return
            token = page.continue_token

    async def list(
        self,
        path: str,
        *,
        limit: int | None = 500,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """All items of a collection and the list's resourceVersion."""
        items: list[dict[str, Any]] = []
        rv = ""
        async for page in self.list_pages(
            path, limit=limit, label_selector=label_selector, field_selector=field_selector
        ):
            items.extend(page.items)
            rv = page.resource_version
        return items, rv

    async def _get_body(self, path: str, params: dict[str, str]) -> bytes:
        resp = await self._open(path, params)
        try:
            async with asyncio.timeout(self.request_timeout):
                return await resp.read()
        except _TRANSPORT_ERRORS as exc:
            raise ApiConnectionError(f"GET {path}: reading the body failed: {_why(exc)}") from None
        finally:
            resp.release()

    # -- watch -----------------------------------------------------------------------------

    async def watch(
        self,
        path: str,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = 300,
        idle_timeout: float | None = 120.0,
        allow_bookmarks: bool = True,
        on_open: Callable[[], None] | None = None,
    ) -> AsyncGenerator[WatchEvent, None]:
        """Watch events from ``resource_version`` until the server ends the stream.

        Raises ApiGone for a 410 (HTTP or ERROR event), WatchStalled when nothing at all
        arrives for ``idle_timeout`` seconds, ApiConnectionError when the stream breaks.
        Close it with ``contextlib.aclosing`` when leaving early.
        """
        params = _selectors(label_selector, field_selector)
        params["watch"] = "true"
        params["resourceVersion"] = resource_version
        if allow_bookmarks:
            params["allowWatchBookmarks"] = "true"
        if timeout_seconds:
            params["timeoutSeconds"] = str(timeout_seconds)
        resp = await self._open(path, params)
        if on_open is not None:
            on_open()  # the server accepted the watch (a healthy but quiet API sends nothing)
        clean_end = False
        try:
            decoder = WatchDecoder()
            async for chunk in _chunks(resp, path, idle_timeout):
                try:
                    events = decoder.feed(chunk) if chunk else decoder.end()
                except ApiProtocolError as exc:
                    raise ApiProtocolError(f"watch {path}: {exc}") from None
                for event in events:
                    if event.type == "ERROR":
                        raise _status_error(event.object)
                    yield event
            clean_end = True
        finally:
            if clean_end:
                resp.release()
            else:
                resp.close()

    # -- transport -------------------------------------------------------------------------

    async def _open(self, path: str, params: dict[str, str]) -> aiohttp.ClientResponse:
        """Send a GET and return the response once its headers are in; errors are mapped."""
        what = "watch" if "watch" in params else "GET"  # for messages; metrics say GET (client-go)
        if self._limiter is not None:
            started = time.monotonic()
            await self._limiter.acquire()
            metrics.REST_RATE_LIMITER_DURATION.labels("GET", self._host).observe(
                time.monotonic() - started
            )
        session = self._get_session()
        url = self.config.base_url + path
        timeout = aiohttp.ClientTimeout(total=None, connect=self.connect_timeout)
        for attempt in range(2):
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.request_timeout):
                    resp = await session.get(
                        url,
                        params=params,
                        headers=self._auth_headers(),
                        timeout=timeout,
                        server_hostname=self.config.tls_server_name,
                    )
            except _TRANSPORT_ERRORS as exc:
                metrics.REST_REQUESTS.labels("<error>", "GET", self._host).inc()
                raise ApiConnectionError(f"{what} {path}: {_why(exc)}") from None
            metrics.REST_REQUESTS.labels(str(resp.status), "GET", self._host).inc()
            metrics.REST_REQUEST_DURATION.labels("GET", self._host).observe(
                time.monotonic() - started
            )
            if resp.status < 400:
                return resp
            body = await _read_error_body(resp)
            if resp.status == 401 and attempt == 0 and await self._refresh_credentials():
                continue
            error = _status_error(body, http_status=resp.status, reason=resp.reason or "")
            error.retry_after = _retry_after(resp.headers.get("Retry-After"))
            raise error
        raise AssertionError("unreachable")  # pragma: no cover

    async def _refresh_credentials(self) -> bool:
        """After a 401: re-read a token file, or re-resolve an exec/auth-provider kubeconfig
        (at most every RELOAD_INTERVAL). True when the request is worth retrying."""
        if self._token_file is not None:
            self._token_file.invalidate()  # it may have rotated since it was last read
            return True
        source = self.config.reload_from
        now = time.monotonic()
        if source is None or (
            self._reloaded_at is not None and now - self._reloaded_at < RELOAD_INTERVAL
        ):
            return False
        self._reloaded_at = now

        try:
            fresh = await from_kubeconfig(*source)
        except K8sError:
            return False
        self._token = fresh.token
        if (fresh.client_cert_file, fresh.client_key_file) != (
            self.config.client_cert_file,
            self.config.client_key_file,
        ):
            self.config = fresh
            self._ssl = fresh.ssl_context()
            await self._drop_session()  # new connections present the new certificate
        return True


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the API server sends an integer); dates are ignored."""
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= 3600 else None


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


async def _read_error_body(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        async with asyncio.timeout(5.0):
            raw = await resp.read()
        body = json.loads(raw)
    except (*_TRANSPORT_ERRORS, ValueError):
        body = None
    finally:
        resp.release()
    return body if isinstance(body, dict) else {}


def _status_error(
    status: dict[str, Any], *, http_status: int | None = None, reason: str = ""
) -> ApiError:
    """The exception for a ``Status`` object (error body or ERROR event)."""
    code = status.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        code = http_status if http_status is not None else 500
    if http_status is not None and http_status != code:
        code = http_status  # the HTTP status is authoritative for HTTP errors
    msg = status.get("message")
    why = status.get("reason")
    return api_error(
        code,
        why if isinstance(why, str) and why else reason,
        msg if isinstance(msg, str) else "",
    )


def _parse_list(path: str, body: bytes) -> ListPage:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ApiProtocolError(f"GET {path}: response is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ApiProtocolError(f"GET {path}: response is not a JSON object")
    meta = doc.get("metadata")
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    # "items" must be there (null is fine): a stray {} must not read as "the cluster is empty".
    raw_items = doc.get("items", ())
    if raw_items is None:
        raw_items = []
    if not isinstance(raw_items, list) or (rv is not None and not isinstance(rv, str)):
        raise ApiProtocolError(f"GET {path}: not a list (bad items or metadata.resourceVersion)")
    # A list without a resourceVersion (some stand-in servers) is watched from "" instead:
    # the server then replays the current state as ADDED events before the changes.
    rv = rv or ""
    cont = meta.get("continue") if isinstance(meta, dict) else None
    items = [i for i in raw_items if isinstance(i, dict)]
    return ListPage(
        items, rv, cont if isinstance(cont, str) else "", len(raw_items) - len(items)
    )


async def _chunks(
    resp: aiohttp.ClientResponse, path: str, idle_timeout: float | None
) -> AsyncIterator[bytes]:
    """The body of a watch as it arrives; b"" once at the end."""
    while True:
        try:
            async with asyncio.timeout(idle_timeout):
                chunk = await resp.content.readany()
        except TimeoutError:
            raise WatchStalled(
                f"watch {path}: nothing received for {idle_timeout:g}s"
            ) from None
        except _TRANSPORT_ERRORS as exc:
            raise ApiConnectionError(f"watch {path}: stream broke: {_why(exc)}") from None
        yield chunk
        if not chunk:
            return
