"""Where the Kubernetes API server is and how to authenticate to it.

Three sources, as in CoreDNS: an explicit ``endpoint`` URL, a ``kubeconfig`` file (resolved by
kubernetes-asyncio's loader, imported only then: it costs ~40 MiB of RSS), or the in-cluster
service account. TLS verification is always on for https; plain http is allowed for tests and
local use. A bearer token read from a file is re-read whenever the file changes, because the
kubelet rotates projected service-account tokens in place.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from kdns.k8s.errors import ConfigError

SERVICE_ACCOUNT_DIR: Final = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_ACCOUNT_TOKEN: Final = f"{SERVICE_ACCOUNT_DIR}/token"
SERVICE_ACCOUNT_CA: Final = f"{SERVICE_ACCOUNT_DIR}/ca.crt"


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Connection settings for one API server.

    ``token_file`` wins over ``token``; it is re-read when it changes (see ``TokenFile``).
    ``ca_file``/``ca_data`` (PEM) replace the system trust store when given.
    ``reload_from`` (kubeconfig path, context) is set when the credentials come from an exec
    plugin or auth provider: the client re-resolves the kubeconfig after a 401.
    """

    base_url: str
    token: str | None = None
    token_file: str | None = None
    ca_file: str | None = None
    ca_data: str | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    tls_server_name: str | None = None
    reload_from: tuple[str, str | None] | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"invalid API server URL {self.base_url!r}: want http(s)://HOST[:PORT]"
            )
        try:
            parts.port  # noqa: B018 - validates the port number
        except ValueError as exc:
            raise ConfigError(f"invalid API server URL {self.base_url!r}: {exc}") from None
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ConfigError("a client certificate needs both a cert file and a key file")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    @property
    def is_https(self) -> bool:
        return self.base_url.startswith("https:")

    @property
    def host(self) -> str:
        """``host:port`` of the API server (the ``host`` metric label)."""
        return urlsplit(self.base_url).netloc

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying TLS context for https (None for http). Bad files raise ConfigError."""
        if not self.is_https:
            return None
        try:
            ctx = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
            if self.client_cert_file and self.client_key_file:
                ctx.load_cert_chain(self.client_cert_file, self.client_key_file)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"cannot load TLS files for {self.base_url}: {exc}") from None
        # Defaults of create_default_context, restated because they are the security contract.
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
        return ctx


class TokenFile:
    """A bearer token kept in a file that may be replaced at any time.

    The file is stat()ed on every use (cheap: only list pages and watch starts use it) and
    re-read when its inode, size or mtime changed. ``invalidate()`` forces a re-read (after a
    401). If the file vanishes briefly during a rotation, the last good token is kept.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._signature: tuple[int, int, int] | None = None
        self._token: str | None = None

    def invalidate(self) -> None:
        self._signature = None

    def read(self) -> str:
        try:
            st = os.stat(self.path)
            signature = (st.st_ino, st.st_size, st.st_mtime_ns)
            if signature != self._signature or self._token is None:
                with open(self.path, encoding="utf-8") as f:
                    token = f.read().strip()
                if not token:
                    raise ConfigError(f"token file {self.path} is empty")
                self._token, self._signature = token, signature
        except (OSError, UnicodeDecodeError) as exc:
            if self._token is None:
                raise ConfigError(f"cannot read token file {self.path}: {exc}") from None
        except ConfigError:
            if self._token is None:
                raise
        assert self._token is not None
        return self._token


def from_endpoint(
    url: str,
    token_file: str | None = None,
    *,
    ca_file: str | None = None,
    client_cert_file: str | None = None,
    client_key_file: str | None = None,
) -> ApiConfig:
    """An explicit API server URL (CoreDNS ``endpoint`` plus optional ``tls CERT KEY CACERT``)."""
    for path in (token_file, ca_file, client_cert_file, client_key_file):
        _require_file(path)
    return ApiConfig(
        base_url=url,
        token_file=token_file,
        ca_file=ca_file,
        client_cert_file=client_cert_file,
        client_key_file=client_key_file,
    )


