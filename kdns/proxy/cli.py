"""``kdns-proxy``: program this node's nftables from the cluster's Services and EndpointSlices.

Exit codes: 0 success (or a clean stop on SIGTERM/SIGINT), 1 a sync or the API failed in
``--once``/``--dry-run``, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import logging
import re
import signal
import socket
import sys
from collections.abc import Sequence

from kdns.errors import KdnsError
from kdns.k8s.client import ApiClient
from kdns.k8s.config import load
from kdns.k8s.errors import ConfigError
from kdns.log import setup_logging
from kdns.proxy import http, transaction
from kdns.proxy.conntrack import Conntrack
from kdns.proxy.healthcheck import ServiceHealthServers
from kdns.proxy.model import FAMILIES, Family
from kdns.proxy.nft import Nft
from kdns.proxy.render import DEFAULT_TABLE, RenderConfig, render
from kdns.proxy.source import ClusterState
from kdns.proxy.syncer import Syncer, SyncSettings

log = logging.getLogger("kdns.proxy")


class UsageError(Exception):
    pass


def _duration(text: str) -> float:
    """Seconds, as a number or with a Go-style unit: 500ms, 1s, 2m, 1h."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            number, scale = text[: -len(suffix)], units[suffix]
            break
    else:
        number, scale = text, 1.0
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"duration {text!r} is negative")
    return value


def _cidrs(text: str) -> tuple[str, ...]:
    try:
        return tuple(str(ipaddress.ip_network(c.strip(), strict=False))
                     for c in text.split(",") if c.strip())
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


_NFT_NAME = re.compile(r"[A-Za-z_.][A-Za-z0-9/_.-]{0,255}")


def _table(text: str) -> str:
    if not _NFT_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"invalid table name {text!r}: a letter, '_' or '.', then letters, digits, '/_.-'"
        )
    return text


def _families(text: str) -> tuple[Family, ...]:
    out: list[Family] = []
    for part in text.split(","):
        name = {"ipv4": "ip", "ip": "ip", "ipv6": "ip6", "ip6": "ip6"}.get(part.strip().lower())
        if name is None:
            raise argparse.ArgumentTypeError(f"unknown IP family {part!r} (ipv4, ipv6)")
        out.append("ip" if name == "ip" else "ip6")
    return tuple(dict.fromkeys(out))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kdns-proxy",
        description="nftables service proxy (kube-proxy nftables-mode layout) for kdns clusters",
    )
    api = p.add_mutually_exclusive_group()
    api.add_argument("--endpoint", metavar="URL", help="API server URL (e.g. http://HOST:PORT)")
    api.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file")
    p.add_argument("--context", metavar="NAME", help="kubeconfig context (default: current)")
    p.add_argument("--token-file", metavar="PATH", help="bearer token file (with --endpoint)")
    p.add_argument("--node-name", default=socket.gethostname(), metavar="NAME",
                   help="this node's name, for traffic policy Local and its zone (default: "
                        "hostname)")
    p.add_argument("--cluster-cidr", type=_cidrs, default=(), metavar="CIDR[,CIDR]",
                   help="pod CIDRs: traffic from elsewhere to a ClusterIP is masqueraded")
    p.add_argument("--service-cidr", type=_cidrs, default=(), metavar="CIDR[,CIDR]",
                   help="service CIDRs: unallocated ClusterIPs are dropped")
    p.add_argument("--nodeport-addresses", type=_cidrs, default=None, metavar="CIDR[,CIDR]",
                   help="accept NodePorts only on this node's addresses in these CIDRs "
                        "(default: every local address but loopback)")
    p.add_argument("--masquerade-all", action="store_true",
                   help="masquerade all traffic to ClusterIPs")
    p.add_argument("--ip-families", type=_families, default=FAMILIES, metavar="ipv4,ipv6",
                   help="tables to program (default: both)")
    p.add_argument("--table", type=_table, default=DEFAULT_TABLE, metavar="NAME",
                   help=f"nftables table name in each family (default: {DEFAULT_TABLE})")
    p.add_argument("--min-sync-period", type=_duration, default=1.0, metavar="DURATION",
                   help="least time between syncs; changes in between are batched (1s)")
    p.add_argument("--sync-period", type=_duration, default=30.0, metavar="DURATION",
                   help="sync at least this often, and retry failures up to it (30s)")
    p.add_argument("--healthz-bind-address", type=_address, default=("0.0.0.0", 10256),
                   metavar="HOST:PORT", help="/healthz and /livez (port 0: any free port)")
    p.add_argument("--metrics-bind-address", type=_address, default=("127.0.0.1", 10249),
                   metavar="HOST:PORT", help="/metrics (port 0: any free port)")
    p.add_argument("--sync-timeout", type=_duration, default=60.0, metavar="DURATION",
                   help="--once/--dry-run: give up if the API has not been listed by then")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="sync once, then exit")
    mode.add_argument("--dry-run", action="store_true",
                      help="print the ruleset a first sync would apply, change nothing")
    mode.add_argument("--cleanup", action="store_true", help="delete the proxy's tables, exit")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def render_config(args: argparse.Namespace) -> RenderConfig:
    return RenderConfig(
        node_name=args.node_name,
        table=args.table,
        cluster_cidrs=args.cluster_cidr,
        service_cidrs=args.service_cidr,
        masquerade_all=args.masquerade_all,
    )


