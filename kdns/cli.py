"""``kdns`` command line, with CoreDNS's Go-flag spellings (-conf, -dns.port, -quiet, ...)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence

from kdns import VERSION_BANNER
from kdns.errors import KdnsError
from kdns.log import setup_logging

DEFAULT_COREFILE = ".:{port} {{\n    whoami\n    log\n}}\n"


def _bool(value: str) -> bool:
    v = value.lower()
    if v in ("1", "t", "true"):
        return True
    if v in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}")


def _normalize(argv: Sequence[str]) -> list[str]:
    """Go flags: -name, --name, -name=value; booleans take only the = form."""
    out = []
    for a in argv:
        if a.startswith("-") and not a.startswith("--") and len(a) > 2:
            a = "-" + a
        if a in ("--quiet", "--version", "--plugins"):
            a += "=true"
        out.append(a)
    return out


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kdns", allow_abbrev=False,
                                description="Cluster DNS for Kubernetes (CoreDNS drop-in).")
    p.add_argument("--conf", dest="conf", default=None,
                   help="Corefile to load (default ./Corefile; 'stdin' reads standard input)")
    p.add_argument("--dns.port", "-p", dest="port", type=int, default=53,
                   help="default port for zones without one")
    p.add_argument("--pidfile", dest="pidfile", default=None, help="write the PID to this file")
    p.add_argument("--quiet", dest="quiet", type=_bool, default=False, nargs="?", const=True,
                   help="do not print the zone list and version at startup")
    p.add_argument("--version", dest="version", type=_bool, default=False, nargs="?", const=True,
                   help="print the version and exit")
    p.add_argument("--plugins", dest="plugins", type=_bool, default=False, nargs="?",
                   const=True, help="list the available plugins and exit")
    p.add_argument("--workers", dest="workers", type=int, default=1,
                   help="DNS worker processes sharing the port (SO_REUSEPORT); the parent "
                   "process runs the API watches and the HTTP side servers (default 1)")
    p.add_argument("--worker-fd", dest="worker_fd", type=int, default=None,
                   help=argparse.SUPPRESS)
    p.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    return p


def load_corefile(conf: str | None, port: int) -> tuple[str, str | None]:
    """(text, path) of the Corefile to run; CoreDNS's default when none is found."""
    if conf == "stdin":
        return sys.stdin.read(), None
    if conf is None:
        if os.path.exists("Corefile"):
            conf = "Corefile"
        else:
            return DEFAULT_COREFILE.format(port=port), None
    try:
        with open(conf, encoding="utf-8") as f:
            return f.read(), conf
    except (OSError, UnicodeDecodeError) as e:
        raise KdnsError(f"{conf}: {getattr(e, 'strerror', None) or e}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(_normalize(sys.argv[1:] if argv is None else argv))
    if args.extra:
        print(f"extra command line arguments: {args.extra}", file=sys.stderr)
        return 1
    if args.version:
        import platform

        print(VERSION_BANNER)
        print(f"{sys.platform}/{platform.machine()}, python{platform.python_version()}")
        return 0
    if args.plugins:
        from kdns.registry import Registry

        print("Server types:\n  dns\n\nCaddyfile loaders:\n  flag\n  default\n\nOther plugins:")
        for name in Registry().available():
            print(f"  dns.{name}")
        return 0
    setup_logging()
    try:
        text, path = load_corefile(args.conf, args.port)
    except KdnsError as e:
        print(e, file=sys.stderr)
        return 1
    if args.workers < 1 or args.workers > 256:
        print(f"invalid -workers {args.workers}: want 1..256", file=sys.stderr)
        return 2
    if args.workers > 1 and path is None:
        path = _save_corefile(text)
    return run(text, path, args.port, args.quiet, args.pidfile, args.workers, args.worker_fd)


def _save_corefile(text: str) -> str:
    """Workers re-read the Corefile: keep a built-in or stdin Corefile in a private file."""
    import tempfile

    fd, path = tempfile.mkstemp(prefix="kdns-Corefile-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def run(text: str, path: str | None, port: int, quiet: bool, pidfile: str | None,
        workers: int = 1, worker_fd: int | None = None) -> int:
    from kdns.server.run import Server
    from kdns.server.workers import run_parent, run_worker, worker_argv

    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass

    async def _main() -> int:
        if worker_fd is not None:
            return await run_worker(Server(text, path, port, True, role="worker"), worker_fd)
        if workers > 1:
            server = Server(text, path, port, quiet, role="parent")
            argv = worker_argv(path, port)
            return await run_parent(server, workers, argv)
        return await Server(text, path, port, quiet).run()

    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            if pidfile:
                with open(pidfile, "w") as f:
                    f.write(f"{os.getpid()}\n")
            return runner.run(_main())
    except KdnsError as e:
        print(e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 2
    finally:
        if pidfile:
            try:
                os.unlink(pidfile)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
