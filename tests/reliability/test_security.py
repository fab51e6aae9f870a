"""S2-S5, S7, S8: amplification limits, RBAC audit, TLS verification and token rotation,
secrets and control bytes in logs, dependency versions, CSPRNG (reliability.md section 9.3 F).
S1 (client ACL) and S6/S9 are not covered here: kdns has no acl plugin yet, manifests are
checked by tests/deploy, and the TLD guard does not exist."""

from __future__ import annotations

import re
import socket
import time
from importlib.metadata import version
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode

from tests.fakeapi import objects as k8s
from tests.fakeapi.thread import FakeApiServer
from tests.fakeapi.tls import make_tls_bundle
from tests.kdnsproc import free_port, run_kdns
from tests.reliability.helpers import http_status, wait_status

ROOT = Path(__file__).resolve().parents[2]
ALLOWED = {("list", "", "services"), ("watch", "", "services"),
           ("list", "", "namespaces"), ("watch", "", "namespaces"),
           ("list", "discovery.k8s.io", "endpointslices"),
           ("watch", "discovery.k8s.io", "endpointslices")}
PODS = {("list", "", "pods"), ("watch", "", "pods")}


# --- S2 ----------------------------------------------------------------------------------

BIG = "\n".join(f"        10.1.{i // 250}.{i % 250 + 1} big.test" for i in range(300))
MANIFEST = ROOT / "plugins" / "kubernetes" / "examples" / "demo-cluster.yaml"
S2_COREFILE = f"""\
.:{{port}} {{
    any
    hosts {{
{BIG}
        10.0.0.1 small.test
        fallthrough
    }}
    kubernetes cluster.local in-addr.arpa {{
        manifests {MANIFEST}
    }}
}}
"""
S2_NAMES = ["big.test.", "small.test.", "web.demo.svc.cluster.local.",
            "db.demo.svc.cluster.local.", "_http._tcp.db.demo.svc.cluster.local.",
            "cluster.local.", "nope.cluster.local.",
            "20.0.96.10.in-addr.arpa."]
S2_TYPES = ["A", "AAAA", "ANY", "TXT", "SRV", "PTR", "SOA", "NS", "CNAME", "MX", "HINFO"]


def test_s2_amplification_limits() -> None:
    """Every qtype over a set of names via UDP: no reply > 512 B without EDNS or > 1232 B with
    EDNS (even when the client offers 4096); too-big answers are TC=1 and complete over TCP;
    ANY is answered minimally (<= 512 B)."""
    sizes: dict[str, int] = {}
    tc = 0
    with run_kdns(S2_COREFILE) as k:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            for name in S2_NAMES:
                for rdtype in S2_TYPES:
                    for payload in (None, 512, 1232, 4096):
                        kw = {} if payload is None else {"use_edns": 0, "payload": payload}
                        q = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
                        s.sendto(q.to_wire(), ("127.0.0.1", k.port))
                        data = s.recv(65535)
                        limit = 512 if payload is None else min(max(payload, 512), 1232)
                        key = f"{name} {rdtype} {payload}"
                        sizes[key] = len(data)
                        assert len(data) <= limit, key
                        r = dns.message.from_wire(data)
                        if rdtype == "ANY":
                            assert len(data) <= 512, key
                        if r.flags & dns.flags.TC:
                            tc += 1
                            full = k.query(name, rdtype, tcp=True, **kw)
                            assert not full.flags & dns.flags.TC and full.answer, key
    print(f"S2 {len(sizes)} UDP replies, largest {max(sizes.values())} B, {tc} truncated "
          "(all complete over TCP)")
    assert tc > 0  # big.test really exercised truncation


# --- S3 ----------------------------------------------------------------------------------

