"""The opt-in GC freeze after the first sync."""

from __future__ import annotations

import asyncio
import contextlib
import gc

from kdns.k8s import heap
from kdns.k8s.client import ApiClient
from kdns.k8s.config import ApiConfig
from kdns.k8s.objects import reduce_service
from kdns.k8s.reflector import DictSink, Reflector
from kdns.k8s.resources import SERVICES
from tests.fakeapi import objects as k8s
from tests.fakeapi.app import FakeApi
from tests.kdns.k8s.conftest import FAST


async def test_freeze_when_synced_freezes_the_records(fake_api_async: FakeApi) -> None:
    fake_api_async.put_many(k8s.service("ns", f"s{i}") for i in range(20))
    sink: DictSink[object] = DictSink()
    try:
        async with ApiClient(ApiConfig(fake_api_async.url)) as client:
            r = Reflector(client, SERVICES, reduce_service, sink, timing=FAST)
            task = asyncio.create_task(r.run())
            frozen = await asyncio.wait_for(heap.freeze_when_synced([r]), 5)
            assert frozen > 0  # (the count drops again as frozen garbage is freed)
            record = sink.items["ns/s0"]
            assert not any(record in gen for gen in (gc.get_objects(0), gc.get_objects(1),
                                                     gc.get_objects(2)))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        gc.unfreeze()  # leave the test process as it was
