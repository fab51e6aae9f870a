"""kdns-cni entry point: the CNI plugin, or `kdns-cni run ...` (a cnitool stand-in)."""

from __future__ import annotations

import os
import sys

from kdns.cni import skel
from kdns.cni.bridge import BridgePlugin


def main() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] == "run":
        from kdns.cni.runtime_cli import main as run_main

        sys.exit(run_main(argv[1:]))
    if argv:
        sys.stderr.write(
            "kdns-cni is a CNI plugin: a container runtime runs it with CNI_COMMAND and the "
            "network config on stdin.\nTo run a network config list yourself, use "
            "'kdns-cni run --help'.\n")
        sys.exit(0 if argv[0] in ("-h", "--help") else 2)
    sys.exit(skel.main(BridgePlugin(os.environ), os.environ))