def test_s3_rbac_every_api_request_is_list_or_watch() -> None:
    """kdns with pods verified, through a sync, a relist and watch restarts: every request is a
    GET list/watch on services, endpointslices, namespaces or pods; no get by name, no writes,
    no secrets/configmaps. (tests/reliability/k8sharness.py checks the same after every K
    test.)"""
    with FakeApiServer(bookmark_interval=0.5) as api:
        api.put_many([k8s.namespace("ns"), k8s.service("ns", "a", cluster_ip="10.0.0.1"),
                      k8s.pod("ns", "p", "10.2.0.1")])
        conf = (".:{port} {\n    kubernetes cluster.local {\n        endpoint " + api.url
                + "\n        pods verified\n    }\n}\n")
        with run_kdns(conf) as k:
            deadline = time.monotonic() + 10
            while k.query("a.ns.svc.cluster.local.").rcode() != dns.rcode.NOERROR:
                assert time.monotonic() < deadline
                time.sleep(0.1)
            api.expire_watches()
            time.sleep(1)
            api.drop_watches()
            time.sleep(1)
        records = api.requests()
    summary = {r.rbac for r in records}
    methods = {r.method for r in records}
    print(f"S3 {len(records)} API requests: {sorted(s for s in summary if s)}")
    assert methods == {"GET"}
    assert None not in summary
    assert summary <= ALLOWED | PODS
    assert ("list", "", "pods") in summary


# --- S4 ----------------------------------------------------------------------------------

TLS_COREFILE = """\
.:{port} {
    ready 127.0.0.1:%d
    kubernetes cluster.local {
        endpoint %s
        tls %s %s %s
        startup_timeout 0s
    }
}
"""


def test_s4_tls_verification(tmp_path: Path) -> None:
    """An API server certificate from another CA: 0 successful API calls, a TLS error logged,
    /ready 503. The right CA: synced."""
    good = make_tls_bundle(tmp_path / "good")
    other = make_tls_bundle(tmp_path / "other")
    with FakeApiServer(tls=good, bookmark_interval=0.5) as api:
        api.put_many([k8s.namespace("ns"), k8s.service("ns", "a", cluster_ip="10.0.0.1")])
        for bundle, want in ((other, 503), (good, 200)):
            rport = free_port()
            conf = TLS_COREFILE % (rport, api.url, bundle.client_cert, bundle.client_key,
                                   bundle.ca_cert)
            api.clear_requests()
            with run_kdns(conf) as k:
                wait_status(f"http://127.0.0.1:{rport}/ready", 503 if want == 503 else 200, 15)
                if want == 503:
                    time.sleep(2)
                    assert http_status(f"http://127.0.0.1:{rport}/ready") == 503
                    assert api.requests() == []
                    assert re.search(r"(?i)certificate|ssl|tls", k.output), k.output
                    assert k.query("a.ns.svc.cluster.local.").rcode() == dns.rcode.SERVFAIL
                else:
                    assert k.query("a.ns.svc.cluster.local.").rcode() == dns.rcode.NOERROR
    print("S4 wrong CA: no API request reached the server, /ready 503; right CA: synced")


