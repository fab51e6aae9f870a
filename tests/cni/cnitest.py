"""Helpers for kdns-cni tests: namespaces with a unique prefix, and plugins run like a runtime.

Every namespace is named kcni<pid>-<n>-<role>; the node namespace plays the host, so bridges,
veths, sysctls and nft tables all live inside it and vanish with it.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass, field
from typing import Any

REFERENCE_DIR = "/usr/lib/cni"
_counter = itertools.count()


def console_script(name: str) -> str:
    """The script next to this interpreter: a PATH lookup may hit a slow wrapper (pyenv shim)
    or another installation."""
    own = os.path.join(sysconfig.get_path("scripts"), name)
    path = own if os.access(own, os.X_OK) else shutil.which(name)
    assert path, f"{name} is not installed (pip install -e .)"
    return path


def make_bin_dir(path: str) -> str:
    """A CNI bin dir holding kdns-cni and kdns-ipam; CNI_PATH adds Debian's plugins after it."""
    os.makedirs(path, exist_ok=True)
    for name in ("kdns-cni", "kdns-ipam"):
        link = os.path.join(path, name)
        if not os.path.exists(link):
            os.symlink(console_script(name), link)
    return f"{path}:{REFERENCE_DIR}"


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check,
                          timeout=timeout)


@dataclass
class Namespaces:
    """Creates namespaces and deletes every one of them in `cleanup`, even after failures."""

    prefix: str = field(default_factory=lambda: f"kcni{os.getpid()}-{next(_counter)}")
    names: list[str] = field(default_factory=list)

    def add(self, role: str) -> str:
        name = f"{self.prefix}-{role}"
        sh("ip", "netns", "add", name)
        self.names.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def delete(self, name: str) -> None:
        sh("ip", "netns", "del", name, check=False)
        if name in self.names:
            self.names.remove(name)

    def cleanup(self) -> None:
        for name in list(self.names):
            self.delete(name)


def path_of(netns: str) -> str:
    return f"/run/netns/{netns}" if netns else ""


@dataclass(frozen=True)
class Call:
    rc: int
    out: Any  # parsed stdout JSON, or None when stdout was empty
    stderr: str


def run_plugin(binary: str, command: str, conf: dict[str, Any] | bytes, *, node: str,
               container_id: str = "ctr1", netns: str = "", ifname: str = "eth0",
               cni_path: str = "", args: str = "", extra_env: dict[str, str] | None = None,
               timeout: float = 60) -> Call:
    """Runs a plugin in the node namespace exactly as a runtime would: env + stdin."""
    stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    env = {"PATH": os.environ.get("PATH", ""), "CNI_COMMAND": command,
           "CNI_CONTAINERID": container_id, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
           "CNI_PATH": cni_path, "CNI_ARGS": args, **(extra_env or {})}
    env = {k: v for k, v in env.items() if v != "" or k in ("CNI_NETNS",)}
    if "/" not in binary:
        binary = console_script(binary)
    cmd = ["ip", "netns", "exec", node, binary] if node else [binary]
    proc = subprocess.run(cmd, input=stdin, env=env, capture_output=True, timeout=timeout,
                          check=False)
    text = proc.stdout.decode()
    return Call(proc.returncode, json.loads(text) if text.strip() else None,
                proc.stderr.decode())


def ping(src: str, dst: str, count: int = 1) -> bool:
    args = ["ip", "netns", "exec", src, "ping", "-c", str(count), "-W", "2"]
    if ":" in dst:
        args.append("-6")
    return sh(*args, dst, check=False).returncode == 0


def nft_elements(node: str) -> list[dict[str, Any]]:
    proc = sh("ip", "netns", "exec", node, "nft", "-j", "list", "table", "inet", "kdns-cni",
              check=False)
    if proc.returncode != 0:
        return []
    from kdns.cni.masq import parse_elements

    return [{"address": e.address, "comment": e.comment, "target": e.target}
            for e in parse_elements(proc.stdout)]


def bridge_conf(name: str, data_dir: str, state_dir: str, *, version: str = "1.0.0",
                subnet: str = "10.250.0.0/24", ipam_type: str = "kdns-ipam",
                **overrides: Any) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "cniVersion": version, "name": name, "type": "kdns-cni", "bridge": f"{name[:10]}br",
        "isGateway": True, "ipMasq": True, "hairpinMode": True, "mtu": 1400,
        "stateDir": state_dir,
        "ipam": {"type": ipam_type, "dataDir": data_dir, "ranges": [[{"subnet": subnet}]],
                 "routes": [{"dst": "0.0.0.0/0"}]},
    }
    conf.update(overrides)
    return conf
