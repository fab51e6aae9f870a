"""Keep the garbage collector off the records of a large cluster (opt-in, process-wide).

At 100k endpoints the reduced records are ~130k GC-tracked objects. Every full (generation 2)
collection walks all of them: 50-150 ms with the event loop stopped, and a growing heap triggers
one each time it grows by 25 %, several times per sync or relist (measured with
``loadtest/k8s_sync.py``). ``gc.freeze()`` moves everything allocated so far into the permanent
generation, which collections skip; the records are acyclic, so reference counting still frees
them when they are replaced. Call ``freeze_when_synced`` once from whoever owns the process
(server or plugin): it is a process-wide policy, so the reflector never does it by itself.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterable
from typing import Any

from kdns.k8s.reflector import Reflector


def freeze() -> int:
    """Collect what is garbage now, then freeze the rest; returns the frozen object count."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def freeze_when_synced(reflectors: Iterable[Reflector[Any]]) -> int:
    """Wait until every reflector delivered its first list, then ``freeze()``."""
    await asyncio.gather(*(r.synced.wait() for r in reflectors))
    return freeze()