def test_s4_no_code_path_disables_verification() -> None:
    pattern = re.compile(r"CERT_NONE|check_hostname\s*=\s*False|verify_ssl\s*=\s*False|"
                         r"ssl\s*=\s*False|verify\s*=\s*False|_create_unverified_context")
    hits = [f"{f.relative_to(ROOT)}:{n}: {line.strip()}"
            for base in ("kdns", "plugins") for f in sorted((ROOT / base).rglob("*.py"))
            for n, line in enumerate(f.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


def test_s4_token_rotation_and_no_token_in_logs(tmp_path: Path) -> None:
    """A kubeconfig tokenFile rotated while running: the API keeps being used with the new
    token (a service created after the old token is revoked is served <= 10 s later); neither
    token, nor 'Authorization', nor PEM markers appear in the output (log and errors on)."""
    tls_bundle = make_tls_bundle(tmp_path / "tls")
    old, new = "old-" + "s3cr3t" * 4, "new-" + "t0k3n" * 4
    token_file = tmp_path / "token"
    token_file.write_text(old)
    with FakeApiServer(tls=tls_bundle, tokens={old}, bookmark_interval=0.5) as api:
        api.put_many([k8s.namespace("ns"), k8s.service("ns", "a", cluster_ip="10.0.0.1")])
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {{server: "{api.url}", certificate-authority: "{tls_bundle.ca_cert}"}}
users:
- name: u
  user: {{tokenFile: "{token_file}"}}
contexts:
- name: x
  context: {{cluster: c, user: u}}
current-context: x
""")
        conf = (".:{port} {\n    log\n    errors\n    kubernetes cluster.local {\n"
                f"        kubeconfig {kubeconfig}\n    }}\n}}\n")
        with run_kdns(conf) as k:
            deadline = time.monotonic() + 10
            while k.query("a.ns.svc.cluster.local.").rcode() != dns.rcode.NOERROR:
                assert time.monotonic() < deadline, k.output
                time.sleep(0.1)
            token_file.write_text(new)
            api.set_tokens({new})
            api.drop_watches()
            t0 = time.monotonic()
            api.put(k8s.service("ns", "b", cluster_ip="10.0.0.2"))
            while k.query("b.ns.svc.cluster.local.").rcode() != dns.rcode.NOERROR:
                assert time.monotonic() - t0 < 10, k.output
                time.sleep(0.1)
            took = time.monotonic() - t0
            output = k.output
        auths = {r.authorization for r in api.requests()}
    print(f"S4 token rotated: new service served after {took:.2f}s; tokens used "
          f"{len(auths)}")
    assert f"Bearer {new}" in auths
    for secret in (old, new, "Authorization", "BEGIN CERTIFICATE", "PRIVATE KEY"):
        assert secret not in output


# --- S5 ----------------------------------------------------------------------------------

def test_s5_control_bytes_never_reach_the_log() -> None:
    """qnames with newline, CR, ESC, NUL and non-UTF-8 bytes through log and errors: every
    output line is printable (escaped), one line per query; metrics have no qname/IP labels."""
    mport = free_port()
    conf = (".:{port} {\n    log\n    errors\n    prometheus 127.0.0.1:" + str(mport)
            + "\n    whoami\n}\n")
    evil = [b"a\nb", b"x\r[ERROR] forged", b"\x1b[31mred", b"nul\x00byte", b"\xff\xfe\xc3("]
    with run_kdns(conf) as k:
        wait_status(f"http://127.0.0.1:{mport}/metrics", 200)
        before = len(k.lines)
        for label in evil:
            wire = (b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + bytes([len(label)])
                    + label + b"\x04test\x00\x00\x01\x00\x01")
            assert k.send_raw_udp(wire) is not None
        time.sleep(1.0)
        lines = k.lines[before:]
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics") as r:
            metrics = r.read().decode()
    print(f"S5 {len(lines)} log lines for {len(evil)} hostile qnames: {lines}")
    assert len(lines) == len(evil)
    assert all(line.isprintable() for line in lines)
    assert "forged" not in "".join(line.split("[INFO]", 1)[0] for line in lines)
    for line in metrics.splitlines():
        assert "qname" not in line and "127.0.0.1" not in line.split("}")[0]


# --- S7 ----------------------------------------------------------------------------------

def test_s7_dependency_minimum_versions() -> None:
    """dnspython >= 2.6.1 (CVE-2023-29483, TuDoor). pip-audit needs the advisory database from
    the network, which CI does not have: run it by hand (docs/reliability-results.md)."""
    parts = tuple(int(p) for p in version("dnspython").split(".")[:3])
    assert parts >= (2, 6, 1)


# --- S8 ----------------------------------------------------------------------------------

RANDOMNESS_CRITICAL = ["plugins/forward/wire.py", "plugins/forward/transport.py",
                       "plugins/forward/handler.py", "plugins/loop/handler.py"]


def test_s8_csprng_for_ids_ports_and_probes() -> None:
    """Query IDs, source ports and loop probe names never come from ``random``; the forwarder
    and loop use ``secrets`` (forward's upstream *order* policy may use random: not a secret)."""
    for rel in RANDOMNESS_CRITICAL:
        text = (ROOT / rel).read_text()
        assert not re.search(r"^\s*(import random|from random import)", text, re.M), rel
        assert not re.search(r"\brandom\.(randint|randrange|random|getrandbits|choice)\(",
                             text), rel
    assert "secrets." in (ROOT / "plugins/forward/wire.py").read_text()
    assert "secrets.randbits(63)" in (ROOT / "plugins/loop/handler.py").read_text()
    # Source ports: a fresh socket bound by the kernel (port 0), never chosen in Python.
    transport = (ROOT / "plugins/forward/transport.py").read_text()
    assert not re.search(r"bind\(\([^)]*,\s*[1-9]", transport)
