"""``python -m tests.fakeapi``: run the fake API server as its own process.

Prints one JSON line ``{"url": ..., "control": ..., "ca": ...}`` on stdout, then serves until
SIGTERM/SIGINT. See control.py for the control API.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile

import yaml
from aiohttp import web

from tests.fakeapi.app import FakeApi
from tests.fakeapi.control import control_app
from tests.fakeapi.tls import make_tls_bundle


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.fakeapi", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--control-port", type=int, default=0)
    p.add_argument("--objects", help="YAML/JSON file or directory of objects to load")
    p.add_argument("--tls-dir", help="serve https with a CA/certs generated into this directory")
    p.add_argument("--tls", action="store_true", help="https with certs in a temp directory")
    p.add_argument("--token", action="append", help="accepted bearer token (repeatable)")
    p.add_argument("--bookmark-interval", type=float)
    p.add_argument("--history-size", type=int, default=1000)
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    tls = None
    if args.tls_dir or args.tls:
        tls = make_tls_bundle(args.tls_dir or tempfile.mkdtemp(prefix="fakeapi-tls-"),
                              hosts=(args.host, "localhost"))
    api = FakeApi(host=args.host, port=args.port, tls=tls, tokens=args.token,
                  bookmark_interval=args.bookmark_interval, history_size=args.history_size)
    if args.objects:
        api.load(args.objects)
    await api.start()
    runner = web.AppRunner(control_app(api), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.control_port)
    await site.start()
    port = runner.addresses[0][1]
    info = {"url": api.url, "control": f"http://{args.host}:{port}",
            "ca": str(tls.ca_cert) if tls else None}
    print(json.dumps(info), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await api.stop()


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    try:
        asyncio.run(_serve(args))
    except (OSError, ValueError, OverflowError, yaml.YAMLError) as exc:
        print(f"fakeapi: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
