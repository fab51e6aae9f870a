"""What errors/log/health/ready/prometheus/reload cost per query, with dnsperf (not a test).

    python3 -m loadtest.plugin_overhead [--seconds 5] [--server-cpu 1] [--client-cpu 0]
    python3 -m loadtest.plugin_overhead --micro [--queries 20000]

Runs kdns with a whoami-only Corefile, then with each side plugin added, then all of them, and
for each prints the unthrottled qps and the server CPU microseconds per answered query. whoami
answers are not replayable, so every query takes the plugin chain (the worst case for a plugin's
per-query cost). Query log output goes to a pipe that is drained (like a container log driver).

``--micro`` measures the same chains in-process through the QueryProcessor, ending in ``hosts``
instead of whoami (no sockets, no dnsperf): CPU microseconds per query, process-wide (the log
writer thread included), best of three, so the plugins' own cost shows even on a busy machine
where the dnsperf numbers are noise.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from loadtest.bench import dnsperf
from loadtest.servers import cpu_seconds

CONFIGS = {
    "whoami": "",
    "+errors": "errors",
    "+prometheus": "prometheus 127.0.0.1:{mport}",
    "+health+ready+reload": "health 127.0.0.1:{hport}\n ready 127.0.0.1:{rport}\n reload",
    "+log": "log",
    "all": ("errors\n log\n prometheus 127.0.0.1:{mport}\n health 127.0.0.1:{hport}\n"
            " ready 127.0.0.1:{rport}\n reload"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(name: str, body: str, queries: Path, seconds: float, server_cpu: str,
        client_cpu: str) -> tuple[float, float, int]:
    port = free_port()
    ports = {"mport": free_port(), "hport": free_port(), "rport": free_port()}
    with tempfile.TemporaryDirectory() as tmp:
        corefile = Path(tmp) / "Corefile"
        corefile.write_text(f".:{port} {{\n {body.format(**ports)}\n whoami\n}}\n")
        proc = subprocess.Popen(["taskset", "-c", server_cpu, sys.executable, "-m", "kdns",
                                 "-conf", str(corefile), "-quiet"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = 0

        def drain() -> None:
            nonlocal lines
            assert proc.stdout is not None
            for _ in proc.stdout:
                lines += 1

        threading.Thread(target=drain, daemon=True).start()
        try:
            time.sleep(2)
            before = cpu_seconds(proc.pid)
            _, done, _, qps, _ = dnsperf(port, queries, seconds, None, client_cpu)
            cpu = cpu_seconds(proc.pid) - before
        finally:
            proc.terminate()
            proc.wait(20)
    return qps, cpu / max(done, 1) * 1e6, lines


def micro(n: int) -> None:
    import asyncio
    import logging
    import os

    import dns.message

    from kdns.chain import build
    from kdns.corefile import parse_text
    from kdns.plugins.log import writer

    class App:
        corefile_path = None
        shutting_down = False

        def request_reload(self) -> None: ...

        def not_ready(self) -> list[str]:
            return []

        def config_digest(self) -> str:
            return ""

    logging.getLogger("kdns").setLevel(logging.CRITICAL)  # side plugins' startup chatter
    devnull = open(os.devnull, "w")  # lives as long as the run

    def write(text: str) -> None:
        devnull.write(text)

    writer.WRITER._write = staticmethod(write)  # type: ignore[method-assign]
    wires = [dns.message.make_query(f"host{i}.example.org.", "A", use_edns=0).to_wire()
             for i in range(1000)]
    entries = "".join(f"  10.1.{i // 250}.{i % 250} host{i}.example.org\n" for i in range(1000))

    async def run_chain(body: str) -> float:
        from kdns.query import QueryProcessor

        ports = {"mport": 1, "hport": 2, "rport": 3}
        text = f".:53 {{\n {body.format(**ports)}\n hosts {{\n{entries} }}\n}}\n"
        (lst,) = build(parse_text(text), 53, App())
        p = QueryProcessor(lst)  # process() always runs the chain (no fast-path replay)
        plugins = lst.zones["."].plugins
        for plugin in plugins:
            await plugin.start()  # type: ignore[attr-defined]
        t = time.process_time()
        for i in range(n):
            await p.process(wires[i % len(wires)], ("127.0.0.1", 5353), "udp")
        writer.WRITER.flush()
        spent = time.process_time() - t
        for plugin in reversed(plugins):
            await plugin.stop()  # type: ignore[attr-defined]
        return spent / n * 1e6

    async def all_chains() -> None:
        print(f"{'config (+hosts)':24} {'cpu µs/q (best of 3)':>21}")
        for name, body in CONFIGS.items():
            best = min([await run_chain(body) for _ in range(3)])
            print(f"{name:24} {best:21.1f}", flush=True)

    asyncio.run(all_chains())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--server-cpu", default="1")
    ap.add_argument("--client-cpu", default="0")
    ap.add_argument("--micro", action="store_true", help="in-process per-query CPU only")
    ap.add_argument("--queries", type=int, default=20000)
    args = ap.parse_args(argv)
    if args.micro:
        micro(args.queries)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        queries = Path(tmp) / "queries.txt"
        queries.write_text("".join(f"host{i}.example.org A\n" for i in range(1000)))
        print(f"{'config':24} {'qps':>9} {'cpu µs/q':>9} {'log lines':>10}")
        for name, body in CONFIGS.items():
            qps, us, lines = run(name, body, queries, args.seconds, args.server_cpu,
                                 args.client_cpu)
            print(f"{name:24} {qps:9.0f} {us:9.1f} {lines:10d}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
