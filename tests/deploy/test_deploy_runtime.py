"""The real kdns process under the deploy/ security posture, without a container engine.

Each test makes a network namespace (prefix ``kdep``) and, inside a private mount namespace,
the view a pod with ``readOnlyRootFilesystem`` gets: the root filesystem, the code and the
Python installation are read-only. kdns is then exec'd as uid/gid 65532 with no supplementary
groups and no_new_privs (``allowPrivilegeEscalation: false``), and must answer on :53.

* test_serves_on_53_as_65532_without_capabilities: no capabilities at all; the namespace
  lowers ``net.ipv4.ip_unprivileged_port_start`` to 53, as a pod sysctl could.
* test_image_capability_model: the default port floor (1024) and a bounding set of just
  NET_BIND_SERVICE, as ``capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}`` gives; the
  interpreter carries ``cap_net_bind_service=+ep`` as deploy/Dockerfile sets it. Without the
  file capability the same start must fail cleanly (the control that shows the test can fail).
* test_wheel_install_serves_from_a_read_only_venv: kdns installed from its wheel into a venv,
  as the image does, with the source tree hidden, so the packaged artifact is what runs.
* test_image_without_net_bind_service_fails_to_start: drop ALL without the add: exec is refused.
* test_configmap_volume_update_is_reloaded: a ConfigMap edit, delivered as the kubelet's
  ..data symlink swap in a read-only volume, is reloaded.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploy_support import REPO
from kdep_sandbox import (
    CAP_NET_BIND_SERVICE,
    START_TIMEOUT,
    Sandbox,
    assert_runs_confined,
    dig,
    interpreter_with_file_cap,
    make_sandbox,
    proc_status,
    start_kdns,
    stop,
    wait_until_answering,
)

pytestmark = pytest.mark.root

WHOAMI_COREFILE = ".:53 {\n    whoami\n}\n"
# What runc does for `capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}` as a non-root
# user: bounding set NET_BIND_SERVICE only; no_setuid_fixup keeps the permitted set across
# the uid switch (runc's keepcaps), and execve recomputes it from the file capability.
IMAGE_PRIVS = ["--bounding-set=-all,+net_bind_service", "--securebits=+no_setuid_fixup"]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with make_sandbox() as box:
        yield box


def assert_whoami_answers(box: Sandbox, qname: str) -> None:
    for tcp, transport in ((False, "udp"), (True, "tcp")):
        out = dig(box, qname, tcp=tcp).stdout
        assert "status: NOERROR" in out, out
        assert re.search(rf"^{re.escape(qname)}\s+0\s+IN\s+A\s+127\.0\.0\.1$", out, re.M), out
        srv = rf"^_{transport}\.{re.escape(qname)}\s+0\s+IN\s+SRV\s+0 0 \d+ \.$"
        assert re.search(srv, out, re.M), out


def test_serves_on_53_as_65532_without_capabilities(sandbox: Sandbox) -> None:
    subprocess.run(
        ["ip", "netns", "exec", sandbox.netns,
         "sysctl", "-q", "-w", "net.ipv4.ip_unprivileged_port_start=53"],
        check=True,
    )  # fmt: skip
    started = start_kdns(sandbox, WHOAMI_COREFILE, ["--bounding-set=-all"])
    try:
        wait_until_answering(sandbox, started)
        assert_runs_confined(started.proc.pid)
        status = proc_status(started.proc.pid)
        for caps in ("CapPrm", "CapEff", "CapBnd"):
            assert int(status[caps], 16) == 0, f"{caps}={status[caps]}"
        assert_whoami_answers(sandbox, "www.example.org.")
    finally:
        stop(started)


@pytest.mark.parametrize("with_file_cap", [True, False], ids=["setcap", "no-setcap"])
def test_image_capability_model(sandbox: Sandbox, with_file_cap: bool) -> None:
    sysctl = ["sysctl", "-n", "net.ipv4.ip_unprivileged_port_start"]
    floor = subprocess.run(
        ["ip", "netns", "exec", sandbox.netns, *sysctl], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert floor == "1024", "a fresh namespace keeps the default privileged-port floor"
    mounts = interpreter_with_file_cap(sandbox, with_file_cap)
    started = start_kdns(sandbox, WHOAMI_COREFILE, IMAGE_PRIVS, mounts)
    try:
        if not with_file_cap:
            code = started.proc.wait(timeout=START_TIMEOUT)
            output = started.output()
            assert code != 0, output
            assert "Traceback" not in output, f"kdns must fail with a clear error:\n{output}"
            assert "ermission denied" in output or "EACCES" in output, output
            return
        wait_until_answering(sandbox, started)
        assert_runs_confined(started.proc.pid)
        status = proc_status(started.proc.pid)
        for caps in ("CapPrm", "CapEff", "CapBnd"):
            assert int(status[caps], 16) == CAP_NET_BIND_SERVICE, f"{caps}={status[caps]}"
        assert_whoami_answers(sandbox, "kubernetes.default.svc.cluster.local.")
    finally:
        stop(started)


def install_wheel_like_the_image(box: Sandbox) -> Path:
    """deploy/Dockerfile's install: build kdns's wheel from a copy of the sources (the
    Dockerfile's COPY set; pip's isolated build fetches setuptools from the package index, as
    `pip install -e` does), install it into a venv, precompile with unchecked-hash.
    Dependencies come from the test interpreter's site-packages instead of built wheels."""
    src = box.workdir / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("kdns", "plugins"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    wheels, venv = box.workdir / "wheels", box.workdir / "venv"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    build = [*pip, "wheel", "--no-deps", "-w", str(wheels), str(src)]
    built = subprocess.run(build, capture_output=True, text=True, cwd=src)
    assert built.returncode == 0, f"building the kdns wheel failed:\n{built.stdout}{built.stderr}"
    (wheel,) = wheels.glob("kdns-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)  # fmt: skip
    vpy = str(venv / "bin" / "python")
    subprocess.run([vpy, "-m", "pip", "--disable-pip-version-check", "-q", "install",
                    "--no-deps", "--no-index", str(wheel)], check=True)  # fmt: skip
    subprocess.run([vpy, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash",
                    str(venv)], check=True)  # fmt: skip
    shutil.rmtree(src)  # nothing may import from the source copy
    for path in box.workdir.rglob("*"):
        path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
    return venv / "bin" / "kdns"


def test_wheel_install_serves_from_a_read_only_venv(sandbox: Sandbox) -> None:
    """The closest this gets to the image without building it: the venv from the wheel, the
    setcap'd interpreter, NET_BIND_SERVICE only, the default port floor, sources hidden."""
    kdns = install_wheel_like_the_image(sandbox)
    mounts = interpreter_with_file_cap(sandbox, with_cap=True)
    # The source tree is hidden: everything must come from the wheel.
    mounts.append(f"mount -t tmpfs -o ro,mode=0755 tmpfs {REPO}")
    started = start_kdns(sandbox, WHOAMI_COREFILE, IMAGE_PRIVS, mounts, executable=kdns)
    try:
        wait_until_answering(sandbox, started)
        assert_runs_confined(started.proc.pid)
        status = proc_status(started.proc.pid)
        assert int(status["CapEff"], 16) == CAP_NET_BIND_SERVICE, status["CapEff"]
        assert_whoami_answers(sandbox, "svc.example.")
    finally:
        stop(started)


def test_image_without_net_bind_service_fails_to_start(sandbox: Sandbox) -> None:
    """`drop: [ALL]` without `add: [NET_BIND_SERVICE]`: the kernel refuses to exec an
    interpreter whose file capability (+ep) the bounding set cannot grant, so the container
    fails at once with EPERM (as CoreDNS's image does) instead of half-starting."""
    mounts = interpreter_with_file_cap(sandbox, with_cap=True)
    privs = ["--bounding-set=-all", "--securebits=+no_setuid_fixup"]
    started = start_kdns(sandbox, WHOAMI_COREFILE, privs, mounts)
    try:
        code = started.proc.wait(timeout=START_TIMEOUT)
        output = started.output()
        assert code != 0, output
        assert "Operation not permitted" in output, output
        assert "->>HEADER<<-" not in dig(sandbox, "x.kdep.test.").stdout
    finally:
        stop(started)


def write_configmap_volume(directory: Path, corefile: str, generation: int) -> None:
    """Lay the Corefile out as the kubelet's atomic writer does for a ConfigMap volume
    (Corefile -> ..data/Corefile, ..data -> ..<timestamp>), swapping ..data atomically."""
    data_dir = directory / f"..2026_01_01_00_00_{generation:02d}.000000000"
    data_dir.mkdir(mode=0o755)
    (data_dir / "Corefile").write_text(corefile)
    (data_dir / "Corefile").chmod(0o644)
    tmp = directory / "..data_tmp"
    tmp.symlink_to(data_dir.name)
    old = (directory / "..data").resolve() if (directory / "..data").exists() else None
    os.replace(tmp, directory / "..data")
    if not (directory / "Corefile").is_symlink():
        (directory / "Corefile").symlink_to("..data/Corefile")
    if old is not None:
        shutil.rmtree(old)


def hosts_corefile(address: str) -> str:
    return (
        ".:53 {\n    reload 2s 1s\n    hosts {\n"
        f"        {address} app.kdep.test\n        fallthrough\n    }}\n    whoami\n}}\n"
    )


def test_configmap_volume_update_is_reloaded(sandbox: Sandbox) -> None:
    """`kubectl edit configmap coredns` reaches the pod as a ..data symlink swap in a
    read-only volume; kdns must pick it up (here with `reload 2s 1s`) and serve the change."""
    volume = sandbox.workdir / "config-volume"
    volume.mkdir(mode=0o755)
    write_configmap_volume(volume, hosts_corefile("10.1.1.1"), 1)
    mounts = interpreter_with_file_cap(sandbox, with_cap=True)
    mounts += [f"mount --bind {volume} {volume}", f"mount -o remount,bind,ro {volume}"]
    started = start_kdns(sandbox, "", IMAGE_PRIVS, mounts, conf=volume / "Corefile")
    try:
        wait_until_answering(sandbox, started)
        assert "10.1.1.1" in dig(sandbox, "app.kdep.test.").stdout
        write_configmap_volume(volume, hosts_corefile("10.2.2.2"), 2)
        deadline = time.monotonic() + 15
        while "10.2.2.2" not in dig(sandbox, "app.kdep.test.").stdout:
            assert started.proc.poll() is None, started.output()
            assert time.monotonic() < deadline, f"no reload within 15s:\n{started.output()}"
            time.sleep(0.3)
        shas = re.findall(r"Running configuration SHA512 = (\w+)", started.output())
        assert len(set(shas)) == 2, started.output()
    finally:
        stop(started)
