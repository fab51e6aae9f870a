"""deploy/ end to end, without a cluster: the ConfigMap's Corefile, unmodified, served by kdns
as the Deployment would run it, against a fake API server, checked the way the kubelet,
Prometheus and an auditor would check it.

Two network namespaces (prefix ``kdep``) joined by a veth pair:

* the pod's: kdns (uid 65532, read-only root and code, NET_BIND_SERVICE only through the
  interpreter's file capability, no_new_privs) plus the fake API server on its loopback, with
  the service-account token and CA mounted at the in-cluster path, read-only, as the kubelet
  mounts them, and an /etc/resolv.conf naming the upstream (``dnsPolicy: Default``);
* the node upstream's: a small authoritative responder for ``upstream.kdep.test.``.

Checked: cluster names resolve from the API objects, other names are forwarded upstream, the
probes the Deployment declares answer, the metrics the CoreDNS dashboard reads are exported
with the labels it queries, every API request kdns made is allowed by deploy/'s ClusterRole,
the resident memory stays inside the Deployment's limit, endpoint changes reach DNS, and
SIGTERM drains like a rolling update. Two failure modes operators meet, each in its own pair of
namespaces: a ClusterRole without endpointslices, and a resolv.conf that loops back.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import BASE, REPO, container, only, render, unimplemented_plugins
from kdep_sandbox import (
    CAP_NET_BIND_SERVICE,
    START_TIMEOUT,
    Sandbox,
    Started,
    assert_runs_confined,
    interpreter_with_file_cap,
    make_sandbox,
    proc_status,
    start_kdns,
    stop,
)
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.root

SA_DIR = "/run/secrets/kubernetes.io/serviceaccount"  # /var/run is a symlink to /run
TOKEN = "kdep-" + uuid.uuid4().hex
POD_ADDR, UPSTREAM_ADDR = "198.18.0.1", "198.18.0.2"  # inside our own namespaces only
UPSTREAM_ANSWER = "203.0.113.7"
WEB_IP = "10.96.12.34"

# metrics.md §3: what the CoreDNS dashboard and alerts query, as far as this traffic makes it
# appear (cache and forward series appear once a query went through them).
# Series -> the labels the coredns-mixin queries group or filter by.
DASHBOARD_SERIES: dict[str, set[str]] = {
    "coredns_build_info": {"version", "revision", "goversion"},
    "coredns_panics_total": set(),
    "coredns_plugin_enabled": {"server", "zone", "name"},
    "coredns_dns_requests_total": {"server", "zone", "type", "proto"},
    "coredns_dns_responses_total": {"server", "zone", "rcode"},
    "coredns_dns_request_duration_seconds_bucket": {"server", "zone", "le"},
    "coredns_dns_request_size_bytes_bucket": {"server", "zone", "proto", "le"},
    "coredns_dns_response_size_bytes_bucket": {"server", "zone", "proto", "le"},
    "coredns_cache_entries": {"server", "type"},
    "coredns_cache_misses_total": {"server"},
    "coredns_cache_hits_total": {"server", "type"},
    "process_resident_memory_bytes": set(),
    "process_cpu_seconds_total": set(),
    "process_open_fds": set(),
    # CoreDNS >= 1.11's forward series (the mixin's legacy coredns_forward_requests_total & co.
    # were removed in 1.11 and are not exported).
    "coredns_proxy_request_duration_seconds_bucket": {"proxy_name", "to", "rcode", "le"},
    "coredns_forward_healthcheck_broken_total": set(),
}

UPSTREAM = textwrap.dedent(
    """
    import socket, sys
    import dns.flags, dns.message, dns.rcode, dns.rdatatype, dns.rrset
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((sys.argv[1], 53))
    print("ready", flush=True)
    while True:
        data, peer = sock.recvfrom(65535)
        try:
            query = dns.message.from_wire(data)
        except Exception:
            continue
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        q = query.question[0]
        if q.name == dns.name.from_text("upstream.kdep.test.") and q.rdtype == dns.rdatatype.A:
            reply.answer.append(dns.rrset.from_text(q.name, 300, "IN", "A", sys.argv[2]))
        else:
            reply.set_rcode(dns.rcode.NXDOMAIN)
        sock.sendto(reply.to_wire(), peer)
    """
)


@dataclass(frozen=True)
class Cluster:
    box: Sandbox
    upstream_ns: str
    api_info: dict[str, Any]
    kdns: Started

    def run(self, *cmd: str, timeout: float = 10) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.box.netns, *cmd],
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def dig(self, qname: str, rdtype: str = "A", *opts: str) -> str:
        out = self.run("dig", "@127.0.0.1", "-p", "53", qname, rdtype, "+tries=1", "+time=2", *opts)
        return out.stdout

    def control(self, method: str, **kwargs: Any) -> Any:
        return control(self.box.netns, self.api_info, method, **kwargs)

    def http_get(self, url: str) -> tuple[int, str]:
        code = (
            "import sys, urllib.request, urllib.error\n"
            "try:\n"
            "    r = urllib.request.urlopen(sys.argv[1], timeout=3)\n"
            "    print(r.status); sys.stdout.write(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code); sys.stdout.write(e.read().decode())\n"
        )
        out = self.run(sys.executable, "-c", code, url)
        if out.returncode != 0:
            return 0, out.stderr
        status, _, body = out.stdout.partition("\n")
        return int(status), body


def control(netns: str, api_info: dict[str, Any], method: str, **kwargs: Any) -> Any:
    """Call a fake API server method through its control listener (inside the pod netns)."""
    code = (
        "import json, sys, urllib.request\n"
        "req = urllib.request.Request(sys.argv[1], data=sys.argv[2].encode(),\n"
        "                             headers={'Content-Type': 'application/json'})\n"
        "print(urllib.request.urlopen(req, timeout=10).read().decode())\n"
    )
    url = f"{api_info['control']}/call/{method}"
    cmd = ["ip", "netns", "exec", netns, sys.executable, "-c", code, url, json.dumps(kwargs)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["result"]


def stock_corefile() -> str:
    corefile: str = only(render(BASE), "ConfigMap")["data"]["Corefile"]
    return corefile


def cluster_objects() -> list[dict[str, Any]]:
    sys.path.insert(0, str(REPO))
    from tests.fakeapi import objects as o

    return [
        o.namespace("default"),
        o.namespace("kube-system"),
        o.service("default", "web", cluster_ip=WEB_IP, ports=[o.port("http", 80)]),
        o.endpointslice("default", "web-abc12", "web", [o.endpoint("10.244.1.5")]),
        o.service("default", "kubernetes", cluster_ip="10.96.0.1", ports=[o.port("https", 443)]),
        o.service("default", "db", cluster_ip="None", ports=[o.port("pg", 5432)]),
        o.endpointslice("default", "db-xyz34", "db", [o.endpoint("10.244.2.7")]),
    ]


def start_process(cmd: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[str]:
    with log.open("w") as out:
        return subprocess.Popen(
            cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=out, stdin=subprocess.DEVNULL, text=True
        )


def first_line(proc: subprocess.Popen[str], what: str, log: Path) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        pytest.fail(f"{what} exited with {proc.returncode}:\n{log.read_text()}")
    return line


def end(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def link_upstream(box: Sandbox, upstream_ns: str) -> None:
    tag = box.netns.removeprefix("kdep-")[:8]
    pod_if, up_if = f"kdep{tag}a", f"kdep{tag}b"
    sh = ["ip", "link", "add", pod_if, "netns", box.netns, "type", "veth", "peer", "name", up_if]
    subprocess.run([*sh, "netns", upstream_ns], check=True)
    for ns, ifname, addr in ((box.netns, pod_if, POD_ADDR), (upstream_ns, up_if, UPSTREAM_ADDR)):
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{addr}/30", "dev", ifname], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", ifname, "up"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)


def pod_mounts(box: Sandbox, ca_file: Path, nameserver: str) -> list[str]:
    """What the kubelet gives the pod: the service-account volume (read-only) and, with
    dnsPolicy Default, the node's resolv.conf (here: the upstream namespace's address)."""
    sa = box.workdir / "sa"
    sa.mkdir(mode=0o755)
    (sa / "token").write_text(TOKEN)
    (sa / "ca.crt").write_bytes(ca_file.read_bytes())
    (sa / "namespace").write_text("kube-system")
    resolv = box.workdir / "resolv.conf"
    resolv.write_text(f"nameserver {nameserver}\n")
    for f in [*sa.iterdir(), resolv]:
        f.chmod(0o644)
    assert not Path("/etc/resolv.conf").is_symlink(), "a symlinked resolv.conf is not handled"
    return [
        "mount -t tmpfs -o mode=0755 tmpfs /run",
        f"mkdir -p {SA_DIR}",
        f"cp {sa}/token {sa}/ca.crt {sa}/namespace {SA_DIR}/",
        "mount -o remount,ro /run",
        f"mount --bind {resolv} /etc/resolv.conf",
    ]


def stock_directives() -> list[str]:
    sys.path.insert(0, str(REPO))
    from kdns.corefile import parse_text

    return [d.name for block in parse_text(stock_corefile(), "Corefile") for d in block.directives]


@contextmanager
def cluster_up(
    faults: list[dict[str, Any]] | None = None, nameserver: str = UPSTREAM_ADDR
) -> Iterator[Cluster]:
    """The two namespaces, the upstream, the fake API server (with `faults` armed through
    its fail_next control before kdns starts), and kdns running the stock Corefile."""
    missing = unimplemented_plugins(stock_directives())
    if missing:
        pytest.skip(f"the stock Corefile needs plugins kdns does not have yet: {missing}")
    with make_sandbox() as box:
        upstream_ns = box.netns + "u"
        subprocess.run(["ip", "netns", "add", upstream_ns], check=True)
        procs: list[subprocess.Popen[str]] = []
        try:
            link_upstream(box, upstream_ns)
            up_log = box.workdir / "upstream.log"
            up = start_process(
                ["ip", "netns", "exec", upstream_ns, sys.executable, "-c", UPSTREAM,
                 UPSTREAM_ADDR, UPSTREAM_ANSWER],
                up_log,
            )  # fmt: skip
            procs.append(up)
            first_line(up, "upstream responder", up_log)

            objects = box.workdir / "objects.yaml"
            objects.write_text(yaml.safe_dump_all(cluster_objects()))
            api_log = box.workdir / "fakeapi.log"
            api = start_process(
                ["ip", "netns", "exec", box.netns, sys.executable, "-m", "tests.fakeapi",
                 "--host", "127.0.0.1", "--port", "6443", "--tls-dir", str(box.workdir / "tls"),
                 "--token", TOKEN, "--objects", str(objects)],
                api_log, cwd=REPO,
            )  # fmt: skip
            procs.append(api)
            info = json.loads(first_line(api, "fake API server", api_log))
            for fault in faults or []:
                control(box.netns, info, "fail_next", **fault)

            mounts = interpreter_with_file_cap(box, with_cap=True)
            mounts += pod_mounts(box, Path(info["ca"]), nameserver)
            privs = ["--bounding-set=-all,+net_bind_service", "--securebits=+no_setuid_fixup"]
            env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}
            kdns = start_kdns(box, stock_corefile(), privs, mounts, extra_env=env)
            try:
                yield Cluster(box, upstream_ns, info, kdns)
            finally:
                stop(kdns)
        finally:
            for proc in procs:
                end(proc)
            subprocess.run(["ip", "netns", "del", upstream_ns], check=False)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with cluster_up() as running:
        yield running


@pytest.fixture(scope="module")
def ready(cluster: Cluster) -> Cluster:
    return wait_ready(cluster)


def wait_ready(cluster: Cluster) -> Cluster:
    """Wait for /ready (the readinessProbe) to say 200, as the Service waits for it."""
    deadline = time.monotonic() + START_TIMEOUT
    last: tuple[int, str] = (0, "")
    while time.monotonic() < deadline:
        if cluster.kdns.proc.poll() is not None:
            pytest.fail(
                f"kdns exited with {cluster.kdns.proc.returncode}:\n{cluster.kdns.output()}"
            )
        last = cluster.http_get("http://127.0.0.1:8181/ready")
        if last[0] == 200:
            took = time.monotonic() - cluster.kdns.at
            print(f"kdns /ready said 200 {took:.2f}s after the exec (stock Corefile)")
            return cluster
        time.sleep(0.25)
    pytest.fail(f"/ready never said 200 (last: {last}):\n{cluster.kdns.output()}")


def answers(out: str, qname: str, rdtype: str) -> list[str]:
    pattern = rf"^{re.escape(qname)}\s+\d+\s+IN\s+{rdtype}\s+(\S+)$"
    return re.findall(pattern, out, re.M)


def test_runs_confined_with_only_net_bind_service(ready: Cluster) -> None:
    pid = ready.kdns.proc.pid
    assert_runs_confined(pid)
    status = proc_status(pid)
    for caps in ("CapPrm", "CapEff", "CapBnd"):
        assert int(status[caps], 16) == CAP_NET_BIND_SERVICE, f"{caps}={status[caps]}"


def test_cluster_names_resolve_from_the_api(ready: Cluster) -> None:
    out = ready.dig("web.default.svc.cluster.local.")
    assert answers(out, "web.default.svc.cluster.local.", "A") == [WEB_IP], out
    out = ready.dig("web.default.svc.cluster.local.", "A", "+tcp")
    assert answers(out, "web.default.svc.cluster.local.", "A") == [WEB_IP], out
    out = ready.dig("nope.default.svc.cluster.local.")
    assert "status: NXDOMAIN" in out, out


def test_other_names_are_forwarded_to_resolv_conf(ready: Cluster) -> None:
    out = ready.dig("upstream.kdep.test.")
    assert answers(out, "upstream.kdep.test.", "A") == [UPSTREAM_ANSWER], out
    out = ready.dig("upstream.kdep.test.")  # the second one is a cache hit
    assert answers(out, "upstream.kdep.test.", "A") == [UPSTREAM_ANSWER], out


def test_probes_answer_as_the_deployment_declares(ready: Cluster) -> None:
    c = container(only(render(BASE), "Deployment"))
    for probe in (c["livenessProbe"], c["readinessProbe"]):
        get = probe["httpGet"]
        status, body = ready.http_get(f"http://127.0.0.1:{get['port']}{get['path']}")
        assert status == 200, (get, body)


def test_dashboard_metrics_are_exported(ready: Cluster) -> None:
    ready.dig("upstream.kdep.test.")
    ready.dig("upstream.kdep.test.")
    ready.dig("web.default.svc.cluster.local.")
    status, body = ready.http_get("http://127.0.0.1:9153/metrics")
    assert status == 200, body
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    missing = [m for m in DASHBOARD_SERIES if m not in labels]
    assert not missing, f"metrics the CoreDNS dashboard reads are missing: {missing}"
    unlabelled = {m: want - labels[m] for m, want in DASHBOARD_SERIES.items() if want - labels[m]}
    assert not unlabelled, f"labels the dashboard queries by are missing: {unlabelled}"
    assert re.search(r'^coredns_dns_requests_total\{[^}]*server="dns://:53"', body, re.M), body


def test_endpoint_changes_reach_dns_and_the_programming_sli(ready: Cluster) -> None:
    """The watch keeps running under the pod's posture: a headless service's new endpoint is
    served within seconds, and the DNS-programming-latency histogram records the change."""
    sys.path.insert(0, str(REPO))
    from tests.fakeapi import objects as o

    qname = "db.default.svc.cluster.local."
    assert answers(ready.dig(qname), qname, "A") == ["10.244.2.7"]
    changed = o.endpointslice("default", "db-xyz34", "db", [o.endpoint("10.244.2.8")])
    trigger = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    changed["metadata"]["annotations"] = {
        "endpoints.kubernetes.io/last-change-trigger-time": trigger
    }
    ready.control("put", obj=changed)
    deadline = time.monotonic() + 10
    while answers(ready.dig(qname), qname, "A") != ["10.244.2.8"]:
        assert time.monotonic() < deadline, "the endpoint change never reached DNS"
        time.sleep(0.2)
    _, body = ready.http_get("http://127.0.0.1:9153/metrics")
    series = "coredns_kubernetes_dns_programming_duration_seconds_count"
    count = re.search(rf'^{series}\{{service_kind="headless_with_selector"\}} (\S+)$', body, re.M)
    assert count and float(count.group(1)) >= 1, body


def api_permission(method: str, path: str, query: dict[str, str]) -> tuple[str, str, str]:
    """(apiGroup, resource, verb) of one request, as the API server's authorizer sees it."""
    m = re.fullmatch(r"/api/v1/(?:namespaces/[^/]+/)?([a-z]+)(/[^/]+)?", path) or re.fullmatch(
        r"/apis/([^/]+)/[^/]+/(?:namespaces/[^/]+/)?([a-z]+)(/[^/]+)?", path
    )
    assert m and method == "GET", f"unexpected API request {method} {path}"
    group, resource, name = ("", *m.groups()) if path.startswith("/api/") else m.groups()
    if query.get("watch") in ("true", "1"):
        return group, resource, "watch"
    return group, resource, "get" if name else "list"


