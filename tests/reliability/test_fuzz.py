"""W3/W4/P7: fuzzing of every parser kdns feeds with untrusted bytes, and the corpus replay.

Targets (hypothesis; example counts bounded for CI, ``KDNS_FUZZ_EXAMPLES`` raises them):
  wire      QueryProcessor.fast + QueryProcessor.process (the whole sans-IO request handler,
            with real kubernetes(manifests)/any/whoami chains) on random and mutated packets.
            Oracle: silence, or a reply that parses, has the query's ID, QR=1 and obeys the UDP
            size rule; no exception; per-input time budget.
  framing   the TCP FrameDecoder: whole messages or ValueError, never more than it was given.
  k8s       API object -> record reducers (kdns.k8s.objects and the plugin's records): a record,
            None, or MalformedObject - nothing else.
  corefile  parse_text + chain.build: a config or a CorefileError, never another exception.
  W4        fast path vs slow path: a memoised reply is byte-identical to a fresh one.
Crashers found by a long run are kept in corpus/<target>/ and replayed here on every run
(set ``KDNS_FUZZ_SAVE=1`` to save new ones).
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kdns.chain import build
from kdns.corefile import parse_text
from kdns.errors import CorefileError
from kdns.k8s import objects as k8s_objects
from kdns.k8s.errors import MalformedObject
from kdns.metrics import ServerStats
from kdns.query import QueryProcessor
from kdns.wire.framing import FrameDecoder
from tests.chainbuild import StubApp
from tests.reliability.helpers import FUZZ_EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
MANIFEST = ROOT / "plugins" / "kubernetes" / "examples" / "demo-cluster.yaml"
COREFILE = f"""
cluster.local:53 10.96.0.0/12 {{
    any
    kubernetes {{
        manifests {MANIFEST}
    }}
}}
.:53 {{
    whoami
}}
"""
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
MAX_INPUT_SECONDS = 0.25  # generous for a loaded 2-core CI box; typical is well under 5 ms
_slowest: dict[str, float] = {}


def save_crasher(target: str, data: bytes) -> None:
    if os.environ.get("KDNS_FUZZ_SAVE"):
        d = CORPUS / target
        d.mkdir(parents=True, exist_ok=True)
        (d / f"crash-{hashlib.sha1(data).hexdigest()[:16]}.bin").write_bytes(data)


def corpus(target: str) -> list[Path]:
    return sorted((CORPUS / target).glob("*.bin"))


# --- wire: the whole request handler ------------------------------------------------------

class Handler:
    """A started QueryProcessor over the real chains, driven from a private event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        listeners = build(parse_text(COREFILE, "Corefile"), 53, StubApp())
        assert len(listeners) == 1
        self.plugins = [p for chain in listeners[0].zones.values() for p in chain.plugins]
        for p in self.plugins:
            self.loop.run_until_complete(p.start())  # type: ignore[attr-defined]
        self.processor = QueryProcessor(listeners[0], stats=ServerStats())

    def close(self) -> None:
        for p in self.plugins:
            self.loop.run_until_complete(p.stop())  # type: ignore[attr-defined]
        self.loop.close()

    def check(self, wire: bytes, proto: str = "udp") -> bytes | None:
        """Run one input through fast and slow paths; assert the reply invariants."""
        start = time.perf_counter()
        try:
            out = self.processor.fast(wire, ("127.0.0.1", 5353), proto)
            if out is None:
                out = self.loop.run_until_complete(
                    self.processor.process(wire, ("127.0.0.1", 5353), proto))
        except Exception:
            save_crasher("wire", wire)
            raise
        took = time.perf_counter() - start
        _slowest["wire"] = max(_slowest.get("wire", 0.0), took)
        assert took < MAX_INPUT_SECONDS, f"input took {took * 1000:.1f} ms: {wire!r}"
        if out is None:
            # Silence only for runts and responses (reliability.md section 4).
            assert len(wire) < 12 or wire[2] & 0x80, f"no reply to {wire!r}"
            return None
        try:
            reply = dns.message.from_wire(out)
        except Exception:
            save_crasher("wire", wire)
            raise AssertionError(f"unparseable reply {out!r} to {wire!r}") from None
        assert reply.id == struct.unpack_from("!H", wire)[0]
        assert reply.flags & dns.flags.QR
        if proto == "udp":
            assert len(out) <= self.udp_limit(wire), (len(out), wire)
        return out

    @staticmethod
    def udp_limit(wire: bytes) -> int:
        try:
            q = dns.message.from_wire(wire)
        except Exception:
            return 512
        return min(max(q.payload, 512), 1232) if q.edns >= 0 else 512


