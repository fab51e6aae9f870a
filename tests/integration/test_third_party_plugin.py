"""A plugin from another distribution, registered through the kdns.plugins entry-point group."""

from __future__ import annotations

import os
from pathlib import Path

import dns.rcode

from tests.kdnsproc import run_kdns

PLUGIN = '''
import dns.rrset
from kdns.plugin import Plugin

AFTER = "hosts"  # runs after hosts, before kubernetes ... whoami


class Greeter(Plugin):
    name = "greeter"

    def __init__(self, next, greeting):
        super().__init__(next)
        self.greeting = greeting

    async def serve(self, req):
        if req.qtype != 16:  # TXT
            return await self.next.serve(req)
        r = req.reply(aa=True, by=self.name)
        r.answer.append(dns.rrset.from_text(req.name, 0, "IN", "TXT", '"%s"' % self.greeting))
        return r


def setup(c):
    args = c.d.args(min=1, max=1)
    return lambda next: Greeter(next, args[0])
'''


def make_distribution(site: Path) -> None:
    (site / "kdns_greeter.py").write_text(PLUGIN)
    info = site / "kdns_greeter-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kdns-greeter\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[kdns.plugins]\ngreeter = kdns_greeter\n")


def test_entry_point_plugin_runs_in_its_slot(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    make_distribution(site)
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    # Corefile order is ignored: greeter still runs before whoami.
    corefile = ".:{port} {\n  whoami\n  greeter hello\n}\n"
    with run_kdns(corefile, env=env) as k:
        r = k.query("a.example", "TXT")
        assert r.rcode() == dns.rcode.NOERROR
        assert r.answer[0][0].strings == (b"hello",)
        r = k.query("a.example", "A")
        assert r.answer == [] and r.additional  # passed on to whoami


def test_unknown_plugin_without_distribution_is_an_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "Corefile").write_text(". {\n  greeter hello\n}\n")
    out = subprocess.run([sys.executable, "-m", "kdns", "-conf", "Corefile"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "Corefile:2 - Error during parsing: Unknown directive 'greeter'" in out.stderr
