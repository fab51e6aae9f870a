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
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_support import REPO

pytestmark = pytest.mark.root

UID = 65532
CAP_NET_BIND_SERVICE = 1 << 10
START_TIMEOUT = 20.0
WHOAMI_COREFILE = ".:53 {\n    whoami\n}\n"
TOOLS = ("ip", "unshare", "setpriv", "dig", "setcap", "mount")


@dataclass(frozen=True)
class Sandbox:
    netns: str
    workdir: Path  # root-owned, mode 0755: readable by uid 65532, holds the Corefile


@dataclass(frozen=True)
class Started:
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def kdns_executable() -> Path:
    """The installed console script, the same entry point the image's ENTRYPOINT runs."""
    exe = Path(sys.executable).parent / "kdns"
    if not exe.exists():
        pytest.fail(f"kdns console script not found at {exe}: run pip install -e '.[test]'")
    return exe


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    if os.geteuid() != 0:
        pytest.skip("needs root: creates network namespaces, mounts, and drops to uid 65532")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    assert not missing, f"missing tools {missing} (apt: iproute2 util-linux dnsutils libcap2-bin)"
    name = f"kdep-{uuid.uuid4().hex[:10]}"
    workdir = Path(tempfile.mkdtemp(prefix="kdep-"))
    workdir.chmod(0o755)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield Sandbox(name, workdir)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def blocked_ancestors(paths: list[Path]) -> dict[Path, set[str]]:
    """Directories uid 65532 cannot traverse on the way to `paths` (e.g. /root is 0700 when
    Python lives in /root/.pyenv), each with the child names that must be reachable."""
    blocked: dict[Path, set[str]] = {}
    for path in paths:
        parts = path.parts
        for i in range(1, len(parts) - 1):
            ancestor = Path(*parts[:i])
            if not os.stat(ancestor).st_mode & stat.S_IXOTH:
                blocked.setdefault(ancestor, set()).add(parts[i])
                break
    nested = [a for a in blocked for b in blocked if a != b and b.is_relative_to(a)]
    assert not nested, f"nested untraversable directories {nested}: not handled"
    return blocked


def sandbox_script(box: Sandbox, argv: list[str], extra_mounts: list[str]) -> str:
    """Shell run as root inside the private mount namespace; ends by exec'ing kdns."""
    prefix = Path(sys.base_prefix).resolve()
    needed = [prefix, Path(sys.prefix).resolve(), REPO, box.workdir]
    lines: list[str] = []
    for n, (ancestor, children) in enumerate(sorted(blocked_ancestors(needed).items())):
        # Re-expose only the needed children of an untraversable directory under a 0755 tmpfs.
        stash = box.workdir / f"stash{n}"
        lines += [f"mkdir {stash}", f"mount --bind {ancestor} {stash}"]
        lines.append(f"mount -t tmpfs -o mode=0755 tmpfs {ancestor}")
        for child in sorted(children):
            lines += [
                f"mkdir {ancestor / child}",
                f"mount --bind {stash / child} {ancestor / child}",
            ]
        lines.append(f"umount -l {stash}")
    for ro in sorted({prefix, REPO}):
        lines += [f"mount --bind {ro} {ro}", f"mount -o remount,bind,ro {ro}"]
    lines += extra_mounts  # after the (non-recursive) read-only binds, which would hide them
    lines.append("mount -o remount,bind,ro /")
    lines.append("exec " + shlex.join(argv))
    return "\n".join(lines)


def start_kdns(
    box: Sandbox,
    privs: list[str],
    extra_mounts: list[str] | None = None,
    executable: Path | None = None,
) -> Started:
    corefile = box.workdir / "Corefile"
    corefile.write_text(WHOAMI_COREFILE)
    corefile.chmod(0o644)
    env = [
        "env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin",
        "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1",
    ]  # fmt: skip
    drop = [
        "setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
        "--inh-caps=-all", "--ambient-caps=-all", "--no-new-privs", *privs,
    ]  # fmt: skip
    # env runs first, as root: any exec between setpriv and kdns would run without file
    # capabilities and, under no_new_privs, leave kdns none to inherit.
    argv = [*env, *drop, str(executable or kdns_executable()), "-conf", str(corefile)]
    script = sandbox_script(box, argv, extra_mounts or [])
    log = Path(tempfile.mkstemp(prefix="kdep-log-")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", box.netns, "unshare", "-m", "--propagation", "private",
             "sh", "-ec", script],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    return Started(proc, log)


def stop(started: Started) -> None:
    if started.proc.poll() is None:
        started.proc.terminate()
        try:
            started.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            started.proc.kill()
            started.proc.wait()
    started.log.unlink(missing_ok=True)


def dig(box: Sandbox, qname: str, tcp: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", "netns", "exec", box.netns, "dig", "@127.0.0.1", "-p", "53", qname, "A",
           "+norec", "+tries=1", "+time=1"]  # fmt: skip
    return subprocess.run(cmd + (["+tcp"] if tcp else []), capture_output=True, text=True)


