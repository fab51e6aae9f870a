"""loadbalance handler: reorders NOERROR answers from the rest of the chain (never in place)."""

from __future__ import annotations

import asyncio
import random

import dns.message
import dns.rcode
import dns.rdatatype

from kdns.errors import KdnsError
from kdns.log import plugin_log
from kdns.plugin import Handler, Plugin, Request
from kdns.tasks import cancel_and_wait

from .parse import WEIGHTED, LoadBalanceConfig
from .reorder import PreferOrder, prefer, reorderable, round_robin, uniform_rank
from .weights import WeightFileError, Weights, digest, parse_weights, weighted

log = plugin_log("loadbalance")

_TRANSFERS = frozenset({dns.rdatatype.AXFR, dns.rdatatype.IXFR})


class LoadBalance(Plugin):
    name = "loadbalance"

    def __init__(self, next: Handler, cfg: LoadBalanceConfig) -> None:
        super().__init__(next)
        self.cfg = cfg
        self.rng = random.Random()
        self.prefer_order = PreferOrder(cfg.prefer)
        self.weights: Weights = {}
        self._digest = b""
        self._task: asyncio.Task[None] | None = None

    async def serve(self, req: Request) -> dns.message.Message:
        resp = await self.next.serve(req)
        if resp.rcode() != dns.rcode.NOERROR or req.qtype in _TRANSFERS:
            return resp
        if self.cfg.policy == WEIGHTED:
            out = weighted(resp, self.weights, self.rng)
        else:
            out = round_robin(resp, self.rng)
        if self.cfg.prefer:
            out = prefer(out, self.prefer_order, copy=out is resp)
        if not reorderable(resp):
            return out  # at most one record to move per section: any replay is the same
        if self.cfg.policy == WEIGHTED or (
                self.cfg.prefer and not uniform_rank(out, self.prefer_order)):
            req.not_reusable()  # a replayed rotation would break weights and preferences
        else:
            req.rotating()  # the fast path replays stored answers rotated, one turn per query
        return out

    # --- weighted policy: the weight file is (re)read in the background ----------------
    async def start(self) -> None:
        if self.cfg.policy != WEIGHTED:
            return
        try:
            self.update_weights()
        except OSError as e:
            if self.cfg.reload == 0:
                raise KdnsError(f"plugin/loadbalance: weight file open error: "
                                f"{self.cfg.weight_file}: {e.strerror or e}") from None
            log.warning("Failed to open weight file:%s: %s. Will try again in %ss",
                        self.cfg.weight_file, e.strerror or e, _secs(self.cfg.reload))
        except WeightFileError as e:
            raise KdnsError(f"plugin/loadbalance: {e}") from None
        if self.cfg.reload > 0:
            self._task = asyncio.create_task(self._reload_loop(), name="loadbalance-weights")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.reload)
            try:
                self.update_weights()
            except (OSError, WeightFileError) as e:
                log.error("%s", e)  # keep the weights we have

    def update_weights(self) -> bool:
        """Re-read the weight file when its content changed; True when weights were replaced."""
        with open(self.cfg.weight_file, "rb") as f:
            data = f.read()
        d = digest(data)
        if d == self._digest:
            return False
        weights = parse_weights(data.decode("utf-8", errors="replace"), self.cfg.weight_file)
        self.weights, self._digest = weights, d
        log.info("Successfully reloaded weight file %s", self.cfg.weight_file)
        return True


def _secs(v: float) -> str:
    return str(int(v)) if v == int(v) else str(v)
