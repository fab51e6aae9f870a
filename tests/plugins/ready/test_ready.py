"""ready in the real kdns: 503 naming kubernetes while its API lists hang, then 200 once synced;
200 right away when no plugin reports readiness."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from tests.fakeapi.thread import FakeApiServer
from tests.plugins.kdnsports import run_kdns_ports
from tests.plugins.kubernetes.cluster import cluster_objects


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_status(url: str, status: int, timeout: float = 15.0) -> tuple[int, bytes]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = get(url)
        except OSError:
            got = (0, b"")
        if got[0] == status or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def test_not_ready_until_kubernetes_syncs() -> None:
    with FakeApiServer() as api:
        api.put_many(cluster_objects())
        api.hang_next(None)  # every request hangs: the informers cannot sync
        corefile = (".:{port} {\n    ready 127.0.0.1:{http0}\n    kubernetes cluster.local {\n"
                    f"        endpoint {api.url}\n    }}\n}}\n")
        with run_kdns_ports(corefile, http=1) as (k, (rport,)):
            url = f"http://127.0.0.1:{rport}/ready"
            assert wait_status(url, 503) == (503, b"kubernetes")
            k.wait_for_line('[INFO] plugin/ready: Plugins not ready: "kubernetes"')
            api.clear_faults()
            api.release_hangs()
            assert wait_status(url, 200, timeout=30) == (200, b"OK"), k.output


def test_ready_at_once_without_reporters() -> None:
    with run_kdns_ports(".:{port} {\n    ready 127.0.0.1:{http0}\n    whoami\n}\n",
                        http=1) as (_, (rport,)):
        assert wait_status(f"http://127.0.0.1:{rport}/ready", 200, 5) == (200, b"OK")
