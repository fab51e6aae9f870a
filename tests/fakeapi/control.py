"""Control API of a standalone fake API server process, and its client.

The control listener is separate from the API listener so that ``down`` (which closes the API
listener) leaves it reachable. ``POST /call/<method>`` with a JSON object of keyword arguments
calls that FakeApi method; ``GET /requests`` returns the request log.

    proc = FakeApiProcess.start(objects_dir="fixtures/")   # python -m tests.fakeapi
    proc.api.put(objects.service(...)); proc.api.drop_watches(); proc.api.down()
    proc.stop()
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakeapi.app import FakeApi

_SYNC = {"put", "put_many", "delete", "load", "objects", "fail_next", "gone_next", "hang_next",
         "drop_next", "clear_faults", "release_hangs", "drop_watches", "end_watches",
         "expire_watches", "stall_watches", "send_bookmarks", "compact",
         "expire_continue_tokens"}
_ASYNC = {"down", "up", "blackhole"}


def control_app(api: FakeApi) -> web.Application:
    async def call(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        kwargs = await request.json() if request.can_read_body else {}
        if name in _SYNC:
            result = getattr(api, name)(**kwargs)
        elif name in _ASYNC:
            result = await getattr(api, name)(**kwargs)
        elif name == "set_tokens":
            api.tokens = set(kwargs["tokens"]) if kwargs.get("tokens") is not None else None
            result = None
        elif name == "access_summary":
            result = sorted(api.access_summary())
        elif name == "state":
            result = {"url": api.url, "resource_version": api.resource_version,
                      "active_watches": api.active_watches, "hanging": api.hanging}
        else:
            return web.json_response({"error": f"unknown method {name}"}, status=404)
        return web.json_response({"result": result})

    async def requests(request: web.Request) -> web.Response:
        records = [dataclasses.asdict(r) for r in api.requests]
        if request.query.get("clear"):
            api.requests.clear()
        return web.json_response(records)

    app = web.Application()
    app.router.add_post("/call/{name}", call)
    app.router.add_get("/requests", requests)
    return app


class RemoteFakeApi:
    """Calls FakeApi methods over the control API: ``remote.put(obj)``, ``remote.down()``."""

    def __init__(self, control_url: str) -> None:
        self.control_url = control_url.rstrip("/")

    def _post(self, path: str, body: Any) -> Any:
        req = urllib.request.Request(self.control_url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())["result"]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda **kwargs: self._post(f"/call/{name}", kwargs)

    def requests(self, clear: bool = False) -> list[dict[str, Any]]:
        url = self.control_url + "/requests" + ("?clear=1" if clear else "")
        with urllib.request.urlopen(url, timeout=30) as resp:
            result: list[dict[str, Any]] = json.loads(resp.read())
            return result


class FakeApiProcess:
    """``python -m tests.fakeapi`` as a child process."""

    def __init__(self, proc: subprocess.Popen[str], info: dict[str, Any]) -> None:
        self.proc = proc
        self.url: str = info["url"]
        self.control_url: str = info["control"]
        self.ca_file: str | None = info.get("ca")
        self.api = RemoteFakeApi(self.control_url)

    @classmethod
    def start(cls, *args: str, objects_dir: str | Path | None = None) -> FakeApiProcess:
        cmd = [sys.executable, "-m", "tests.fakeapi", "--port", "0", *args]
        if objects_dir is not None:
            cmd += ["--objects", str(objects_dir)]
        root = Path(__file__).resolve().parents[2]
        proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait(10)
            raise RuntimeError(f"fake API server exited with {proc.returncode}")
        return cls(proc, json.loads(line))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
