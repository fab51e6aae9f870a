"""Start kdns and its peers on 127.0.0.1, pinned to one CPU, and read their CPU and RSS."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.cluster import EXTERNAL_ZONE, ZONE, Cluster

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_pids(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def rss_mib(pid: int) -> float:
    total = 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def wait_udp(port: int, name: str = "kubernetes.default.svc.cluster.local",
             timeout: float = 60) -> None:
    import dns.message
    import dns.query

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                              timeout=0.5)
            if r.rcode() == 0 and r.answer:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} never answered {name}")


@dataclass
class Server:
    name: str
    workdir: Path
    cpu: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def command(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        pass

    def probe_name(self) -> str:
        return f"kubernetes.default.svc.{ZONE}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        log = open(self.workdir / "server.log", "wb")  # lives as long as the process
        self.proc = subprocess.Popen(["taskset", "-c", self.cpu, *self.command()],
                                     stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        wait_udp(self.port, self.probe_name())

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        for p in [self.proc, *self.extra]:
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


class Kdns(Server):
    """kdns with the stock Kubernetes Corefile against the fake API server and a knot upstream."""

    def __init__(self, name: str, workdir: Path, cpu: str, cluster: Cluster,
                 workers: int = 1) -> None:
        super().__init__(name, workdir, cpu)
        self.cluster = cluster
        self.workers = workers

    def prepare(self) -> None:
        from tests.fakeapi.control import FakeApiProcess

        objects = self.workdir / "objects"
        self.cluster.write_objects(objects)
        self.api = FakeApiProcess.start(objects_dir=objects)
        self.upstream = Knot("upstream", self.workdir / "upstream", "0", self.cluster,
                             external_only=True)
        self.upstream.start()
        self.extra.append(self.api.proc)  # type: ignore[arg-type]
        self.extra.append(self.upstream.proc)  # type: ignore[arg-type]
        (self.workdir / "Corefile").write_text(f""".:{self.port} {{
    errors
    health :{free_port()} {{
        lameduck 5s
    }}
    ready :{free_port()}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        endpoint {self.api.url}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    prometheus :{free_port()}
    forward . 127.0.0.1:{self.upstream.port}
    cache 30
    loop
    reload
    loadbalance
}}
""")

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "kdns", "-conf", "Corefile", "-quiet"]
        if self.workers > 1:
            args += ["-workers", str(self.workers)]
        return args

    def stop(self) -> None:
        super().stop()


class KdnsHosts(Server):
    """kdns answering `hosts` entries (the server-core benchmark: no cluster, no upstream)."""

    def __init__(self, name: str, workdir: Path, cpu: str, cluster: Cluster,
                 workers: int = 1) -> None:
        super().__init__(name, workdir, cpu)
        self.cluster = cluster
        self.workers = workers

    def prepare(self) -> None:
        lines = [f"{ip} {n}.{ns}.svc.{ZONE}" for ns, n, ip in self.cluster.svc]
        lines.append(f"10.96.0.1 kubernetes.default.svc.{ZONE}")
        (self.workdir / "hosts").write_text("\n".join(lines) + "\n")
        (self.workdir / "Corefile").write_text(
            f".:{self.port} {{\n    errors\n    prometheus :{free_port()}\n"
            f"    hosts {self.workdir}/hosts\n}}\n")

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "kdns", "-conf", "Corefile", "-quiet"]
        if self.workers > 1:
            args += ["-workers", str(self.workers)]
        return args


class Bind(Server):
    def __init__(self, name: str, workdir: Path, cpu: str, cluster: Cluster) -> None:
        super().__init__(name, workdir, cpu)
        self.cluster = cluster

    def prepare(self) -> None:
        (self.workdir / "cluster.zone").write_text(self.cluster.zone_text())
        (self.workdir / "external.zone").write_text(self.cluster.external_zone_text())
        (self.workdir / "named.conf").write_text(f"""options {{
    directory "{self.workdir}";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    pid-file none;
    minimal-responses yes;
}};
zone "{ZONE}" {{ type primary; file "cluster.zone"; }};
zone "{EXTERNAL_ZONE}" {{ type primary; file "external.zone"; }};
""")

    def command(self) -> list[str]:
        return ["named", "-g", "-n", "1", "-c", str(self.workdir / "named.conf")]


class Knot(Server):
    def __init__(self, name: str, workdir: Path, cpu: str, cluster: Cluster,
                 external_only: bool = False) -> None:
        super().__init__(name, workdir, cpu)
        self.cluster = cluster
        self.external_only = external_only

    def probe_name(self) -> str:
        return f"host0.{EXTERNAL_ZONE}" if self.external_only else super().probe_name()

    def prepare(self) -> None:
        zones = [(EXTERNAL_ZONE, self.cluster.external_zone_text())]
        if not self.external_only:
            zones.append((ZONE, self.cluster.zone_text()))
        for z, text in zones:
            (self.workdir / f"{z}.zone").write_text(text)
        zone_conf = "\n".join(f"  - domain: {z}\n    file: {self.workdir}/{z}.zone"
                              for z, _ in zones)
        (self.workdir / "knot.conf").write_text(f"""server:
  rundir: {self.workdir}
  listen: 127.0.0.1@{self.port}
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
database:
  storage: {self.workdir}
template:
  - id: default
    storage: {self.workdir}
    semantic-checks: off
zone:
{zone_conf}
""")

    def command(self) -> list[str]:
        return ["knotd", "-c", str(self.workdir / "knot.conf")]


class Dnsmasq(Server):
    def __init__(self, name: str, workdir: Path, cpu: str, cluster: Cluster) -> None:
        super().__init__(name, workdir, cpu)
        self.cluster = cluster

    def command(self) -> list[str]:
        return ["dnsmasq", "-k", "-C", "/dev/null", "--no-resolv", "--no-hosts",
                "--bind-interfaces", "--listen-address=127.0.0.1", f"--port={self.port}",
                "--cache-size=10000", "--user=root", "--pid-file=",
                *self.cluster.dnsmasq_args()]


class Twisted(Server):
    def __init__(self, name: str, workdir: Path, cpu: str, cluster: Cluster) -> None:
        super().__init__(name, workdir, cpu)
        self.cluster = cluster

    def prepare(self) -> None:
        (self.workdir / "cluster.zone").write_text(self.cluster.zone_text())
        (self.workdir / "external.zone").write_text(self.cluster.external_zone_text())

    def command(self) -> list[str]:
        twistd = shutil.which("twistd") or "twistd"
        return [twistd, "-n", "--pidfile=", "dns", "--interface=127.0.0.1",
                f"--port={self.port}", "--bindzone=cluster.zone", "--bindzone=external.zone"]
