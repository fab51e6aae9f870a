"""ADD/DEL latency of kdns-cni next to Debian's reference bridge (not collected by pytest).

    sudo python3 -m tests.cni.bench_latency [pods]

Wires `pods` namespaces (default 20) with each plugin/IPAM pair inside a throwaway node
namespace, one call at a time, and prints median and max wall time per call, including the
`ip netns exec` that runs the plugin. Everything it creates is named kcnib<pid>-* and deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from tests.cni.cnitest import console_script, make_bin_dir


def _call(node: str, binary: str, cmd: str, conf: bytes, pod: str, cid: str,
          cni_path: str) -> float:
    env = {"PATH": os.environ["PATH"], "CNI_COMMAND": cmd, "CNI_CONTAINERID": cid,
           "CNI_NETNS": f"/run/netns/{pod}", "CNI_IFNAME": "eth0", "CNI_PATH": cni_path}
    start = time.perf_counter()
    proc = subprocess.run(["ip", "netns", "exec", node, binary], input=conf, env=env,
                          capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{binary} {cmd} failed: {proc.stdout.decode()}")
    return time.perf_counter() - start


def _startup_costs() -> None:
    """Context for the numbers: what a bare interpreter and `import pyroute2` cost here."""
    for label, code in (("python3 -c pass", "pass"), ("python3 -c 'import pyroute2'",
                                                        "import pyroute2")):
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            runs.append(time.perf_counter() - start)
        print(f"{label:30s} median {statistics.median(runs) * 1e3:6.1f} ms")


def main(pods: int) -> None:
    _startup_costs()
    tmp = tempfile.mkdtemp(prefix="kcnib")
    cni_path = make_bin_dir(os.path.join(tmp, "bin"))
    prefix = f"kcnib{os.getpid()}"
    names = [f"{prefix}-node"] + [f"{prefix}-p{i}" for i in range(pods)]
    try:
        for n in names:
            subprocess.run(["ip", "netns", "add", n], check=True)
        pairs = (("kdns-cni", "kdns-ipam"), ("kdns-cni", "host-local"), ("bridge", "host-local"))
        for i, (plugin, ipam) in enumerate(pairs):
            conf = json.dumps({
                "cniVersion": "1.0.0", "name": f"bench{i}", "type": plugin, "bridge": f"kcnib{i}",
                "isGateway": True, "ipMasq": True, "hairpinMode": True,
                "stateDir": f"{tmp}/state",
                "ipam": {"type": ipam, "dataDir": f"{tmp}/ipam", "subnet": f"10.24{i}.0.0/24"},
            }).encode()
            binary = (console_script(plugin) if plugin.startswith("kdns")
                      else f"/usr/lib/cni/{plugin}")
            assert binary
            ifname_pods = names[1:]
            adds = [_call(names[0], binary, "ADD", conf, p, f"b{i}-{j}", cni_path)
                    for j, p in enumerate(ifname_pods)]
            dels = [_call(names[0], binary, "DEL", conf, p, f"b{i}-{j}", cni_path)
                    for j, p in enumerate(ifname_pods)]
            print(f"{plugin:8s} + {ipam:10s}  ADD median {statistics.median(adds) * 1e3:6.1f} ms"
                  f" max {max(adds) * 1e3:6.1f} | DEL median {statistics.median(dels) * 1e3:6.1f}"
                  f" ms max {max(dels) * 1e3:6.1f}   (n={pods})")
    finally:
        for n in names:
            subprocess.run(["ip", "netns", "del", n], check=False, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