@pytest.fixture(scope="module")
def handler() -> Iterator[Handler]:
    h = Handler()
    yield h
    h.close()


NAMES = ["web.demo.svc.cluster.local.", "db.demo.svc.cluster.local.", "cluster.local.",
         "kube-dns.kube-system.svc.cluster.local.", "_http._tcp.db.demo.svc.cluster.local.",
         "20.0.96.10.in-addr.arpa.", "nope.demo.svc.cluster.local.", "example.org.",
         "db-0.db.demo.svc.cluster.local.", "x.pod.cluster.local."]


@st.composite
def valid_queries(draw: Callable[..., Any]) -> bytes:
    name = draw(st.sampled_from(NAMES))
    # random letter case, as 0x20 clients send it
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    name = "".join(c.upper() if f else c for c, f in zip(name, flips, strict=True))
    rdtype = draw(st.sampled_from([1, 28, 33, 12, 16, 6, 2, 5, 255, 99, 65, 0, 252]))
    use_edns = draw(st.booleans())
    kw: dict[str, Any] = {}
    if use_edns:
        kw = {"use_edns": 0, "payload": draw(st.sampled_from([0, 100, 512, 1232, 4096, 65535])),
              "want_dnssec": draw(st.booleans())}
    q = dns.message.make_query(name, rdtype, **kw)
    q.id = draw(st.integers(0, 65535))
    if draw(st.booleans()):
        q.flags &= ~dns.flags.RD
    if draw(st.booleans()):
        q.flags |= dns.flags.CD
    return q.to_wire()


@st.composite
def mutated_queries(draw: Callable[..., Any]) -> bytes:
    wire = bytearray(draw(valid_queries()))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 3))
        if op == 0 and wire:
            i = draw(st.integers(0, len(wire) - 1))
            wire[i] = draw(st.integers(0, 255))
        elif op == 1:
            i = draw(st.integers(0, len(wire)))
            wire[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == 2 and len(wire) > 1:
            i = draw(st.integers(0, len(wire) - 1))
            del wire[i:i + draw(st.integers(1, 8))]
        elif op == 3 and len(wire) >= 12:  # counts are where parsers go wrong
            i = draw(st.sampled_from([4, 6, 8, 10]))
            wire[i:i + 2] = struct.pack("!H", draw(st.sampled_from([0, 1, 2, 3, 255, 65535])))
    return bytes(wire)


@FUZZ
@given(data=st.binary(min_size=0, max_size=600))
def test_fuzz_wire_random_bytes(handler: Handler, data: bytes) -> None:
    handler.check(data)
    handler.check(data, "tcp")


@FUZZ
@given(data=mutated_queries())
def test_fuzz_wire_mutated_queries(handler: Handler, data: bytes) -> None:
    handler.check(data)
    handler.check(data, "tcp")


@FUZZ
@given(data=st.binary(min_size=12, max_size=12).map(lambda h: h[:2] + bytes([h[2] & 0x7F]) + h[3:])
       .flatmap(lambda h: st.binary(max_size=300).map(lambda b: h + b)))
def test_fuzz_wire_query_headers(handler: Handler, data: bytes) -> None:
    """QR=0 headers with random bodies: always answered (never silence), never a crash."""
    assert handler.check(data) is not None


@pytest.mark.parametrize("path", corpus("wire"), ids=lambda p: p.name)
def test_wire_corpus_replay(handler: Handler, path: Path) -> None:
    data = path.read_bytes()
    handler.check(data)
    handler.check(data, "tcp")


@FUZZ
@given(wire=valid_queries(), qid=st.integers(0, 65535))
def test_fuzz_fast_path_equals_slow_path(handler: Handler, wire: bytes, qid: int) -> None:
    """W4: whatever the fast path serves is byte-identical to what the chain builds now."""
    p = handler.processor
    for proto in ("udp", "tcp"):
        slow = handler.loop.run_until_complete(p.process(wire, ("127.0.0.1", 1), proto))
        again = struct.pack("!H", qid) + wire[2:]
        fast = p.fast(again, ("127.0.0.1", 1), proto)
        if fast is None:
            continue  # not memoisable: nothing to compare
        fresh = handler.loop.run_until_complete(p.process(again, ("127.0.0.1", 1), proto))
        assert slow is not None and fresh is not None
        assert fast == fresh, (wire, fast, fresh)


# --- TCP framing -----------------------------------------------------------------------------

@FUZZ
@given(chunks=st.lists(st.binary(max_size=300), max_size=20))
def test_fuzz_tcp_framing(chunks: list[bytes]) -> None:
    dec = FrameDecoder()
    stream = b"".join(chunks)
    got: list[bytes] = []
    try:
        for c in chunks:
            got += dec.feed(c)
    except ValueError:
        return  # a zero-length frame: the listener closes the connection
    consumed = sum(len(m) + 2 for m in got)
    assert consumed + dec.pending == len(stream)
    assert b"".join(len(m).to_bytes(2, "big") + m for m in got) == stream[:consumed]


# --- API objects -> records ------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=20,
)


