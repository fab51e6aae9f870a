"""The plugin side of the CNI protocol: env + stdin in, result or error JSON out.

Like libcni's skel package: it validates the invocation, gates commands by spec version,
decodes prevResult, dispatches to a Plugin and renders whatever comes back. Everything the
runtime sees on stdout is produced here, so every failure path yields spec-shaped error JSON.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kdns.cni import version
from kdns.cni.env import CniEnv, parse_env
from kdns.cni.errors import (
    DECODE_FAILURE,
    INCOMPATIBLE_VERSION,
    INVALID_CONFIG,
    IO_FAILURE,
    PLUGIN_FAILURE,
    CniError,
)
from kdns.cni.ipam.plugin import Attachment
from kdns.cni.result import Result, parse_result, render_result


@dataclass(frozen=True, slots=True)
class Request:
    env: CniEnv
    conf: dict[str, Any]
    stdin: bytes  # passed unchanged to delegated IPAM plugins
    cni_version: str
    prev_result: Result | None


class Plugin(Protocol):
    def add(self, req: Request) -> Result: ...
    def delete(self, req: Request) -> None: ...
    def check(self, req: Request) -> None: ...
    def status(self, req: Request) -> None: ...
    def gc(self, req: Request, valid: set[Attachment]) -> None: ...


_MIN_VERSION = {"CHECK": "0.4.0", "STATUS": "1.1.0", "GC": "1.1.0"}


def decode_config(stdin: bytes) -> dict[str, Any]:
    try:
        conf = json.loads(stdin)
    except (ValueError, UnicodeDecodeError) as e:
        raise CniError(DECODE_FAILURE, "failed to decode network configuration", str(e)) from e
    if not isinstance(conf, dict):
        raise CniError(DECODE_FAILURE, "network configuration is not a JSON object")
    return conf


def config_version(conf: dict[str, Any]) -> str:
    raw = conf.get("cniVersion", "")
    if not isinstance(raw, str):
        raise CniError(DECODE_FAILURE, "cniVersion is not a string", repr(raw))
    return version.require_supported(raw)


def valid_attachments(conf: dict[str, Any]) -> set[Attachment]:
    # spec-v1.1.0 says cni.dev/attachments, libcni sends cni.dev/valid-attachments: accept both.
    raw = conf.get("cni.dev/valid-attachments", conf.get("cni.dev/attachments"))
    if raw is None:
        raise CniError(INVALID_CONFIG, "GC needs cni.dev/valid-attachments")
    if not isinstance(raw, list):
        raise CniError(INVALID_CONFIG, "cni.dev/valid-attachments must be a list", repr(raw))
    out: set[Attachment] = set()
    for item in raw:
        if (not isinstance(item, dict) or not isinstance(item.get("containerID"), str)
                or not isinstance(item.get("ifname"), str)):
            raise CniError(INVALID_CONFIG, "invalid attachment", repr(item))
        out.add(Attachment(item["containerID"], item["ifname"]))
    return out


def _version_reply(stdin: bytes) -> dict[str, Any]:
    requested = version.LATEST
    if stdin.strip():
        raw = decode_config(stdin).get("cniVersion")
        if isinstance(raw, str) and raw:
            requested = raw
    return {"cniVersion": requested, "supportedVersions": list(version.SUPPORTED_VERSIONS)}


def build_request(env: CniEnv, stdin: bytes) -> Request:
    conf = decode_config(stdin)
    cni_version = config_version(conf)
    minimum = _MIN_VERSION.get(env.command)
    if minimum and not version.at_least(cni_version, minimum):
        raise CniError(INCOMPATIBLE_VERSION, f"config version does not allow {env.command}",
                       f"{env.command} needs cniVersion {minimum} or later")
    prev = conf.get("prevResult")
    return Request(env=env, conf=conf, stdin=stdin, cni_version=cni_version,
                   prev_result=parse_result(prev) if prev else None)


def dispatch(plugin: Plugin, environ: Mapping[str, str], stdin: bytes) -> tuple[int, str]:
    """Returns (exit code, stdout text). Never raises."""
    reply_version = _best_effort_version(stdin)
    try:
        env = parse_env(environ)
        if env.command == "VERSION":
            return 0, json.dumps(_version_reply(stdin))
        req = build_request(env, stdin)
        reply_version = req.cni_version
        match env.command:
            case "ADD":
                return 0, json.dumps(render_result(plugin.add(req), req.cni_version))
            case "DEL":
                plugin.delete(req)
            case "CHECK":
                plugin.check(req)
            case "STATUS":
                plugin.status(req)
            case "GC":
                plugin.gc(req, valid_attachments(req.conf))
        return 0, ""
    except CniError as e:
        return 1, json.dumps(e.to_json(reply_version))
    except OSError as e:
        return 1, json.dumps(CniError(IO_FAILURE, "I/O failure", str(e)).to_json(reply_version))
    except Exception as e:  # a bug must still produce error JSON, never a bare traceback
        traceback.print_exc(file=sys.stderr)
        err = CniError(PLUGIN_FAILURE, f"internal error: {type(e).__name__}", str(e))
        return 1, json.dumps(err.to_json(reply_version))


def _best_effort_version(stdin: bytes) -> str:
    try:
        raw = json.loads(stdin).get("cniVersion")
    except Exception:
        return version.LATEST
    return raw if isinstance(raw, str) and raw in version.SUPPORTED_VERSIONS else version.LATEST


def main(plugin: Plugin, environ: Mapping[str, str]) -> int:
    stdin = sys.stdin.buffer.read()
    code, out = dispatch(plugin, environ, stdin)
    if out:
        sys.stdout.write(out + "\n")
    return code
