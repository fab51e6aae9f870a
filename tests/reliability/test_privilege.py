"""S6: least privilege at runtime and in the shipped manifests (reliability.md S6).

Runtime: the real kdns runs as UID/GID 65534 with no capabilities at all
(``setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all --bounding-set=-all``,
plus ``--no-new-privs``, the runtime side of ``allowPrivilegeEscalation: false``) in a network
namespace this test creates, where ``net.ipv4.ip_unprivileged_port_start=53`` lets it bind
:53. It must answer on :53 (UDP and TCP), pass /health and /ready, stop cleanly on SIGTERM,
and create no file outside its own tmp dir (HOME and TMPDIR point there). The code tree and
the interpreter are read-only to it because it owns neither.

The interpreter may live under a directory 65534 cannot enter (pyenv under /root, mode 0700).
Rather than loosening permissions on the host, the process gets a private mount namespace
(``unshare --mount``) in which that directory is a fresh tmpfs (mode 0755) holding read-only
bind mounts of just the needed subtrees at their original paths; nothing outside that
namespace sees it.

Manifests: tests/deploy checks the posture of deploy/base in detail. What S6 adds is the whole
checklist over every rendered kustomization (the deploy root, base and each overlay that
carries a Deployment), so an overlay cannot quietly drop it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kdns

REPO = Path(kdns.__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "deploy"))
from deploy_support import DEPLOY, OVERLAYS, Obj, container, render  # noqa: E402

NOBODY = 65534
SETPRIV = ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
           "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
COREFILE = """\
.:53 {
    hosts {
        10.53.0.1 s6.example
    }
    health 127.0.0.1:8080
    ready 127.0.0.1:8181
}
"""
CHECKED_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("S6 runtime needs root (creates a network namespace and drops to 65534)")
    for tool in ("ip", "setpriv", "unshare", "dig", "curl"):
        if shutil.which(tool) is None:
            pytest.skip(f"S6 runtime needs {tool}")


def _run(*cmd: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def netns() -> Iterator[str]:
    _need_root()
    name = f"krel-s6-{os.getpid()}"
    r = _run("ip", "netns", "add", name)
    if r.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {r.stderr.strip()}")
    try:
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["sysctl", "-w", "net.ipv4.ip_unprivileged_port_start=53"]):
            r = _run("ip", "netns", "exec", name, *cmd)
            assert r.returncode == 0, r.stderr
        yield name
    finally:
        _run("ip", "netns", "delete", name)


def _blocked_ancestor(path: Path) -> Path | None:
    """The outermost ancestor of ``path`` that 'others' cannot traverse, if any."""
    for p in reversed(path.parents):
        if p != Path("/") and not os.stat(p).st_mode & 0o001:
            return p
    return None


def _mount_script(stage: Path) -> str:
    """Shell commands (run as root in the private mount namespace) that make the interpreter
    and the code reachable, read-only, for 65534 at their usual paths."""
    needed = {Path(os.path.realpath(p)) for p in (sys.prefix, sys.base_prefix, REPO)}
    lines: list[str] = []
    by_blocked: dict[Path, set[Path]] = {}
    for p in needed:
        b = _blocked_ancestor(p)
        if b is not None:
            by_blocked.setdefault(b, set()).add(b / p.relative_to(b).parts[0])
    for i, (blocked, children) in enumerate(sorted(by_blocked.items())):
        staged = []
        for j, child in enumerate(sorted(children)):
            s = stage / f"{i}-{j}"
            s.mkdir()
            lines.append(f"mount --bind {shlex.quote(str(child))} {s}")
            staged.append((s, child))
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m tmpfs {shlex.quote(str(blocked))}")
        for s, child in staged:
            c = shlex.quote(str(child))
            lines += [f"mkdir -p {c}", f"mount --move {s} {c}",
                      f"mount -o remount,bind,ro {c}"]
    return "\n".join(lines)


def _proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def _files_by(uid: int, since: float, roots: list[Path], allowed: Path) -> list[str]:
    """Files and directories owned by ``uid`` changed after ``since``, outside ``allowed``."""
    found = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root, onerror=lambda e: None):
            d = Path(dirpath)
            if d == allowed or allowed in d.parents:
                dirnames[:] = []
                continue
            dirnames[:] = [n for n in dirnames if n != ".git"]
            for n in (*dirnames, *filenames):
                p = d / n
                try:
                    st = p.lstat()
                except OSError:
                    continue
                if st.st_uid == uid and max(st.st_mtime, st.st_ctime) >= since and p != allowed:
                    found.append(str(p))
    return found


def test_runs_unprivileged_on_port_53(netns: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="krel-s6-home-", dir="/tmp"))
    stage = Path(tempfile.mkdtemp(prefix="krel-s6-stage-", dir="/tmp"))
    proc = None
    try:
        os.chown(home, NOBODY, NOBODY)
        (home / "Corefile").write_text(COREFILE)
        os.chmod(home / "Corefile", 0o644)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(home), "TMPDIR": str(home),
               "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"}
        py = sys.executable  # not its realpath: a venv's python is a symlink that finds pyvenv.cfg
        exec_kdns = shlex.join([*SETPRIV, py, "-m", "kdns", "-conf", str(home / "Corefile")])
        # Fails the script (set -e) unless 65534 runs this interpreter with this kdns: an
        # unreachable interpreter path can otherwise end in another Python on the host.
        check = (f"import sys, kdns; assert sys.prefix == {sys.prefix!r}, sys.prefix; "
                 f"assert kdns.__file__ == {kdns.__file__!r}, kdns.__file__")
        probe = shlex.join([*SETPRIV, py, "-c", check])
        script = f"set -e\n{_mount_script(stage)}\n{probe}\ncd {shlex.quote(str(home))}\n" \
                 f"exec {exec_kdns}\n"
        since = time.time() - 1  # mtime granularity
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, "unshare", "--mount", "--propagation", "private",
             "sh", "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True)
        answer = _wait_answer(netns, proc)
        assert answer == "10.53.0.1"
        tcp = _run("ip", "netns", "exec", netns, "dig", "@127.0.0.1", "-p", "53", "+tcp",
                   "+short", "+time=2", "+tries=1", "s6.example", "A").stdout.strip()
        assert tcp == "10.53.0.1"
        for url in ("http://127.0.0.1:8080/health", "http://127.0.0.1:8181/ready"):
            code = _run("ip", "netns", "exec", netns, "curl", "-s", "-o", "/dev/null", "-w",
                        "%{http_code}", url).stdout
            assert code == "200", url

        st = _proc_status(proc.pid)
        assert os.readlink(f"/proc/{proc.pid}/exe") == os.path.realpath(py)
        assert st["Uid"].split() == [str(NOBODY)] * 4 and st["Gid"].split() == [str(NOBODY)] * 4
        assert st["Groups"] == ""
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(st[cap], 16) == 0, (cap, st[cap])
        assert st["NoNewPrivs"] == "1"

        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert "Traceback" not in out, out

        roots = [REPO, Path(os.path.realpath(sys.prefix)), *map(Path, CHECKED_DIRS)]
        stray = _files_by(NOBODY, since, roots, home)
        assert stray == [], stray
        print(f"S6 runtime: uid {NOBODY}, all capability sets 0, served :53 UDP+TCP, "
              f"0 files written outside {home} (checked {', '.join(map(str, roots))})")
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(stage, ignore_errors=True)


def _wait_answer(netns: str, proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"kdns exited with {proc.returncode}:\n{out}")
        r = _run("ip", "netns", "exec", netns, "dig", "@127.0.0.1", "-p", "53", "+short",
                 "+time=1", "+tries=1", "s6.example", "A")
        if r.returncode == 0 and r.stdout.strip():  # dig prints errors on stdout too
            return r.stdout.strip()
        time.sleep(0.1)
    raise AssertionError("kdns did not answer on :53")


# -- manifests ------------------------------------------------------------------------------
def _kustomizations() -> list[Path]:
    dirs = [DEPLOY, DEPLOY / "base"]
    dirs += sorted(p for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").exists())
    return [d for d in dirs if any(o["kind"] == "Deployment" and "containers" in
                                   o["spec"]["template"]["spec"] for o in render(d))]


def _full_deployment(objs: list[Obj]) -> bool:
    return any(o["kind"] == "Deployment" and "securityContext" in o["spec"]["template"]["spec"]
               for o in objs)


@pytest.mark.parametrize("directory", _kustomizations(),
                         ids=lambda p: str(p.relative_to(DEPLOY.parent)))
def test_manifest_least_privilege(directory: Path) -> None:
    objs = render(directory)
    if not _full_deployment(objs):
        pytest.skip(f"{directory.name} is a patch of kubeadm's Deployment (tests/deploy)")
    (dep,) = [o for o in objs if o["kind"] == "Deployment"]
    pod = dep["spec"]["template"]["spec"]
    psc, c = pod["securityContext"], container(dep)
    sc = c["securityContext"]
    assert sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True
    uid = sc.get("runAsUser", psc.get("runAsUser"))
    assert isinstance(uid, int) and uid != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}
    seccomp = sc.get("seccompProfile", psc.get("seccompProfile"))
    assert seccomp == {"type": "RuntimeDefault"}
    assert c["resources"]["limits"].get("memory")
    labels = dep["spec"]["template"]["metadata"]["labels"]
    anti = pod["affinity"]["podAntiAffinity"]
    terms = [t.get("podAffinityTerm", t) for k in anti.values() for t in k]
    assert any(t["topologyKey"] == "kubernetes.io/hostname" for t in terms)
    pdbs = [o for o in objs if o["kind"] == "PodDisruptionBudget"]
    assert any(p["spec"]["selector"]["matchLabels"].items() <= labels.items() for p in pdbs)
