"""CPU per query on each path of the stock Corefile chain, in-process (not a test).

    python3 -m loadtest.miss_path [--rounds 5]

Builds the stock Kubernetes chain (errors, kubernetes over the bench's synthetic cluster read as
manifests, cache 30, loadbalance, forward) with no sockets and times, over the cluster part of
the bench's query mix:

- ``miss``: the full slow path with the cache and the memo emptied before every round (what a
  query costs when its cache entry has expired: the bench's misses);
- ``chain hit``: the slow path answered by the cache (memo emptied, cache warm);
- ``fast``: the server's wire memo (``QueryProcessor.fast``).

CPU time (``time.process_time``), best of ``--rounds``: steadier than dnsperf on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import dns.message
import dns.rdatatype

from kdns.chain import build
from kdns.corefile.parser import parse_text
from kdns.metrics import ServerStats
from kdns.query import QueryProcessor
from loadtest.cluster import Cluster
from tests.chainbuild import StubApp


def corefile(manifests: Path) -> str:
    return f""".:53 {{
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        manifests {manifests}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    forward . 127.0.0.1:9
    cache 30
    loadbalance
}}
"""


def queries(cluster: Cluster, n: int) -> list[bytes]:
    """Wire queries of the bench mix that stay inside the cluster zone (no upstream)."""
    out: list[bytes] = []
    for i, line in enumerate(cluster.queries(n)):
        name, qtype = line.rsplit(" ", 1)
        if not name.lower().endswith("cluster.local"):
            continue
        q = dns.message.make_query(name + ".", dns.rdatatype.from_text(qtype), use_edns=0)
        q.id = i & 0xFFFF
        out.append(q.to_wire())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--queries", type=int, default=5000)
    args = ap.parse_args(argv)
    cluster = Cluster()
    with tempfile.TemporaryDirectory() as tmp:
        cluster.write_objects(Path(tmp))
        listeners = build(parse_text(corefile(Path(tmp) / "cluster.json"), "Corefile"), 53,
                          StubApp())
        loop = asyncio.new_event_loop()
        plugins = [p for chain in listeners[0].zones.values() for p in chain.plugins]
        for p in plugins:
            loop.run_until_complete(p.start())  # type: ignore[attr-defined]
        proc = QueryProcessor(listeners[0], stats=ServerStats())
        cache = next(p for p in plugins if type(p).__name__ == "Cache")
        wires = queries(cluster, args.queries)
        client = ("127.0.0.1", 5353)

        async def slow_all() -> None:
            for w in wires:
                await proc.process(w, client, "udp")

        def clear_cache() -> None:
            for store in (cache.pcache, cache.ncache):  # type: ignore[attr-defined]
                for shard in store.shards:
                    shard.clear()
                store.size = 0

        results: dict[str, float] = {}
        for label, before in (("miss", clear_cache), ("chain hit", lambda: None)):
            best = float("inf")
            for _ in range(args.rounds):
                before()
                proc.clear_memo()
                t = time.process_time()
                loop.run_until_complete(slow_all())
                best = min(best, time.process_time() - t)
            results[label] = best / len(wires) * 1e6
        best = float("inf")
        for _ in range(args.rounds):
            t = time.process_time()
            for w in wires:
                proc.fast(w, client, "udp")
            best = min(best, time.process_time() - t)
        results["fast"] = best / len(wires) * 1e6
        hits = sum(proc.fast(w, client, "udp") is not None for w in wires)
        for p in plugins:
            loop.run_until_complete(p.stop())  # type: ignore[attr-defined]
        loop.close()
    print(f"{len(wires)} cluster queries of the bench mix; fast-path hits {hits}/{len(wires)}")
    for label, us in results.items():
        print(f"{label:>10}: {us:7.1f} us CPU per query")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
