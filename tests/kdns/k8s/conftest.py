"""Shared helpers for the kdns.k8s tests: fake API fixtures, fast timings, a recording sink."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from kdns.k8s.reflector import ReflectorTiming
from tests.fakeapi.fixtures import fake_api, fake_api_async, tls_bundle  # noqa: F401

FAST = ReflectorTiming(backoff_initial=0.02, backoff_max=0.2, watch_timeout=(30, 30),
                       idle_timeout=2.0, resync_interval=None)


class RecordingSink:
    """A dict sink that also records every call, to check atomic replaces and deletes."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}
        self.calls: list[tuple[str, Any]] = []

    def replace(self, items: dict[str, Any]) -> None:
        self.calls.append(("replace", sorted(items)))
        self.items = dict(items)

    def upsert(self, key: str, item: Any) -> None:
        self.calls.append(("upsert", key))
        self.items[key] = item

    def delete(self, key: str) -> None:
        self.calls.append(("delete", key))
        self.items.pop(key, None)

    def ops(self, kind: str) -> list[Any]:
        return [arg for op, arg in self.calls if op == kind]


async def wait_until(pred: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or pred}")
        await asyncio.sleep(0.01)


@pytest.fixture
def fast_timing() -> ReflectorTiming:
    return FAST
