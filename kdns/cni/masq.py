"""ipMasq rules in kdns-cni's own nftables table.

Layout (table inet kdns-cni): verdict maps masq4/masq6 keyed by pod address, one element per
pod address whose comment names the attachment; the element jumps to a per-subnet chain that
returns for traffic staying in the pod subnet or going to multicast, and masquerades the rest.
A postrouting nat chain looks the source address up in the maps. DEL removes the elements
whose comment names the attachment, so it needs neither the pod namespace nor prevResult:
the reference plugin leaks its NAT chain when the namespace is gone (plugins#810).

Rendering and parsing are pure; `apply` and `list_elements` are the only I/O (`nft`).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Final

from kdns.cni.errors import IO_FAILURE, CniError
from kdns.cni.result import IPInterface

TABLE: Final = "kdns-cni"
COMMENT_MAX: Final = 127  # nft limits comments to 128 bytes including the NUL
_MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}


@dataclass(frozen=True, slots=True)
class Element:
    family: int  # 4 or 6
    address: str
    comment: str
    target: str


def attachment_comment(network: str, container_id: str, ifname: str) -> str:
    """What DEL and GC match on, so it must be exactly what nft stores and lists back:
    printable ASCII without quotes or backslashes, at most COMMENT_MAX bytes."""
    text = f"{container_id} {ifname} {network}"
    safe = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)
    return safe[:COMMENT_MAX]


def belongs_to(element: Element, network: str) -> bool:
    """Whether an element was added for `network` (comments may be truncated)."""
    cid, _, rest = element.comment.partition(" ")
    ifname, _, _ = rest.partition(" ")
    return attachment_comment(network, cid, ifname) == element.comment


def _quote(text: str) -> str:
    # attachment_comment already removed these; a comment must never break out of the script.
    return '"' + text.replace("\\", "?").replace('"', "?").replace("\n", "?") + '"'


def chain_name(addr: IPInterface) -> str:
    # nft identifiers cannot be quoted in chain positions and ':' is not allowed unquoted.
    net = addr.network
    return f"masq-{net.network_address}-{net.prefixlen}".replace(":", "_")


def render_base() -> list[str]:
    return [
        f"add table inet {TABLE}",
        f"add map inet {TABLE} masq4 {{ type ipv4_addr : verdict; }}",
        f"add map inet {TABLE} masq6 {{ type ipv6_addr : verdict; }}",
        f"add chain inet {TABLE} postrouting"
        " { type nat hook postrouting priority srcnat; policy accept; }",
        f"flush chain inet {TABLE} postrouting",
        f"add rule inet {TABLE} postrouting ip saddr vmap @masq4",
        f"add rule inet {TABLE} postrouting ip6 saddr vmap @masq6",
    ]


def render_add(addresses: list[IPInterface], comment: str, existing: list[Element]) -> str:
    """`existing` elements for the same addresses (stale, from a leaked attachment) are
    replaced in the same atomic transaction."""
    lines = render_base()
    ours = {str(a.ip) for a in addresses}
    lines += render_delete([e for e in existing if e.address in ours]).splitlines()
    for addr in addresses:
        fam = "ip" if addr.version == 4 else "ip6"
        chain = chain_name(addr)
        lines += [
            f'add chain inet {TABLE} {chain}',
            f'flush chain inet {TABLE} {chain}',
            f'add rule inet {TABLE} {chain} {fam} daddr {addr.network} return',
            f'add rule inet {TABLE} {chain} {fam} daddr {_MULTICAST[addr.version]} return',
            f'add rule inet {TABLE} {chain} masquerade',
        ]
        lines.append(f"add element inet {TABLE} masq{addr.version} "
                     f"{{ {addr.ip} comment {_quote(comment)} : jump {chain} }}")
    return "\n".join(lines) + "\n"


def render_delete(elements: list[Element]) -> str:
    return "".join(f"delete element inet {TABLE} masq{e.family} {{ {e.address} }}\n"
                   for e in elements)


def parse_elements(nft_json: str) -> list[Element]:
    """Elements of masq4/masq6 from `nft -j list table inet kdns-cni`."""
    out: list[Element] = []
    for obj in json.loads(nft_json).get("nftables", []):
        m = obj.get("map")
        if not m or m.get("name") not in ("masq4", "masq6"):
            continue
        family = 4 if m["name"] == "masq4" else 6
        for key, verdict in m.get("elem", []):
            inner = key.get("elem", {}) if isinstance(key, dict) else {}
            address = inner.get("val", key) if inner else key
            target = (verdict.get("jump") or verdict.get("goto") or {}).get("target", "")
            out.append(Element(family, str(address), inner.get("comment", ""), target))
    return out


def _nft(args: list[str], script: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["nft", *args], input=script, capture_output=True, text=True,
                              timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise CniError(IO_FAILURE, "cannot run nft", str(e)) from e


def apply(script: str) -> None:
    if not script:
        return
    proc = _nft(["-f", "-"], script)
    if proc.returncode != 0:
        raise CniError(IO_FAILURE, "nftables transaction failed", proc.stderr.strip())


def list_elements() -> list[Element]:
    proc = _nft(["-j", "list", "table", "inet", TABLE])
    if proc.returncode != 0:
        if "No such file or directory" in proc.stderr:
            return []  # no table yet: nothing was ever masqueraded here
        raise CniError(IO_FAILURE, "cannot list nftables table", proc.stderr.strip())
    return parse_elements(proc.stdout)


def owned_by(elements: list[Element], comment: str) -> list[Element]:
    return [e for e in elements if e.comment == comment]

