"""Corefile.example serves the demo cluster a newcomer can dig right away (README quick start)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

from tests.kdnsproc import dig

ROOT = Path(__file__).resolve().parents[2]


def test_corefile_example_answers_demo_names() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "kdns", "-conf", "Corefile.example"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = dns.query.udp(dns.message.make_query("web.demo.svc.cluster.local", "A"),
                                  "127.0.0.1", port=1053, timeout=0.5)
                break
            except Exception:
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "Corefile.example never answered"
                time.sleep(0.2)
        assert r.rcode() == dns.rcode.NOERROR
        assert [rd.address for rd in r.answer[0]] == ["10.96.100.10"]
        out = dig(1053, "_postgres._tcp.db.demo.svc.cluster.local", "SRV", "+short")
        assert "0 50 5432 db-0.db.demo.svc.cluster.local." in out
        assert "10.0.0.53" in dig(1053, "router.home.arpa", "+short")
        assert "status: NXDOMAIN" in dig(1053, "nope.demo.svc.cluster.local")
    finally:
        proc.terminate()
        proc.wait(20)
