"""Errors of the Kubernetes API layer; transport exceptions are mapped to these at the boundary."""

from __future__ import annotations

from kdns.errors import KdnsError


class K8sError(KdnsError):
    """Kubernetes API access failed."""


class ConfigError(K8sError):
    """Kubernetes API configuration is invalid."""


class ApiConnectionError(K8sError):
    """Could not talk to the Kubernetes API server (connect, TLS, reset or read timeout)."""


class WatchStalled(ApiConnectionError):
    """The watch stream sent nothing (not even a bookmark) within its idle deadline."""


class ApiProtocolError(K8sError):
    """The Kubernetes API server sent something that is not valid list/watch JSON."""


class ApiError(K8sError):
    """The Kubernetes API server answered with an error status."""

    def __init__(self, status: int, reason: str = "", message: str = "") -> None:
        super().__init__(f"HTTP {status} {reason}: {message}".rstrip(": "))
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after: float | None = None  # seconds, from a Retry-After header (429/503)


class ApiGone(ApiError):
    """410 Gone: the resourceVersion or continue token is too old; a relist is needed."""


class MalformedObject(K8sError):
    """A Kubernetes object does not have the shape its kind requires."""


def api_error(status: int, reason: str = "", message: str = "") -> ApiError:
    """The exception for an error ``Status`` (HTTP status or watch ERROR event ``code``)."""
    if status == 410:
        return ApiGone(status, reason, message)
    return ApiError(status, reason, message)
