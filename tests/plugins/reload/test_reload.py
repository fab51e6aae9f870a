"""reload in the real kdns: a changed Corefile is picked up, comment edits are not, a broken one
keeps the old config (parse failures retried, load failures counted once), SIGUSR1 reloads."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.rcode
import pytest

from kdns.corefile import parse_text
from kdns.corefile.digest import config_digest
from tests.kdnsproc import KdnsProcess, free_port, run_kdns
from tests.plugins.kdnsports import run_kdns_ports

# reload 2s 1s: a poll every 1.5-2.5 s.
BASE = """\
.:{port} {
    reload 2s 1s
    prometheus 127.0.0.1:%d
    whoami
}
"""
EXTRA = """\
extra.:{port} {
    errors
}
"""
POLL = 3.0  # longest poll period plus margin


@pytest.fixture(scope="module")
def kdns() -> Iterator[tuple[KdnsProcess, int]]:
    with run_kdns_ports(BASE.replace("%d", "{http0}"), http=1) as (k, (mport,)):
        k.wait_for_line("plugin/reload: Running configuration SHA512 = ")
        yield k, mport


def digest_of(k: KdnsProcess) -> str:
    return config_digest(parse_text(k.corefile_path.read_text(), str(k.corefile_path)))


def write(k: KdnsProcess, text: str) -> None:
    k.corefile_path.write_text(text.replace("{port}", str(k.port)))


def metric(mport: int, name: str) -> dict[str, float]:
    deadline = time.monotonic() + 10  # a reload restarts the HTTP listeners
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=3) as r:
                text = r.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line.startswith(name)}


def count(k: KdnsProcess, text: str) -> int:
    return sum(text in line for line in list(k.lines))


def wait_count(k: KdnsProcess, text: str, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while count(k, text) < n:
        assert time.monotonic() < deadline, f"{text!r} not seen {n} times:\n{k.output}"
        time.sleep(0.05)


def test_digest_is_sha512_of_parsed_blocks(kdns: tuple[KdnsProcess, int]) -> None:
    k, _ = kdns
    blocks = parse_text(k.corefile_path.read_text(), "x")
    data = [{"keys": [t.text for t in b.keys],
             "body": [[t.text for t in d.tokens] for d in b.directives]} for b in blocks]
    expected = hashlib.sha512(json.dumps(data).encode()).hexdigest()
    assert expected == digest_of(k)
    assert f"[INFO] plugin/reload: Running configuration SHA512 = {expected}" in k.lines


def test_comment_and_whitespace_edits_do_not_reload(kdns: tuple[KdnsProcess, int]) -> None:
    k, mport = kdns
    before = digest_of(k)
    write(k, "# a comment\n\n" + (BASE % mport).replace("    whoami", "\twhoami   # hi"))
    assert digest_of(k) == before
    time.sleep(POLL)
    assert count(k, "Reloading") == 0


def test_changed_corefile_is_reloaded(kdns: tuple[KdnsProcess, int]) -> None:
    k, mport = kdns
    assert k.query("x.extra.", "A").rcode() == dns.rcode.NOERROR  # whoami in "."
    write(k, BASE % mport + EXTRA)
    new = digest_of(k)
    k.wait_for_line("[INFO] Reloading complete", timeout=POLL + 5)
    k.wait_for_line(f"[INFO] plugin/reload: Running configuration SHA512 = {new}")
    assert k.query("x.extra.", "A").rcode() == dns.rcode.SERVFAIL  # the new block answers
    versions = metric(mport, "coredns_reload_version_info")
    assert versions == {f'coredns_reload_version_info{{hash="sha512",value="{new}"}}': 1.0}


def test_broken_syntax_keeps_old_config_and_retries(kdns: tuple[KdnsProcess, int]) -> None:
    k, mport = kdns
    reloads = count(k, "[INFO] Reloading")
    write(k, BASE % mport + EXTRA + "broken.:{port} {\n    whoami\n")
    k.wait_for_line("[WARNING] plugin/reload: Corefile parse failed: ", timeout=POLL + 2)
    time.sleep(POLL)
    assert count(k, "plugin/reload: Corefile parse failed: ") >= 2  # tried again next tick
    line = k.wait_for_line("Corefile parse failed")
    assert line == ("[WARNING] plugin/reload: Corefile parse failed: "
                    f"{k.corefile_path}:10 - Error during parsing: Unexpected EOF")
    assert count(k, "[INFO] Reloading") == reloads
    assert k.query("x.extra.", "A").rcode() == dns.rcode.SERVFAIL  # still the running config
    assert metric(mport, "coredns_reload_failed_total") == {"coredns_reload_failed_total": 0.0}


def test_failed_load_is_counted_once_and_not_retried(kdns: tuple[KdnsProcess, int]) -> None:
    k, mport = kdns
    write(k, BASE % mport + EXTRA.replace("    errors\n", "    errors {\n        bogus\n    }\n"))
    line = k.wait_for_line("[ERROR] plugin/reload: Corefile changed but reload failed: ",
                           timeout=POLL + 5)
    assert line.endswith("plugin/errors: " + str(k.corefile_path) + ":8 - Error during parsing: "
                         "unknown property 'bogus'")
    time.sleep(POLL)
    assert count(k, "Corefile changed but reload failed") == 1
    assert metric(mport, "coredns_reload_failed_total") == {"coredns_reload_failed_total": 1.0}
    assert k.query("x.extra.", "A").rcode() == dns.rcode.SERVFAIL
    # Fixed again: reloads.
    done = count(k, "[INFO] Reloading complete")
    write(k, BASE % mport + EXTRA.replace("extra.", "other."))
    wait_count(k, "[INFO] Reloading complete", done + 1, POLL + 5)
    assert f"[INFO] plugin/reload: Running configuration SHA512 = {digest_of(k)}" in k.lines
    assert k.query("x.extra.", "A").rcode() == dns.rcode.NOERROR
    assert k.query("x.other.", "A").rcode() == dns.rcode.SERVFAIL


def test_sigusr1_reloads_without_the_plugin() -> None:
    with run_kdns(".:{port} {\n    whoami\n}\n") as k:
        assert k.query("a.sig.", "A").rcode() == dns.rcode.NOERROR
        write(k, ".:{port} {\n    whoami\n}\nsig.:{port} {\n    errors\n}\n")
        k.signal(signal.SIGUSR1)
        k.wait_for_line("[INFO] Reloading complete")
        assert "[INFO] SIGUSR1: Reloading" in k.lines
        assert k.query("a.sig.", "A").rcode() == dns.rcode.SERVFAIL
        assert not [x for x in k.lines if "plugin/reload" in x]


def test_stdin_corefile_has_nothing_to_watch(tmp_path: Path) -> None:
    port = free_port()
    corefile = tmp_path / "from-stdin"
    corefile.write_text(f".:{port} {{\n    reload 2s 1s\n    whoami\n}}\n")
    with corefile.open() as stdin:
        proc = subprocess.Popen([sys.executable, "-m", "kdns", "-conf", "stdin"], stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.05)
        time.sleep(POLL)  # a tick passes without error
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert "[WARNING] plugin/reload: no Corefile file to watch (-conf stdin or the built-in " \
           "default); only SIGUSR1 reloads" in out
    assert "Traceback" not in out and "Reloading" not in out


def test_side_port_taken_fails_reload_and_old_endpoints_survive() -> None:
    """CoreDNS's README "Bugs": moving /health to a taken port killed the endpoint; kdns keeps
    the old listeners when the new ones cannot bind, and counts the failure."""
    template = (".:{port} {\n    reload 2s 1s\n    health 127.0.0.1:{http0}\n"
                "    prometheus 127.0.0.1:{http1}\n    whoami\n}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with run_kdns_ports(template, http=2) as (k, (hport, mport)):
            base = template.replace("{http0}", str(hport)).replace("{http1}", str(mport))
            k.wait_for_line("plugin/reload: Running configuration SHA512")
            write(k, base.replace(f"health 127.0.0.1:{hport}", f"health 127.0.0.1:{busy}"))
            line = k.wait_for_line("[ERROR] plugin/reload: Corefile changed but reload failed: ",
                                   timeout=POLL + 5)
            assert "address already in use" in line
            with urllib.request.urlopen(f"http://127.0.0.1:{hport}/health", timeout=3) as r:
                assert (r.status, r.read()) == (200, b"OK")
            assert metric(mport, "coredns_reload_failed_total") == {
                "coredns_reload_failed_total": 1.0}
            assert k.query("still.served.", "A").rcode() == dns.rcode.NOERROR
