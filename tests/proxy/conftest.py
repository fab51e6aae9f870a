"""Fixtures for kdns-proxy tests: the namespace topology and a syncer bound to it."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest

from kdns.proxy.conntrack import Conntrack
from kdns.proxy.model import ServicePort
from kdns.proxy.nft import Nft
from kdns.proxy.render import RenderConfig
from kdns.proxy.syncer import Syncer, SyncSettings
from tests.proxy.netns import Topology, sh


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, nftables)")
    if not os.path.exists("/proc/sys/net/bridge/bridge-nf-call-iptables"):
        pytest.skip("needs br_netfilter (bridged pod-to-pod replies must pass conntrack)")
    t = Topology()
    try:
        t.create()
        for pod in ("a", "b"):
            t.serve(pod)
        yield t
    finally:
        t.destroy()


class Proxy:
    """A Syncer programming the topology's node, fed from a mutable list of service ports."""

    def __init__(self, topo: Topology) -> None:
        self.ports: list[ServicePort] = []
        self.table = f"kpx-{os.getpid()}-{secrets.token_hex(3)}"
        self.cfg = RenderConfig(node_name="node-a", table=self.table,
                                cluster_cidrs=("10.244.0.0/16", "fd00:244::/32"),
                                service_cidrs=("10.96.0.0/16", "fd00:96::/112"))
        prefix = topo.exec_prefix()
        self.nft = Nft(prefix=prefix)
        self.conntrack = Conntrack(prefix=prefix)
        self.syncer = Syncer(self.cfg, lambda: list(self.ports), nft=self.nft,
                             conntrack=self.conntrack,
                             settings=SyncSettings(stale_chain_delay=0.2))

    async def set(self, *ports: ServicePort) -> None:
        self.ports = list(ports)
        self.syncer.request()
        assert await self.syncer.sync(), "sync failed"


@pytest.fixture
async def proxy(topo: Topology) -> AsyncIterator[Proxy]:
    p = Proxy(topo)
    try:
        yield p
    finally:
        await p.syncer.cleanup()
        # The next test starts from an empty conntrack table so earlier flows cannot steer it.
        sh(*topo.exec_prefix(), "conntrack", "-F", check=False)
