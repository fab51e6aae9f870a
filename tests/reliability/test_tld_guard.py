"""S9: the opt-in TLD-named namespace guard (reliability.md S9, CVE-2022-2835).

A namespace ``com`` holding a Service ``google`` answers ``google.com.svc.cluster.local``,
which a pod's ``ndots:5`` search path tries before ``google.com``. With
``guard_tld_namespaces`` kdns answers NXDOMAIN for it (and for ``svc``-named namespaces, also
for namespaces that appear after start-up through the watch) and logs one warning per such
namespace, however often it is queried or recreated; without it the name is answered, as
CoreDNS does. Real kdns process, fake API server (tests/fakeapi), cache and fast path on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import dns.rcode
import dns.reversename

from tests.fakeapi import objects as k8s
from tests.fakeapi.thread import FakeApiServer
from tests.kdnsproc import KdnsProcess, run_kdns

COREFILE = """\
.:{port} {
    errors
    kubernetes cluster.local in-addr.arpa {
        endpoint %(api)s
        %(guard)s
    }
    cache 30
}
"""
GOOGLE = "google.com.svc.cluster.local."
GOOGLE_IP = "10.96.7.7"
WARNING = "is named like a top-level domain"
# Enough repeats that the second and later ones come from the cache / wire fast path.
REPEATS = 20


def objects() -> list[dict[str, object]]:
    return [
        k8s.namespace("com"), k8s.service("com", "google", cluster_ip=GOOGLE_IP),
        k8s.namespace("svc"), k8s.service("svc", "x", cluster_ip="10.96.7.8"),
        k8s.namespace("dev"), k8s.service("dev", "api", cluster_ip="10.96.7.9"),
        k8s.namespace("default"), k8s.service("default", "web", cluster_ip="10.96.7.10"),
    ]


@contextmanager
def served(guard: str) -> Iterator[tuple[FakeApiServer, KdnsProcess]]:
    with FakeApiServer(bookmark_interval=0.5) as api:
        api.put_many(objects())
        with run_kdns(COREFILE % {"api": api.url, "guard": guard}) as k:
            yield api, k
            assert "Traceback" not in k.output, k.output


def rcode_and_ips(k: KdnsProcess, name: str, rdtype: str = "A") -> tuple[str, list[str]]:
    r = k.query(name, rdtype)
    return dns.rcode.to_text(r.rcode()), sorted(rd.to_text() for rr in r.answer for rd in rr)


def repeated(k: KdnsProcess, name: str, rdtype: str = "A") -> set[tuple[str, tuple[str, ...]]]:
    """Every distinct (rcode, answer) over REPEATS queries (one element: a stable answer)."""
    out = set()
    for _ in range(REPEATS):
        rc, ips = rcode_and_ips(k, name, rdtype)
        out.add((rc, tuple(ips)))
    return out


def wait_rcode(k: KdnsProcess, name: str, want: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while rcode_and_ips(k, name)[0] != want:
        assert time.monotonic() < deadline, f"{name} never {want}:\n{k.output}"
        time.sleep(0.05)


def warnings(k: KdnsProcess) -> list[str]:
    return [line for line in k.lines if WARNING in line]


def test_guard_off_answers_tld_named_namespaces() -> None:
    with served("") as (_, k):
        assert repeated(k, GOOGLE) == {("NOERROR", (GOOGLE_IP,))}
        assert repeated(k, "x.svc.svc.cluster.local.") == {("NOERROR", ("10.96.7.8",))}
        ptr = dns.reversename.from_address(GOOGLE_IP).to_text()
        assert rcode_and_ips(k, ptr, "PTR") == ("NOERROR", [GOOGLE])
        assert warnings(k) == []


def test_guard_on_refuses_tld_named_namespaces() -> None:
    with served("guard_tld_namespaces except dev") as (api, k):
        assert repeated(k, GOOGLE) == {("NXDOMAIN", ())}
        assert repeated(k, "x.svc.svc.cluster.local.") == {("NXDOMAIN", ())}
        ptr = dns.reversename.from_address(GOOGLE_IP).to_text()
        assert rcode_and_ips(k, ptr, "PTR")[0] == "NXDOMAIN"
        # Ordinary namespaces and the ``except`` list are served.
        assert repeated(k, "web.default.svc.cluster.local.") == {("NOERROR", ("10.96.7.10",))}
        assert repeated(k, "api.dev.svc.cluster.local.") == {("NOERROR", ("10.96.7.9",))}

        # A TLD-named namespace created after start-up (watch path): hidden as well, while a
        # service added to an ordinary namespace at the same time shows up.
        api.put_many([k8s.namespace("io"), k8s.service("io", "github", cluster_ip="10.96.7.11"),
                      k8s.service("default", "late", cluster_ip="10.96.7.12")])
        wait_rcode(k, "late.default.svc.cluster.local.", "NOERROR")
        assert repeated(k, "github.io.svc.cluster.local.") == {("NXDOMAIN", ())}

        # Churn: delete and recreate ``com`` a few times; still hidden, never re-warned.
        for _ in range(5):
            api.delete("Namespace", None, "com")
            api.put(k8s.namespace("com"))
            api.put(k8s.service("com", "google", cluster_ip=GOOGLE_IP))
        api.put(k8s.service("default", "later", cluster_ip="10.96.7.13"))
        wait_rcode(k, "later.default.svc.cluster.local.", "NOERROR")
        assert repeated(k, GOOGLE) == {("NXDOMAIN", ())}

        seen = warnings(k)
        named = sorted(n for n in ("'com'", "'svc'", "'io'", "'dev'", "'default'")
                       for line in seen if n in line)
        assert named == ["'com'", "'io'", "'svc'"], seen
        assert len(seen) == 3, seen
        print(f"S9 guard on: {len(seen)} warnings for 3 hidden namespaces after "
              f"{6 * REPEATS + 1} queries and 5 recreations; lines: {seen}")
