"""kubernetes option parsing (CoreDNS plugin/kubernetes/setup.go ParseStanza), pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from kdns.corefile.dispenser import Dispenser
from kdns.plugin import Controller

from .names import is_reverse, normalize_zone
from .selector import Selector, SelectorError, parse_selector

DEFAULT_TTL: Final = 5
MAX_TTL: Final = 3600
DEFAULT_STARTUP_TIMEOUT: Final = 5.0
POD_MODES: Final = ("disabled", "insecure", "verified")


@dataclass(frozen=True, slots=True)
class KubernetesConfig:
    zones: tuple[str, ...]  # lower-case fqdn, CIDRs expanded to reverse zones
    primary_zone: str  # first non-reverse zone: PTR targets point into it
    endpoint: str | None = None
    tls: tuple[str, str, str] | None = None  # CERT KEY CACERT
    kubeconfig: str | None = None
    kubecontext: str | None = None
    apiserver_qps: float | None = None
    apiserver_burst: int | None = None
    apiserver_max_inflight: int | None = None
    namespaces: frozenset[str] = frozenset()
    namespace_labels: Selector | None = None
    labels: Selector | None = None
    pods: str = "disabled"
    endpoint_pod_names: bool = False
    ttl: int = DEFAULT_TTL
    noendpoints: bool = False
    fallthrough: tuple[str, ...] | None = None  # None: off; ("." ,) covers every name
    ignore_empty_service: bool = False
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    zonal: bool = False
    manifests: tuple[str, ...] = ()  # offline mode: objects from YAML/JSON files, no API
    guard_tld_namespaces: bool = False  # hide namespaces named like a public TLD, or svc
    guard_except: frozenset[str] = frozenset()  # TLD-named namespaces served anyway
    extra_endpoints: tuple[str, ...] = field(default=(), compare=False)  # ignored, warned

    def namespace_allowed(self, ns: str) -> bool:
        """The ``namespaces`` allow-list (empty: every namespace)."""
        return not self.namespaces or ns in self.namespaces

    def falls_through(self, qname: str) -> bool:
        """Whether a name error for ``qname`` (lower-case fqdn) goes to the next plugin."""
        if self.fallthrough is None:
            return False
        return any(z == "." or qname == z or qname.endswith("." + z) for z in self.fallthrough)


def parse(c: Controller) -> KubernetesConfig:
    d = c.d
    args = d.args()
    zones: list[str] = []
    for a in args or list(c.zones):
        try:
            zones += normalize_zone(a)
        except ValueError:
            raise d.err(f"invalid zone or CIDR: {a!r}") from None
    zones = list(dict.fromkeys(zones))
    primary = next((z for z in zones if not is_reverse(z)), None)
    if primary is None:
        raise d.err("non-reverse zone name must be used")
    opts: dict[str, object] = {}
    seen_ns: list[str] = []
    for key in d.block():
        match key:
            case "endpoint":
                urls = d.args(min=1)
                parts = urlsplit(urls[0])
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise d.err(f"invalid endpoint {urls[0]!r}: want http(s)://HOST[:PORT]")
                opts["endpoint"], opts["extra_endpoints"] = urls[0], tuple(urls[1:])
            case "tls":
                cert, tkey, ca = d.args(min=3, max=3)
                opts["tls"] = (cert, tkey, ca)
            case "kubeconfig":
                kc = d.args(min=1, max=2)
                opts["kubeconfig"] = kc[0]
                opts["kubecontext"] = kc[1] if len(kc) == 2 else None
            case "apiserver_qps":
                opts["apiserver_qps"] = _float(d, d.args(min=1, max=1)[0], "apiserver_qps")
            case "apiserver_burst":
                opts["apiserver_burst"] = d.to_int(d.args(min=1, max=1)[0], "apiserver_burst", 0)
            case "apiserver_max_inflight":
                opts["apiserver_max_inflight"] = d.to_int(
                    d.args(min=1, max=1)[0], "apiserver_max_inflight", 0)
            case "namespaces":
                seen_ns += d.args(min=1)
            case "namespace_labels":
                opts["namespace_labels"] = _selector(d, d.args(min=1), "namespace_label")
            case "labels":
                opts["labels"] = _selector(d, d.args(min=1), "label")
            case "pods":
                mode = d.args(min=1, max=1)[0]
                if mode not in POD_MODES:
                    raise d.err(f"wrong value for pods: {mode},  must be one of: "
                                "disabled, verified, insecure")
                opts["pods"] = mode
            case "endpoint_pod_names":
                d.args(max=0)
                opts["endpoint_pod_names"] = True
            case "ttl":
                opts["ttl"] = _ttl(d, d.args(min=1, max=1)[0])
            case "noendpoints":
                d.args(max=0)
                opts["noendpoints"] = True
            case "fallthrough":
                fz = d.args()
                opts["fallthrough"] = tuple(z for a in fz for z in normalize_zone(a)) or (".",)
            case "ignore":
                what = d.args(min=1, max=1)[0]
                if what != "empty_service":
                    raise d.err(f"unable to parse ignore value: '{what}'")
                opts["ignore_empty_service"] = True
            case "startup_timeout":
                t = d.to_duration(d.args(min=1, max=1)[0], "startup_timeout")
                if t < 0:
                    raise d.err("startup_timeout must not be negative")
                opts["startup_timeout"] = t
            case "zonal":
                d.args(max=0)
                opts["zonal"] = True
            case "manifests":
                opts["manifests"] = tuple(d.args(min=1))
            case "guard_tld_namespaces":
                opts["guard_tld_namespaces"] = True
                opts["guard_except"] = _guard_except(d, d.args())
            case "multicluster":
                raise d.err("multicluster is not supported by kdns (no ServiceImport support)")
            case _:
                raise d.unknown_property()
    if seen_ns:
        opts["namespaces"] = frozenset(seen_ns)
    if seen_ns and opts.get("namespace_labels") is not None:
        raise d.err("namespaces and namespace_labels cannot both be set")
    if opts.get("zonal") and opts.get("noendpoints"):
        raise d.err("zonal and noendpoints cannot both be set")
    if opts.get("manifests") and (opts.get("endpoint") or opts.get("kubeconfig")):
        raise d.err("manifests cannot be combined with endpoint or kubeconfig")
    return KubernetesConfig(zones=tuple(zones), primary_zone=primary, **opts)  # type: ignore[arg-type]


def _guard_except(d: Dispenser, args: list[str]) -> frozenset[str]:
    """``guard_tld_namespaces [except NAMESPACE...]``."""
    if not args:
        return frozenset()
    if args[0] != "except" or len(args) == 1:
        raise d.err(f"guard_tld_namespaces takes 'except NAMESPACE...', not {' '.join(args)!r}")
    return frozenset(a.lower() for a in args[1:])


def _ttl(d: Dispenser, value: str) -> int:
    try:
        t = int(value, 10)
    except ValueError:
        raise d.err(f"ttl must be an integer: {value!r}") from None
    if t < 0 or t > MAX_TTL:
        raise d.err(f"ttl must be in range [0, {MAX_TTL}]: {t}")
    return t


def _float(d: Dispenser, value: str, what: str) -> float:
    try:
        v = float(value)
    except ValueError:
        raise d.err(f"{what} must be a number: {value!r}") from None
    if v < 0 or v != v:
        raise d.err(f"{what} must not be negative: {value}")
    return v


def _selector(d: Dispenser, args: list[str], what: str) -> Selector:
    text = " ".join(args)
    try:
        return parse_selector(text)
    except SelectorError as e:
        raise d.err(f"unable to parse {what} selector value: '{text}': {e}") from None
