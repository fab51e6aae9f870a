"""pytest fixtures for the fake Kubernetes API server.

Use them from any test module or conftest.py by importing them::

    from tests.fakeapi.fixtures import fake_api, fake_api_async, tls_bundle  # noqa: F401
    from tests.fakeapi import objects as k8s

    def test_dns(fake_api):                      # sync test, server on a background thread
        fake_api.put(k8s.namespace("ns1"))
        fake_api.put(k8s.service("ns1", "web", cluster_ip="10.96.0.10"))
        corefile = f"kubernetes cluster.local {{\\n endpoint {fake_api.url}\\n}}"
        ...                                      # start kdns, wait: fake_api.wait_for_watches(3)
        fake_api.drop_watches(); fake_api.down(); fake_api.up(); fake_api.requests()

    async def test_reflector(fake_api_async):   # async test, server in the test's own loop
        api = fake_api_async                     # FakeApi: same methods, call them directly
        api.put(k8s.namespace("ns1")); await api.down(); await api.up()

``fake_api`` is a ``FakeApiServer`` (thread-safe methods; see thread.py), ``fake_api_async``
a ``FakeApi`` (see app.py). Both are plain http on 127.0.0.1 with an ephemeral port, bookmarks
every 0.5 s. For https, token auth or other settings build your own:
``FakeApiServer(tls=tls_bundle, tokens={"t"})`` with the ``tls_bundle`` fixture (a fresh CA,
server cert for 127.0.0.1/localhost, client cert; ``tls_bundle.ca_cert`` is the CA path).
For a separate process use ``tests.fakeapi.control.FakeApiProcess.start()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.fakeapi.app import FakeApi
from tests.fakeapi.thread import FakeApiServer
from tests.fakeapi.tls import TlsBundle, make_tls_bundle


@pytest.fixture
def fake_api() -> Iterator[FakeApiServer]:
    with FakeApiServer(bookmark_interval=0.5) as server:
        yield server


@pytest.fixture
async def fake_api_async() -> AsyncIterator[FakeApi]:
    async with FakeApi(bookmark_interval=0.5) as api:
        yield api


@pytest.fixture
def tls_bundle(tmp_path: Path) -> TlsBundle:
    return make_tls_bundle(tmp_path / "tls")
