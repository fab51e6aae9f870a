"""Run the real kdns the way a pod with deploy/'s securityContext runs it, without a container
engine: a network namespace (prefix ``kdep``), a private mount namespace in which the root
filesystem, the code and the Python installation are read-only, and an exec as uid/gid 65532
with no supplementary groups and no_new_privs (``allowPrivilegeEscalation: false``).

Imported by the test modules as ``kdep_sandbox`` (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_support import REPO

UID = 65532
CAP_NET_BIND_SERVICE = 1 << 10
START_TIMEOUT = 20.0
TOOLS = ("ip", "unshare", "setpriv", "dig", "setcap", "mount")


@dataclass(frozen=True)
class Sandbox:
    netns: str
    workdir: Path  # root-owned, mode 0755: readable by uid 65532, holds the Corefile


@dataclass(frozen=True)
class Started:
    proc: subprocess.Popen[bytes]
    log: Path
    at: float  # time.monotonic() at the start

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def kdns_executable() -> Path:
    """The installed console script, the same entry point the image's ENTRYPOINT runs."""
    exe = Path(sys.executable).parent / "kdns"
    if not exe.exists():
        pytest.fail(f"kdns console script not found at {exe}: run pip install -e '.[test]'")
    return exe


@contextmanager
def make_sandbox() -> Iterator[Sandbox]:
    """A fresh network namespace (lo up) and a 0755 work directory; both removed after."""
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
    corefile_text: str,
    privs: list[str],
    extra_mounts: list[str] | None = None,
    executable: Path | None = None,
    extra_env: dict[str, str] | None = None,
    conf: Path | None = None,
) -> Started:
    """Start kdns in the sandbox: as uid/gid 65532, no groups, no_new_privs, plus `privs`
    (setpriv options for the bounding set etc.); `extra_mounts` run as root beforehand."""
    corefile = conf or box.workdir / "Corefile"
    if conf is None:  # otherwise the caller laid the file out itself
        corefile.write_text(corefile_text)
        corefile.chmod(0o644)
    env = [
        "env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin",
        "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1",
        *(f"{k}={v}" for k, v in (extra_env or {}).items()),
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
    started_at = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", box.netns, "unshare", "-m", "--propagation", "private",
             "sh", "-ec", script],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    return Started(proc, log, started_at)


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
        if "->>HEADER<<-" in dig(box, "ping.kdep.test.").stdout:  # any DNS reply
            return
        time.sleep(0.2)
    pytest.fail(f"kdns did not answer on :53 within {START_TIMEOUT}s:\n{started.output()}")


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


def interpreter_with_file_cap(box: Sandbox, with_cap: bool) -> list[str]:
    """Mount commands that put a copy of the interpreter, with or without
    cap_net_bind_service=+ep, over the real one inside the mount namespace only."""
    real = Path(sys.executable).resolve()
    copy = box.workdir / "python-copy"
    shutil.copy2(real, copy)
    if with_cap:
        subprocess.run(["setcap", "cap_net_bind_service=+ep", str(copy)], check=True)
    return [f"mount --bind {copy} {real}", f"mount -o remount,bind,ro {real}"]
