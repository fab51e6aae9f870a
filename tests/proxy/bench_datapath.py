"""Datapath numbers (not a test): ``sudo python3 -m tests.proxy.bench_datapath``.

In the one-node topology of netns.py (namespaces ``kpx<pid>...``, deleted at the end): how fast a
ClusterIP without endpoints refuses, TCP connect+echo through a ClusterIP versus straight to the
pod, and how long a partial sync takes from request to applied.
"""

from __future__ import annotations

import asyncio
import statistics

from tests.proxy.conftest import Proxy
from tests.proxy.netns import Topology, pod_v4
from tests.proxy.test_datapath import ep, web


def seconds(answers: list[str]) -> list[float]:
    return [float(a.split()[2]) for a in answers if a.startswith("ERR")]


def timed_connects(topo: Topology, host: str, port: int, n: int) -> float:
    # probe prints only failures' durations; time successes with a tiny client instead
    code = (
        "import socket,time,statistics as s\n"
        "t=[]\n"
        f"for _ in range({n}):\n"
        "    a=time.perf_counter()\n"
        f"    c=socket.create_connection(('{host}',{port}),timeout=2)\n"
        "    c.sendall(b'x\\n'); c.makefile().readline(); c.close()\n"
        "    t.append(time.perf_counter()-a)\n"
        "print(s.median(t))\n"
    )
    from tests.proxy.netns import sh

    return float(sh(*topo.exec_prefix("c"), "python3", "-c", code).stdout)


async def main() -> None:
    topo = Topology()
    try:
        topo.create()
        for pod in ("a", "b"):
            topo.serve(pod)
        proxy = Proxy(topo)
        try:
            await proxy.set(web(endpoints=()))
            refused = seconds(topo.probe("c", "tcp", "10.96.0.10", "80", "--count=20"))
            print(f"no-endpoint ClusterIP refused: median {1000 * statistics.median(refused):.1f}"
                  f" ms, max {1000 * max(refused):.1f} ms (20 connects)")
            await proxy.set(web())
            via_cip = timed_connects(topo, "10.96.0.10", 80, 200)
            direct = timed_connects(topo, pod_v4("a"), 8080, 200)
            print(f"TCP connect+echo, median of 200: ClusterIP {1000 * via_cip:.2f} ms, "
                  f"pod directly {1000 * direct:.2f} ms")
            loop = asyncio.get_running_loop()
            times = []
            for i in range(10):
                proxy.ports = [web(endpoints=(ep("a"),) if i % 2 else (ep("a"), ep("b")))]
                start = loop.time()
                assert await proxy.syncer.sync()
                times.append(loop.time() - start)
            print(f"partial sync (endpoint added/removed, both families): median "
                  f"{1000 * statistics.median(times):.1f} ms over 10")
        finally:
            await proxy.syncer.cleanup()
    finally:
        topo.destroy()


if __name__ == "__main__":
    asyncio.run(main())
