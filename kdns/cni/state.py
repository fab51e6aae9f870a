"""Per-attachment state kept by kdns-cni, so DEL and GC work without the pod namespace."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

from kdns.cni.errors import IO_FAILURE, CniError


@dataclass(frozen=True, slots=True)
class AttachmentState:
    container_id: str
    ifname: str
    netns: str
    bridge: str
    host_veth: str
    addresses: tuple[str, ...]  # CIDR strings as put on the container interface
    masquerade: bool


def _dir(state_dir: str, network: str) -> str:
    return os.path.join(state_dir, network)


def _path(state_dir: str, network: str, container_id: str, ifname: str) -> str:
    return os.path.join(_dir(state_dir, network), f"{container_id}-{ifname}.json")


def save(state_dir: str, network: str, st: AttachmentState) -> None:
    path = _path(state_dir, network, st.container_id, st.ifname)
    try:
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(asdict(st), f)
        os.replace(tmp, path)  # atomic: a crash never leaves half a state file
    except OSError as e:
        raise CniError(IO_FAILURE, f"cannot write state {path}", str(e)) from e


def _decode(text: str) -> AttachmentState | None:
    try:
        raw = json.loads(text)
        return AttachmentState(
            container_id=str(raw["container_id"]), ifname=str(raw["ifname"]),
            netns=str(raw["netns"]), bridge=str(raw["bridge"]),
            host_veth=str(raw["host_veth"]),
            addresses=tuple(str(a) for a in raw["addresses"]),
            masquerade=bool(raw["masquerade"]),
        )
    except (ValueError, KeyError, TypeError):
        return None  # a corrupt file must not block DEL; it is removed with the attachment


def load(state_dir: str, network: str, container_id: str, ifname: str) -> AttachmentState | None:
    try:
        with open(_path(state_dir, network, container_id, ifname), encoding="utf-8") as f:
            return _decode(f.read())
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CniError(IO_FAILURE, "cannot read attachment state", str(e)) from e


def remove(state_dir: str, network: str, container_id: str, ifname: str) -> None:
    try:
        os.unlink(_path(state_dir, network, container_id, ifname))
    except FileNotFoundError:
        pass
    except OSError as e:
        raise CniError(IO_FAILURE, "cannot remove attachment state", str(e)) from e


def load_all(state_dir: str, network: str) -> list[AttachmentState]:
    try:
        names = sorted(os.listdir(_dir(state_dir, network)))
    except FileNotFoundError:
        return []
    out: list[AttachmentState] = []
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(_dir(state_dir, network), name), encoding="utf-8") as f:
                st = _decode(f.read())
        except OSError:
            continue
        if st is not None:
            out.append(st)
    return out