def _valid_objects() -> list[dict[str, Any]]:
    from tests.fakeapi import objects as k8s
    return [
        k8s.service("ns", "svc", cluster_ip="10.0.0.1", ports=[k8s.port("http", 80)]),
        k8s.service("ns", "ext", type="ExternalName", external_name="a.example"),
        k8s.endpointslice("ns", "svc-1", "svc", [k8s.endpoint("10.1.0.1", hostname="h")],
                          ports=[{"name": "http", "port": 80, "protocol": "TCP"}]),
        k8s.namespace("ns"),
    ]


def _reducers() -> list[tuple[str, Callable[[dict[str, Any]], object]]]:
    from kdns.plugins.kubernetes import records
    return [
        ("reduce_service", k8s_objects.reduce_service),
        ("reduce_endpointslice", k8s_objects.reduce_endpointslice),
        ("reduce_namespace", k8s_objects.reduce_namespace),
        ("reduce_pod", k8s_objects.reduce_pod),
        ("svc_from_raw", records.svc_from_raw),
        ("slice_from_raw", records.slice_from_raw),
        ("namespace_from_raw", records.namespace_from_raw),
        ("pod_from_raw", records.pod_from_raw),
    ]


def check_reducers(raw: Any) -> None:
    for name, reduce in _reducers():
        try:
            reduce(raw)
        except MalformedObject:
            pass
        except Exception as e:
            save_crasher("k8s_objects", json.dumps(raw, default=str).encode())
            raise AssertionError(f"{name} raised {e!r} for {raw!r}") from e


def _mutate(obj: Any, path: list[int], value: Any) -> Any:
    """Replace the node reached by following ``path`` (indices into sorted keys) by ``value``."""
    if not path or not isinstance(obj, dict | list) or not obj:
        return value
    if isinstance(obj, dict):
        keys = sorted(obj)
        k = keys[path[0] % len(keys)]
        return {**obj, k: _mutate(obj[k], path[1:], value)}
    i = path[0] % len(obj)
    return [*obj[:i], _mutate(obj[i], path[1:], value), *obj[i + 1:]]


@FUZZ
@given(raw=st.dictionaries(st.sampled_from(["metadata", "spec", "endpoints", "ports", "status",
                                            "addressType", "kind", "x"]), JSON, max_size=5))
