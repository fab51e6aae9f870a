"""Sync cost benchmark (not a test): ``sudo python3 -m tests.proxy.bench_sync [--services N]``.

Renders N services (2 ports each, 3 endpoints each) and measures, inside a scratch network
namespace (``kpx<pid>-bench``, deleted at the end): render time, a first full sync, a full resync
over the existing table, a partial sync after one endpoint changes, and a no-op partial sync.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import time

from kdns.proxy.conntrack import Conntrack
from kdns.proxy.model import Endpoint, ServicePort
from kdns.proxy.nft import Nft
from kdns.proxy.render import RenderConfig, render
from kdns.proxy.syncer import Syncer
from tests.proxy.netns import sh


def services(n: int) -> list[ServicePort]:
    out = []
    for i in range(n):
        eps = tuple(Endpoint(f"10.244.{i % 250}.{10 + j}", 8080, f"node-{j}") for j in range(3))
        cip = f"10.96.{i // 250}.{i % 250 + 1}"
        for name, proto, port in (("http", "tcp", 80), ("dns", "udp", 53)):
            out.append(ServicePort("bench", f"svc{i}", name, proto, port, (cip,),
                                   node_port=30000 + i if name == "http" and i < 2000 else 0,
                                   endpoints=eps))
    return out


async def timed(label: str, syncer: Syncer) -> None:
    start = time.perf_counter()
    assert await syncer.sync(), "sync failed"
    print(f"{label:<34} {1000 * (time.perf_counter() - start):9.1f} ms")


async def main(n: int) -> None:
    ns = f"kpx{os.getpid()}-bench"
    sh("ip", "netns", "add", ns)
    try:
        ports = services(n)
        cfg = RenderConfig(node_name="node-0", table="kpx-bench",
                           cluster_cidrs=("10.244.0.0/16",), service_cidrs=("10.96.0.0/16",))
        start = time.perf_counter()
        rs = render(ports, cfg, "ip")
        print(f"{n} services, {len(ports)} ports: {rs.rule_count} rules, {len(rs.chains)} chains")
        print(f"{'render (one family)':<34} {1000 * (time.perf_counter() - start):9.1f} ms")
        prefix = ("ip", "netns", "exec", ns)
        syncer = Syncer(cfg, lambda: ports, nft=Nft(prefix=prefix),
                        conntrack=Conntrack(prefix=prefix), families=("ip",))
        await timed("first full sync", syncer)
        syncer.force_full()
        await timed("full resync over existing table", syncer)
        ports[0] = dataclasses.replace(ports[0], endpoints=ports[0].endpoints[:2])
        await timed("partial sync (one endpoint gone)", syncer)
        await timed("partial sync (nothing changed)", syncer)
    finally:
        sh("ip", "netns", "del", ns, check=False)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--services", type=int, default=1000)
    asyncio.run(main(p.parse_args().services))