async def _cleanup(args: argparse.Namespace) -> int:
    nft = Nft()
    for family in args.ip_families:
        await nft.apply(transaction.cleanup(family, args.table))
    log.info("deleted tables %s", ", ".join(f"{f} {args.table}" for f in args.ip_families))
    return 0


async def _run(args: argparse.Namespace) -> int:
    api = await load(args.endpoint, args.kubeconfig, args.context, token_file=args.token_file)
    settings = SyncSettings(min_sync_period=args.min_sync_period, sync_period=args.sync_period,
                            health_timeout=max(60.0, 2 * args.sync_period))
    state: ClusterState
    daemon = not (args.once or args.dry_run)
    # healthCheckNodePort listeners follow each applied sync (daemon mode only).
    health_checks = ServiceHealthServers(lambda: syncer.healthy())
    syncer = Syncer(
        render_config(args), lambda: state.snapshot(), nft=Nft(), conntrack=Conntrack(),
        families=args.ip_families, settings=settings,
        on_applied=(lambda ports: health_checks.update(ports, args.node_name)) if daemon else None,
        nodeport_cidrs=args.nodeport_addresses,
    )
    def zone_changed(zone: str | None) -> None:
        log.info("node %s is in zone %s", args.node_name, zone or "(none)")
        syncer.cfg = dataclasses.replace(syncer.cfg, node_zone=zone)
        syncer.request()

    async with ApiClient(api) as client, asyncio.TaskGroup() as tg:
        state = ClusterState(client, syncer.request, node_name=args.node_name,
                             on_zone=zone_changed)
        tasks = [tg.create_task(r.run()) for r in state.reflectors]
        try:
            if not daemon:
                return await _one_shot(args, state, syncer)
            return await _serve(args, state, syncer)
        finally:
            await health_checks.close()
            for t in tasks:
                t.cancel()


async def _one_shot(args: argparse.Namespace, state: ClusterState, syncer: Syncer) -> int:
    try:
        await asyncio.wait_for(state.wait_synced(), args.sync_timeout)
    except TimeoutError:
        log.error("the API server was not listed within %.0fs", args.sync_timeout)
        return 1
    if len(state.reflectors) > 2:  # give the Node (zone hints) a moment, but never block on it
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.reflectors[2].synced.wait(), 2.0)
    if args.dry_run:
        await syncer.refresh_node_addresses()
        ports = state.snapshot()
        for family in args.ip_families:
            sys.stdout.write(transaction.full(render(ports, syncer.cfg, family)))
        return 0
    return 0 if await syncer.sync() else 1


async def _serve(args: argparse.Namespace, state: ClusterState, syncer: Syncer) -> int:
    runners = []
    h_host, h_port = args.healthz_bind_address
    m_host, m_port = args.metrics_bind_address
    same = (h_host, h_port) == (m_host, m_port) and h_port != 0
    runner, port = await http.start(http.health_app(syncer, with_metrics=same), h_host, h_port)
    runners.append(runner)
    log.info("healthz listening on %s:%d", h_host, port)
    if not same:
        runner, port = await http.start(http.metrics_app(), m_host, m_port)
        runners.append(runner)
        log.info("metrics listening on %s:%d", m_host, port)
    _check_node(args.ip_families)
    try:
        await state.wait_synced()
        log.info("services and endpointslices listed; syncing %s tables %s",
                 ",".join(args.ip_families), args.table)
        await syncer.run()
    finally:
        for r in runners:
            await r.cleanup()
    return 0


def _check_node(families: Sequence[Family]) -> None:
    """Warns about node settings the datapath needs (kube-proxy warns likewise)."""
    knobs = {"ip": ["/proc/sys/net/ipv4/ip_forward",
                    "/proc/sys/net/bridge/bridge-nf-call-iptables"],
             "ip6": ["/proc/sys/net/ipv6/conf/all/forwarding",
                     "/proc/sys/net/bridge/bridge-nf-call-ip6tables"]}
    for family in families:
        for knob in knobs[family]:
            try:
                with open(knob) as f:
                    enabled = f.read().strip() == "1"
            except OSError:
                enabled = False
            if not enabled:
                log.warning("%s is not 1 (or missing): service traffic %s may not work", knob,
                            "forwarded through this node" if "forward" in knob
                            else "between pods on one bridge")


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def _main(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    work = asyncio.create_task(_cleanup(args) if args.cleanup else _run(args))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if work.done():
        stopping.cancel()
        return work.result()
    log.info("stopping (rules stay in place until --cleanup)")
    # Cancel until it sticks: a cancellation that lands inside a library's own timeout
    # handling (seen in aiohttp's server start-up) can be swallowed.
    while not work.done():
        work.cancel()
        await asyncio.wait({work}, timeout=1.0)
    if not work.cancelled() and work.exception() is not None:
        log.error("error while stopping: %s", work.exception())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    if args.dry_run:  # stdout carries the ruleset
        for handler in logging.getLogger("kdns").handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sys.stderr)
    if not args.node_name:
        print("kdns-proxy: error: --node-name must not be empty", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(args))
    except (KdnsError, BaseExceptionGroup) as exc:
        err = _leaf(exc)
        if not isinstance(err, KdnsError):
            raise
        print(f"kdns-proxy: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