def test_fuzz_k8s_reducers_random_json(raw: dict[str, Any]) -> None:
    # The client hands reducers JSON objects only (list items and watch objects that are not
    # objects are dropped and counted there), so the top level is always a dict.
    check_reducers(raw)


@FUZZ
@given(which=st.integers(0, 3), path=st.lists(st.integers(0, 50), max_size=5), value=JSON)
def test_fuzz_k8s_reducers_mutated_objects(which: int, path: list[int], value: Any) -> None:
    raw = _mutate(_valid_objects()[which], [0, *path], value)
    assert isinstance(raw, dict)
    check_reducers(raw)


@pytest.mark.parametrize("path", corpus("k8s_objects"), ids=lambda p: p.name)
def test_k8s_objects_corpus_replay(path: Path) -> None:
    check_reducers(json.loads(path.read_bytes()))


# --- Corefile ----------------------------------------------------------------------------

WORDS = ["{", "}", "\n", " ", ".:53", "cluster.local", "kubernetes", "forward", ". 127.0.0.1",
         "cache", "30", "-1", "0", "99999999999", "health", "lameduck", "5s", "ready", ":8181",
         "errors", "log", "hosts", "fallthrough", "any", "whoami", "loop", "reload",
         "prometheus", "loadbalance", "import", "(snip)", "{$HOME}", "\"", "#", "10.0.0.0/33",
         "endpoint", "http://", "ttl", "max_fails", "policy", "bogus_key", "tls", "\\", "*",
         "dns://", "tls://.:53", "[::1]:53", "in-addr.arpa", "success", "denial", "prefetch",
         "serve_stale", "expire", "health_check", "max_concurrent", "except", "pods",
         "namespaces", "startup_timeout", "2s", "1h", "jitter", "\x00", "é"]


_CONF_DIR = Path(tempfile.mkdtemp(prefix="kdns-fuzz-conf-"))
atexit.register(shutil.rmtree, _CONF_DIR, True)


def check_corefile(text: str) -> None:
    start = time.perf_counter()
    try:
        # Imports resolve next to the Corefile: an empty directory, as a config volume would
        # be (from the repository root, ``import *`` parses every file of the checkout).
        build(parse_text(text, str(_CONF_DIR / "Corefile"), env={}), 53, StubApp())
    except CorefileError:
        pass
    except Exception as e:
        save_crasher("corefile", text.encode())
        raise AssertionError(f"{e!r} for Corefile {text!r}") from e
    took = time.perf_counter() - start
    _slowest["corefile"] = max(_slowest.get("corefile", 0.0), took)
    assert took < 2.0, f"Corefile took {took:.1f} s: {text!r}"


@FUZZ
@given(words=st.lists(st.sampled_from(WORDS), max_size=40))
def test_fuzz_corefile_tokens(words: list[str]) -> None:
    check_corefile(" ".join(words))


@FUZZ
@given(text=st.text(max_size=200))
def test_fuzz_corefile_text(text: str) -> None:
    check_corefile(text)


@FUZZ
@given(plugin=st.sampled_from(["kubernetes", "forward .", "cache", "health", "ready", "hosts",
                               "log", "errors", "loop", "reload", "prometheus", "loadbalance"]),
       body=st.lists(st.lists(st.sampled_from(WORDS[5:]), min_size=1, max_size=4), max_size=5))
def test_fuzz_corefile_plugin_blocks(plugin: str, body: list[list[str]]) -> None:
    """P7: random properties and values inside each plugin's block."""
    lines = "\n".join("        " + " ".join(w) for w in body)
    check_corefile(f".:53 {{\n    {plugin} {{\n{lines}\n    }}\n}}\n")


@pytest.mark.parametrize("path", corpus("corefile"), ids=lambda p: p.name)
def test_corefile_corpus_replay(path: Path) -> None:
    check_corefile(path.read_bytes().decode("utf-8", "replace"))


def test_zz_report_slowest() -> None:
    """Not a check: prints the slowest single input per target (for the results table)."""
    print({k: f"{v * 1000:.2f} ms" for k, v in _slowest.items()})
