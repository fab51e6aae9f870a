"""Chain and set names in kube-proxy's nftables-mode form (pkg/proxy/nftables/proxier.go).

``service-<HASH>-ns/svc/proto/port`` where HASH is the first 8 characters of the base32 SHA-256
of the rest, so names stay unique when truncated and look different at a glance. Endpoint
chains append ``__<ip>/<port>`` (IPv6 colons become dots: nft names cannot hold ':').
"""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import Final

from kdns.proxy.model import Endpoint, ServicePort

NAME_LENGTH_MAX: Final = 255  # the kernel's NFT_NAME_MAXLEN less the terminating NUL
BASE_LENGTH_MAX: Final = NAME_LENGTH_MAX - len("external-")  # room for the longest prefix


@functools.lru_cache(maxsize=1 << 16)
def hash_and_truncate(name: str, salt: str = "") -> str:
    # base32 encodes 5-byte groups independently: the first 8 characters of the full
    # encoding are the encoding of the first 5 bytes.
    digest = base64.b32encode(hashlib.sha256((name + salt).encode()).digest()[:5]).decode()
    out = f"{digest}-{name}"
    if len(out) > BASE_LENGTH_MAX:
        out = out[: BASE_LENGTH_MAX - 3] + "..."
    return out


def port_base(sp: ServicePort) -> str:
    return hash_and_truncate(f"{sp.namespace}/{sp.name}/{sp.protocol}/{sp.port_name}")


def cluster_chain(sp: ServicePort) -> str:
    return f"service-{port_base(sp)}"


def local_chain(sp: ServicePort) -> str:
    return f"local-{port_base(sp)}"


def external_chain(sp: ServicePort) -> str:
    return f"external-{port_base(sp)}"


def firewall_chain(sp: ServicePort) -> str:
    return f"firewall-{port_base(sp)}"


def _endpoint_base(sp: ServicePort, ep: Endpoint) -> str:
    ip = ep.ip.replace(":", ".")
    return f"{sp.namespace}/{sp.name}/{sp.protocol}/{sp.port_name}__{ip}/{ep.port}"


def endpoint_chain(sp: ServicePort, ep: Endpoint) -> str:
    return f"endpoint-{hash_and_truncate(_endpoint_base(sp, ep))}"


def affinity_set(sp: ServicePort, ep: Endpoint) -> str:
    # Unlike kube-proxy, the timeout is part of the hashed name: a set's timeout cannot be
    # changed in place, so a new timeout means a new set (and the old one goes stale).
    salt = f"@{sp.affinity_timeout}"
    return f"affinity-{hash_and_truncate(_endpoint_base(sp, ep), salt)}"