def in_cluster(
    *,
    environ: Mapping[str, str] | None = None,
    token_file: str = SERVICE_ACCOUNT_TOKEN,
    ca_file: str = SERVICE_ACCOUNT_CA,
) -> ApiConfig:
    """The pod's service account: KUBERNETES_SERVICE_HOST/PORT, token and CA from the SA mount."""
    env = os.environ if environ is None else environ
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError(
            "not running in a cluster (KUBERNETES_SERVICE_HOST/PORT unset): "
            "set 'endpoint' or 'kubeconfig'"
        )
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    _require_file(token_file)
    _require_file(ca_file)
    return ApiConfig(base_url=f"https://{host}:{port}", token_file=token_file, ca_file=ca_file)


async def from_kubeconfig(path: str, context: str | None = None) -> ApiConfig:
    """Resolve a kubeconfig file (and optional context) with kubernetes-asyncio's loader.

    Supported: server + CA (file or data), client certificate, token, tokenFile (re-read on
    rotation), exec plugins and auth providers (re-run after a 401). Refused with ConfigError:
    insecure-skip-tls-verify (verification is always on), proxy-url, username/password.
    """
    _require_file(path)
    try:
        # Lazy on purpose: the module costs ~40 MiB of RSS and only this option needs it.
        from kubernetes_asyncio.client import Configuration
        from kubernetes_asyncio.config import kube_config
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ConfigError(f"kubeconfig support needs kubernetes-asyncio: {exc}") from None
    cfg: Any = Configuration()
    try:
        loader: Any = await kube_config.load_kube_config(
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
    except Exception as exc:  # the loader raises many unrelated types for bad files
        raise ConfigError(f"cannot load kubeconfig {path}: {exc}") from None
    return _kubeconfig_to_api_config(path, context, cfg, loader)


def _kubeconfig_to_api_config(
    path: str, context: str | None, cfg: Any, loader: Any
) -> ApiConfig:
    if not getattr(cfg, "verify_ssl", True):
        raise ConfigError(
            f"kubeconfig {path}: insecure-skip-tls-verify is not supported, "
            "TLS verification is always on"
        )
    if getattr(cfg, "proxy", None):
        raise ConfigError(f"kubeconfig {path}: proxy-url is not supported")
    auth = str(cfg.api_key.get("BearerToken") or "")
    if auth.startswith("Basic "):
        raise ConfigError(f"kubeconfig {path}: username/password auth is not supported")
    token = auth.removeprefix("Bearer ").strip() or None
    token_file = None
    dynamic = False  # exec plugin or auth provider: credentials that expire
    user = getattr(loader, "_user", None)
    try:
        if user is not None and "tokenFile" in user and "token" not in user:
            token_file = os.path.join(os.path.dirname(os.path.abspath(path)), user["tokenFile"])
        dynamic = user is not None and ("exec" in user or "auth-provider" in user)
    except (TypeError, KeyError):  # an unusual user entry: keep the token read at load time
        token_file = None
    return ApiConfig(
        base_url=str(cfg.host),
        token=token,
        token_file=token_file,
        ca_file=cfg.ssl_ca_cert or None,
        client_cert_file=cfg.cert_file or None,
        client_key_file=cfg.key_file or None,
        tls_server_name=getattr(cfg, "tls_server_name", None) or None,
        reload_from=(path, context) if dynamic else None,
    )


async def load(
    endpoint: str | None = None,
    kubeconfig: str | None = None,
    context: str | None = None,
    *,
    token_file: str | None = None,
    tls: tuple[str, str, str] | None = None,
) -> ApiConfig:
    """Pick the source as CoreDNS does: kubeconfig, else endpoint (+ tls CERT KEY CA), else
    the in-cluster service account."""
    if kubeconfig:
        return await from_kubeconfig(kubeconfig, context)
    if endpoint:
        cert, key, ca = tls if tls else (None, None, None)
        return from_endpoint(
            endpoint, token_file, ca_file=ca, client_cert_file=cert, client_key_file=key
        )
    return in_cluster()


def _require_file(path: str | None) -> None:
    if path is not None and not os.path.isfile(path):
        raise ConfigError(f"file not found: {path}")