def wait_until_answering(box: Sandbox, started: Started) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if started.proc.poll() is not None:
            pytest.fail(
                f"kdns exited with {started.proc.returncode} before answering on :53:\n"
                + started.output()
            )
        if "status: NOERROR" in dig(box, "ping.kdep.test.").stdout:
            return
        time.sleep(0.2)
    pytest.fail(f"kdns did not answer on :53 within {START_TIMEOUT}s:\n{started.output()}")


def assert_whoami_answers(box: Sandbox, qname: str) -> None:
    for tcp, transport in ((False, "udp"), (True, "tcp")):
        out = dig(box, qname, tcp=tcp).stdout
        assert "status: NOERROR" in out, out
        assert re.search(rf"^{re.escape(qname)}\s+0\s+IN\s+A\s+127\.0\.0\.1$", out, re.M), out
        srv = rf"^_{transport}\.{re.escape(qname)}\s+0\s+IN\s+SRV\s+0 0 \d+ \.$"
        assert re.search(srv, out, re.M), out


def proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def mount_options(pid: int) -> dict[str, set[str]]:
    """Mount point -> per-mount options, as the process sees them (last mount wins)."""
    out: dict[str, set[str]] = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields = line.split()
        out[fields[4]] = set(fields[5].split(","))
    return out


def assert_runs_confined(pid: int) -> None:
    status = proc_status(pid)
    assert "-conf" in Path(f"/proc/{pid}/cmdline").read_text(), "not the kdns process"
    assert status["Uid"].split() == [str(UID)] * 4
    assert status["Gid"].split() == [str(UID)] * 4
    assert status["Groups"] == ""
    assert status["NoNewPrivs"] == "1"
    assert int(status["CapInh"], 16) == int(status["CapAmb"], 16) == 0
    mounts = mount_options(pid)
    assert "ro" in mounts["/"], "root filesystem must be read-only"
    assert "ro" in mounts[str(REPO)], "code must be read-only"


def test_serves_on_53_as_65532_without_capabilities(sandbox: Sandbox) -> None:
    subprocess.run(
        ["ip", "netns", "exec", sandbox.netns,
         "sysctl", "-q", "-w", "net.ipv4.ip_unprivileged_port_start=53"],
        check=True,
    )  # fmt: skip
    started = start_kdns(sandbox, ["--bounding-set=-all"])
    try:
        wait_until_answering(sandbox, started)
        assert_runs_confined(started.proc.pid)
        status = proc_status(started.proc.pid)
        for caps in ("CapPrm", "CapEff", "CapBnd"):
            assert int(status[caps], 16) == 0, f"{caps}={status[caps]}"
        assert_whoami_answers(sandbox, "www.example.org.")
    finally:
        stop(started)


def interpreter_with_file_cap(box: Sandbox, with_cap: bool) -> list[str]:
    """Mount commands that put a copy of the interpreter, with or without
    cap_net_bind_service=+ep, over the real one inside the mount namespace only."""
    real = Path(sys.executable).resolve()
    copy = box.workdir / "python-copy"
    shutil.copy2(real, copy)
    if with_cap:
        subprocess.run(["setcap", "cap_net_bind_service=+ep", str(copy)], check=True)
    return [f"mount --bind {copy} {real}", f"mount -o remount,bind,ro {real}"]


@pytest.mark.parametrize("with_file_cap", [True, False], ids=["setcap", "no-setcap"])
def test_image_capability_model(sandbox: Sandbox, with_file_cap: bool) -> None:
    sysctl = ["sysctl", "-n", "net.ipv4.ip_unprivileged_port_start"]
    floor = subprocess.run(
        ["ip", "netns", "exec", sandbox.netns, *sysctl], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert floor == "1024", "a fresh namespace keeps the default privileged-port floor"
    # no_setuid_fixup keeps the permitted set across the uid switch, as runc's keepcaps does;
    # execve then recomputes it from the file capability, capped by the bounding set.
    privs = ["--bounding-set=-all,+net_bind_service", "--securebits=+no_setuid_fixup"]
    started = start_kdns(sandbox, privs, interpreter_with_file_cap(sandbox, with_file_cap))
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
    kdns = install_wheel_like_the_image(sandbox)
    subprocess.run(
        ["ip", "netns", "exec", sandbox.netns,
         "sysctl", "-q", "-w", "net.ipv4.ip_unprivileged_port_start=53"],
        check=True,
    )  # fmt: skip
    # The source tree is hidden: everything must come from the wheel.
    hide_sources = [f"mount -t tmpfs -o ro,mode=0755 tmpfs {REPO}"]
    started = start_kdns(sandbox, ["--bounding-set=-all"], hide_sources, executable=kdns)
    try:
        wait_until_answering(sandbox, started)
        assert_runs_confined(started.proc.pid)
        assert_whoami_answers(sandbox, "svc.example.")
    finally:
        stop(started)