def test_every_api_request_is_allowed_by_the_clusterrole(ready: Cluster) -> None:
    role = only(render(BASE), "ClusterRole")
    granted = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    out = ready.run(
        sys.executable, "-c",
        "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())",
        ready.api_info["control"] + "/requests",
    )  # fmt: skip
    records = json.loads(out.stdout)
    assert records, "kdns made no API request at all"
    used = {api_permission(r["method"], r["path"], r["query"]) for r in records}
    assert used <= granted, f"kdns needs more than deploy/'s ClusterRole grants: {used - granted}"
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in records), "SA token not used"
    # What the stock Corefile needs: services and endpointslices (list + watch), namespaces.
    assert {("", "services", "watch"), ("discovery.k8s.io", "endpointslices", "watch")} <= used


def test_memory_fits_the_deployment_limit(ready: Cluster) -> None:
    limit = container(only(render(BASE), "Deployment"))["resources"]["limits"]["memory"]
    assert limit.endswith("Mi")
    rss_kib = int(proc_status(ready.kdns.proc.pid)["VmRSS"].split()[0])
    print(f"kdns RSS with the stock Corefile: {rss_kib / 1024:.1f} MiB (limit {limit})")
    assert rss_kib < int(limit[:-2]) * 1024


def test_missing_endpointslice_rbac_keeps_the_pod_unready_until_fixed() -> None:
    """The classic CoreDNS upgrade failure (a ClusterRole without endpointslices, answered 403):
    the pod must stay alive but unready, so a rollout stalls while the old pods serve; say why
    in its log; and recover without a restart once the RBAC is fixed."""
    path = "/apis/discovery.k8s.io/v1/endpointslices"
    with cluster_up(faults=[{"count": None, "status": 403, "path": path}]) as c:
        deadline = time.monotonic() + START_TIMEOUT
        while not re.search(r"endpointslices.*(403|[Ff]orbidden)", c.kdns.output()):
            assert c.kdns.proc.poll() is None, c.kdns.output()
            assert time.monotonic() < deadline, f"no clear log line:\n{c.kdns.output()}"
            time.sleep(0.25)
        # Like CoreDNS, kdns starts its servers after a bounded wait for the initial sync
        # (well inside the livenessProbe's initialDelaySeconds: 60), so it is not restarted.
        while c.http_get("http://127.0.0.1:8080/health")[0] != 200:
            assert c.kdns.proc.poll() is None, c.kdns.output()
            assert time.monotonic() < deadline, f"/health never said 200:\n{c.kdns.output()}"
            time.sleep(0.25)
        assert c.http_get("http://127.0.0.1:8181/ready")[0] != 200, "ready without endpoints"
        c.control("clear_faults")  # the operator applies deploy/'s ClusterRole
        wait_ready(c)
        assert c.kdns.proc.poll() is None
        out = c.dig("web.default.svc.cluster.local.")
        assert answers(out, "web.default.svc.cluster.local.", "A") == [WEB_IP], out


