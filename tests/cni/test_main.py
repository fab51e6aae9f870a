from __future__ import annotations

import subprocess

from tests.cni.cnitest import console_script


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script("kdns-cni"), *args], capture_output=True, text=True,
                          timeout=30, check=False, env={"PATH": "/usr/bin:/bin"})


def test_help_explains_both_modes() -> None:
    res = run("--help")
    assert res.returncode == 0 and "CNI_COMMAND" in res.stderr and "kdns-cni run" in res.stderr
    assert run("bogus").returncode == 2


def test_run_help_and_usage_errors() -> None:
    res = run("run", "--help")
    assert res.returncode == 0 and "NETCONFPATH" in res.stdout
    res = run("run", "frobnicate", "net")
    assert res.returncode == 2 and "invalid choice" in res.stderr


def test_no_command_is_error_json_code_4() -> None:
    res = subprocess.run([console_script("kdns-cni")], input="{}", capture_output=True,
                         text=True, timeout=30, check=False, env={"PATH": "/usr/bin:/bin"})
    assert res.returncode == 1 and '"code": 4' in res.stdout
