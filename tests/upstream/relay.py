"""A tiny UDP DNS relay (a stub like systemd-resolved's 127.0.0.53): forwards every datagram to
a target and relays the answer back. Used to build a loop kdns -> relay -> kdns in tests."""

from __future__ import annotations

import asyncio
import threading

from tests.kdnsproc import free_port


class Relay:
    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self.port = free_port()
        self.forwarded = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Future[None]] = set()

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def __enter__(self) -> Relay:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        async def _stop() -> None:
            if self._transport is not None:
                self._transport.close()
            me = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not me]
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        relay = self

        class Server(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                task = asyncio.ensure_future(relay._forward(data, addr))
                relay._tasks.add(task)
                task.add_done_callback(relay._tasks.discard)

        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            Server, local_addr=(self.host, self.port))

    async def _forward(self, data: bytes, client: tuple[str, int]) -> None:
        self.forwarded += 1
        loop = asyncio.get_running_loop()
        got: asyncio.Future[bytes] = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, reply: bytes, addr: tuple[str, int]) -> None:
                if not got.done():
                    got.set_result(reply)

        transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=self.target)
        try:
            transport.sendto(data)
            reply = await asyncio.wait_for(got, 3)
            if self._transport is not None:
                self._transport.sendto(reply, client)
        except (TimeoutError, OSError):
            pass
        finally:
            transport.close()
