"""Running a delegated plugin (IPAM) the way the spec says: same env, same stdin, via CNI_PATH."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from typing import Final

from kdns.cni.errors import DELEGATE_FAILURE, CniError
from kdns.cni.result import Result, parse_result

# kdns-ipam runs in-process: the same code the binary would run, without a second
# interpreter start (about 0.2 s). Any other IPAM type is executed from CNI_PATH.
IN_PROCESS: Final = "kdns-ipam"
TIMEOUT_S: Final = 120


def find_plugin(name: str, path: tuple[str, ...]) -> str:
    for directory in path:
        candidate = os.path.join(directory, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise CniError(DELEGATE_FAILURE, f"failed to find plugin {name!r} in path {list(path)}")


def _run(name: str, environ: Mapping[str, str], stdin: bytes) -> tuple[int, str]:
    if name == IN_PROCESS:
        from kdns.cni import skel
        from kdns.cni.ipam_main import IpamPlugin

        return skel.dispatch(IpamPlugin(), environ, stdin)
    path = tuple(p for p in environ.get("CNI_PATH", "").split(":") if p)
    binary = find_plugin(name, path)
    try:
        proc = subprocess.run([binary], input=stdin, env=dict(environ), capture_output=True,
                              timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CniError(DELEGATE_FAILURE, f"cannot run {binary}", str(e)) from e
    if proc.stderr:  # the spec wants the delegate's stderr passed through
        os.write(2, proc.stderr)
    return proc.returncode, proc.stdout.decode(errors="replace")


def call(name: str, command: str, environ: Mapping[str, str], stdin: bytes) -> Result | None:
    """Runs `name` with CNI_COMMAND=command; returns its result on ADD, raises its error."""
    env = {**environ, "CNI_COMMAND": command}
    code, out = _run(name, env, stdin)
    if code != 0:
        raise _delegate_error(name, out)
    if command != "ADD":
        return None
    try:
        return parse_result(json.loads(out))
    except ValueError as e:
        raise CniError(DELEGATE_FAILURE, f"{name} returned invalid JSON", out[:200]) from e


def _delegate_error(name: str, out: str) -> CniError:
    try:
        raw = json.loads(out)
        code, msg = int(raw.get("code", DELEGATE_FAILURE)), str(raw.get("msg", ""))
        details = str(raw.get("details", ""))
    except (ValueError, AttributeError, TypeError):
        return CniError(DELEGATE_FAILURE, f"{name} failed", out.strip()[:500])
    # Keep the delegate's code: 11 "try again", 50 "not available" etc. must reach the runtime.
    return CniError(code, f"{name}: {msg}", details)
