"""``run_kdns`` with a retry when the chosen port was taken in the meantime.

``free_port`` checks a port and releases it; other test runs on the machine (and every fresh UDP
socket forward opens) use the same ephemeral range, so now and then kdns finds the port taken.
That is a property of the test machine, not of kdns: start again on another port.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from tests.kdnsproc import KdnsProcess, run_kdns

ATTEMPTS = 3


@contextmanager
def kdns(corefile: str, **kw: object) -> Iterator[KdnsProcess]:
    """Like ``tests.kdnsproc.run_kdns`` (``{port}`` placeholder), retried on EADDRINUSE."""
    error: AssertionError | None = None
    for _ in range(ATTEMPTS):
        stack = ExitStack()
        try:
            k = stack.enter_context(run_kdns(corefile, **kw))  # type: ignore[arg-type]
        except AssertionError as e:
            stack.close()
            if "Address already in use" not in str(e) or "port" in kw:
                raise
            error = e
            continue
        with stack:
            yield k
        return
    assert error is not None
    raise error
