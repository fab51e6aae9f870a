"""A fake Kubernetes API server for tests (not part of the product).

- ``FakeApi`` (app.py): the aiohttp server, for use inside an async test.
- ``FakeApiServer`` (thread.py): the same on a background thread, thread-safe methods.
- ``FakeApiProcess`` / ``RemoteFakeApi`` (control.py): ``python -m tests.fakeapi`` as a process.
- ``objects``: builders for Namespaces, Services, EndpointSlices, Pods.
- ``fixtures``: pytest fixtures ``fake_api``, ``fake_api_async``, ``tls_bundle``.
"""

from tests.fakeapi.app import FakeApi, RequestRecord, load_objects
from tests.fakeapi.thread import FakeApiServer
from tests.fakeapi.tls import TlsBundle, make_tls_bundle

__all__ = ["FakeApi", "FakeApiServer", "RequestRecord", "TlsBundle", "load_objects",
           "make_tls_bundle"]
