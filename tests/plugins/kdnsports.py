"""Start the real kdns with side HTTP ports, retrying when a chosen port was taken meanwhile.

``free_port()`` can only pick a port that is free *now*; with other suites running on the same
machine a port may be taken before kdns binds it. ``run_kdns_ports`` fills ``{http0}``,
``{http1}``, ... (and ``{port}``, the DNS port) with fresh ports, waits until kdns serves DNS and
every HTTP port accepts, and starts over with new ports if kdns exited with "address already in
use". Any other failure is raised at once.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from tests.kdnsproc import KdnsProcess, free_port, run_kdns

ATTEMPTS = 4


class PortTaken(Exception):
    pass


def wait_http(k: KdnsProcess, port: int, timeout: float = 15.0) -> None:
    """The DNS port accepts before the side HTTP servers start: wait for the HTTP port too."""
    deadline = time.monotonic() + timeout
    while True:
        if k.proc.poll() is not None:
            if "already in use" in k.output.lower():
                raise PortTaken(k.output)
            raise AssertionError(f"kdns exited with {k.proc.returncode}:\n{k.output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on {port}:\n{k.output}") from None
            time.sleep(0.05)


@contextmanager
def run_kdns_ports(template: str, http: int = 0) -> Iterator[tuple[KdnsProcess, list[int]]]:
    last = ""
    for _ in range(ATTEMPTS):
        ports = [free_port() for _ in range(http)]
        text = template
        for i, p in enumerate(ports):
            text = text.replace(f"{{http{i}}}", str(p))
        with ExitStack() as stack:
            try:
                k = stack.enter_context(run_kdns(text))
                for p in ports:
                    wait_http(k, p)
            except PortTaken as e:
                last = str(e)
                continue
            except AssertionError as e:
                if "already in use" not in str(e).lower():
                    raise
                last = str(e)
                continue
            yield k, ports
            return
    raise AssertionError(f"ports kept being taken ({ATTEMPTS} attempts):\n{last}")
