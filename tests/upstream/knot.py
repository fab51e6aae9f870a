"""Run Debian's Knot DNS (knotd) as a real upstream on 127.0.0.1, isolated in a temp dir.

Everything knotd needs (config, rundir, zone storage, journal/timer databases, control socket)
lives in the temp dir, so no systemd unit, /run/knot or /var/lib/knot is touched, and concurrent
test runs cannot collide (the port comes from ``free_port``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dns.exception
import dns.message
import dns.query

from tests.kdnsproc import free_port

TEST_ZONE_NAME = "example.test."
TEST_ZONE = """$ORIGIN example.test.
$TTL 300
@       SOA   ns.example.test. hostmaster.example.test. 1 3600 900 604800 60
@       NS    ns
ns      A     127.0.0.1
www     A     192.0.2.10
www     AAAA  2001:db8::10
short   30    A 192.0.2.11
alias   CNAME www
txt     TXT   "hello from knot"
*.wild  A     192.0.2.99
"""

CONFIG = """server:
    rundir: "{dir}"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "{dir}/db"
control:
    listen: "{dir}/knot.sock"
template:
  - id: default
    storage: "{dir}"
    file: "%s.zone"
    journal-content: none
    zonefile-sync: -1
zone:
{zones}
"""


class Knot:
    def __init__(self, proc: subprocess.Popen[str], port: int, workdir: Path) -> None:
        self.proc = proc
        self.port = port
        self.workdir = workdir

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"


def knotd_path() -> str:
    path = shutil.which("knotd") or ("/usr/sbin/knotd" if Path("/usr/sbin/knotd").exists()
                                     else None)
    if path is None:
        raise RuntimeError("knotd not found: install Debian's 'knot' package (.ci/install)")
    return path


@contextmanager
def run_knot(zones: dict[str, str] | None = None, timeout: float = 10.0) -> Iterator[Knot]:
    """Start knotd serving ``zones`` (name -> zone file text); stop it afterwards."""
    zones = zones or {TEST_ZONE_NAME: TEST_ZONE}
    for attempt in range(3):  # the free port may be taken meanwhile: try another one
        try:
            cm = _run_knot(zones, free_port(), timeout)
            knot = cm.__enter__()
        except PortTaken:
            if attempt == 2:
                raise
            continue
        try:
            yield knot
        except BaseException as e:
            if not cm.__exit__(type(e), e, e.__traceback__):
                raise
        else:
            cm.__exit__(None, None, None)
        return


class PortTaken(RuntimeError):
    """knotd could not bind its port."""


@contextmanager
def _run_knot(zones: dict[str, str], port: int, timeout: float) -> Iterator[Knot]:
    with tempfile.TemporaryDirectory(prefix="kdns-knot-") as tmp:
        wd = Path(tmp)
        (wd / "db").mkdir()
        for name, text in zones.items():
            (wd / f"{name.rstrip('.')}.zone").write_text(text)
        zone_lines = "\n".join(f"  - domain: {name}" for name in zones)
        conf = wd / "knot.conf"
        conf.write_text(CONFIG.format(dir=tmp, port=port, zones=zone_lines))
        proc = subprocess.Popen([knotd_path(), "-c", str(conf)], cwd=tmp,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            _wait_ready(proc, port, next(iter(zones)), timeout)
            yield Knot(proc, port, wd)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen[str], port: int, zone: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    q = dns.message.make_query(zone, "SOA")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            if "in use" in out.lower():
                raise PortTaken(out)
            raise RuntimeError(f"knotd exited with {proc.returncode}: {out}")
        try:
            r = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.2)
            if r.answer:
                return
        except (dns.exception.Timeout, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError("knotd did not start answering in time")
