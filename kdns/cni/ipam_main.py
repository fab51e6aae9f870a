"""kdns-ipam entry point: host-local-compatible IPAM, usable from any CNI plugin."""

from __future__ import annotations

import os
import sys

from kdns.cni import skel
from kdns.cni.ipam import plugin as ipam
from kdns.cni.ipam.config import parse_ipam_config
from kdns.cni.result import Result


class IpamPlugin:
    """Adapts the IPAM commands to the skel.Plugin protocol."""

    @staticmethod
    def _att(req: skel.Request) -> ipam.Attachment:
        return ipam.Attachment(req.env.container_id, req.env.ifname)

    def add(self, req: skel.Request) -> Result:
        return ipam.add(parse_ipam_config(req.conf, req.env.args), self._att(req))

    def delete(self, req: skel.Request) -> None:
        ipam.delete(parse_ipam_config(req.conf, req.env.args), self._att(req))

    def check(self, req: skel.Request) -> None:
        ipam.check(parse_ipam_config(req.conf, req.env.args), self._att(req), req.prev_result)

    def status(self, req: skel.Request) -> None:
        ipam.status(parse_ipam_config(req.conf, req.env.args))

    def gc(self, req: skel.Request, valid: set[ipam.Attachment]) -> None:
        ipam.gc(parse_ipam_config(req.conf, req.env.args), valid)


def main() -> None:
    sys.exit(skel.main(IpamPlugin(), os.environ))