def test_resolv_conf_pointing_back_at_cluster_dns_is_a_loop_but_cluster_names_survive() -> None:
    """The node's resolv.conf names cluster DNS itself (the 127.0.0.53 trap). CoreDNS exits
    and crash-loops; kdns must detect the loop, say so, stop forwarding there, and keep
    serving cluster names (deploy/README.md, "What differs")."""
    with cluster_up(nameserver=POD_ADDR) as c:
        wait_ready(c)
        deadline = time.monotonic() + 35  # the probe retries for up to 30 s
        while "Loop (" not in c.kdns.output():
            assert c.kdns.proc.poll() is None, c.kdns.output()
            assert time.monotonic() < deadline, f"no loop detected:\n{c.kdns.output()}"
            time.sleep(0.25)
        assert re.search(
            r'^\[ERROR\] plugin/loop: Loop \(.*\) detected for zone "\."', c.kdns.output(), re.M
        )
        _, body = c.http_get("http://127.0.0.1:9153/metrics")
        assert re.search(r"^kdns_loop_detected\{[^}]*\} 1\.0$", body, re.M), body
        assert "status: SERVFAIL" in c.dig("upstream.kdep.test."), "external names must fail fast"
        out = c.dig("web.default.svc.cluster.local.")
        assert answers(out, "web.default.svc.cluster.local.", "A") == [WEB_IP], out
        assert c.kdns.proc.poll() is None


