"""FakeApiServer: a FakeApi on its own event loop in a background thread.

For synchronous tests and for tests whose system under test is another process (the kdns server):
every method is thread-safe and returns when the server has applied it.

    with FakeApiServer() as api:
        api.put(objects.namespace("default"))
        ... start kdns with "endpoint {api.url}" ...
        api.drop_watches()
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from tests.fakeapi.app import FakeApi, RequestRecord

T = TypeVar("T")


class FakeApiServer:
    def __init__(self, **kwargs: Any) -> None:
        """``kwargs`` are FakeApi's (tls, tokens, bookmark_interval, history_size, ...)."""
        self._kwargs = kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._api: FakeApi | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeApiServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._api = FakeApi(**self._kwargs)
                loop.run_until_complete(self._api.start())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._api.stop())
            loop.close()

        self._thread = threading.Thread(target=main, name="fakeapi", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
        self._loop = self._thread = None

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, fn: Callable[[FakeApi], T], timeout: float = 30.0) -> T:
        """Run ``fn(api)`` on the server loop and return its result."""
        async def run() -> T:
            assert self._api is not None
            return fn(self._api)
        return self._run(run(), timeout)

    def _run(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        if self._loop is None:
            raise RuntimeError("FakeApiServer is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    # -- the FakeApi surface, made thread-safe -------------------------------------------------

    @property
    def url(self) -> str:
        assert self._api is not None
        return self._api.url

    @property
    def port(self) -> int:
        assert self._api is not None
        return self._api.port

    @property
    def resource_version(self) -> int:
        return self.call(lambda a: a.resource_version)

    @property
    def active_watches(self) -> int:
        return self.call(lambda a: a.active_watches)

    @property
    def hanging(self) -> int:
        return self.call(lambda a: a.hanging)

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.call(lambda a: a.put(obj))

    def put_many(self, objs: Iterable[dict[str, Any]]) -> None:
        items = list(objs)
        self.call(lambda a: a.put_many(items))

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        return self.call(lambda a: a.delete(kind, namespace, name))

    def load(self, path: str | Path) -> int:
        return self.call(lambda a: a.load(path))

    def objects(self, kind: str) -> list[dict[str, Any]]:
        return self.call(lambda a: a.objects(kind))

    def requests(self) -> list[RequestRecord]:
        return self.call(lambda a: list(a.requests))

    def access_summary(self) -> set[tuple[str, str, str]]:
        """Every (verb, apiGroup, resource) requested so far (RBAC audit)."""
        return self.call(lambda a: a.access_summary())

    def clear_requests(self) -> None:
        self.call(lambda a: a.requests.clear())

    def set_tokens(self, tokens: Iterable[str] | None) -> None:
        new = set(tokens) if tokens is not None else None
        self.call(lambda a: setattr(a, "tokens", new))

    def fail_next(self, count: int | None = 1, status: int = 500, *, path: str | None = None,
                  watch: bool | None = None, param: str | None = None,
                  retry_after: int | None = None) -> None:
        self.call(lambda a: a.fail_next(count, status, path=path, watch=watch, param=param,
                                        retry_after=retry_after))

    def gone_next(self, count: int | None = 1, *, path: str | None = None,
                  watch: bool | None = None, param: str | None = None) -> None:
        self.call(lambda a: a.gone_next(count, path=path, watch=watch, param=param))

    def hang_next(self, count: int | None = 1, *, path: str | None = None,
                  watch: bool | None = None, param: str | None = None) -> None:
        self.call(lambda a: a.hang_next(count, path=path, watch=watch, param=param))

    def drop_next(self, count: int | None = 1, *, path: str | None = None,
                  watch: bool | None = None, param: str | None = None) -> None:
        self.call(lambda a: a.drop_next(count, path=path, watch=watch, param=param))

    def clear_faults(self) -> None:
        self.call(lambda a: a.clear_faults())

    def release_hangs(self) -> None:
        self.call(lambda a: a.release_hangs())

    def drop_watches(self) -> int:
        return self.call(lambda a: a.drop_watches())

    def end_watches(self) -> int:
        return self.call(lambda a: a.end_watches())

    def expire_watches(self) -> int:
        return self.call(lambda a: a.expire_watches())

    def stall_watches(self) -> int:
        return self.call(lambda a: a.stall_watches())

    def send_bookmarks(self) -> int:
        return self.call(lambda a: a.send_bookmarks())

    def compact(self) -> None:
        self.call(lambda a: a.compact())

    def expire_continue_tokens(self) -> None:
        self.call(lambda a: a.expire_continue_tokens())

    def down(self) -> None:
        """Close the listener and all connections (connection refused until up())."""
        assert self._api is not None
        self._run(self._api.down())

    def blackhole(self) -> None:
        """Accept TCP connections on the port but never answer (until up())."""
        assert self._api is not None
        self._run(self._api.blackhole())

    def up(self) -> None:
        assert self._api is not None
        self._run(self._api.up())

    def wait_for_watches(self, count: int = 1, timeout: float = 10.0) -> None:
        """Block until at least ``count`` watches are open (e.g. kdns finished its sync)."""
        deadline = time.monotonic() + timeout
        while self.active_watches < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} watches open after {timeout}s")
            time.sleep(0.01)