def test_sigterm_drains_like_a_rolling_update(ready: Cluster) -> None:
    """Last on purpose (it stops kdns): the kubelet's SIGTERM must take the pod out of the
    Service at once (/ready fails) while DNS keeps answering through `health { lameduck 5s }`,
    then exit 0 well inside terminationGracePeriodSeconds (default 30 s)."""
    pod = only(render(BASE), "Deployment")["spec"]["template"]["spec"]
    grace = pod.get("terminationGracePeriodSeconds", 30)
    proc = ready.kdns.proc
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    status, _ = ready.http_get("http://127.0.0.1:8181/ready")
    assert status != 200, "still ready after SIGTERM: the Service would keep sending traffic"
    out = ready.dig("web.default.svc.cluster.local.")
    assert answers(out, "web.default.svc.cluster.local.", "A") == [WEB_IP], "no lameduck"
    code = proc.wait(timeout=grace)
    took = time.monotonic() - start
    assert code == 0, ready.kdns.output()
    assert 4.5 <= took < grace, f"exited after {took:.1f}s; lameduck is 5s, grace {grace}s"
    # The whole log, start to exit: CoreDNS-style lines that existing log alerts grep for.
    log = ready.kdns.output().splitlines()
    banner = re.compile(r"^(\.:53|kdns-[\w.+-]+|linux/\w+, python[\d.]+)$")
    entry = re.compile(r"^\[(INFO|WARNING|ERROR|DEBUG)\] (plugin/[a-z0-9_]+: )?\S")
    odd = [line for line in log if not (banner.match(line) or entry.match(line))]
    assert not odd, f"log lines in no CoreDNS format: {odd}"
    assert any(
        line.startswith("[INFO] plugin/reload: Running configuration SHA512 = ") for line in log
    )
