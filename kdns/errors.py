"""The kdns error tree: one root, the docstring is the default message (dnspython's habit)."""

from __future__ import annotations


class KdnsError(Exception):
    """Unexpected kdns error."""

    def __init__(self, *args: object) -> None:
        super().__init__(*(args or (self.__doc__,)))


class FormError(KdnsError):
    """DNS message is malformed."""


class CorefileError(KdnsError):
    """Corefile is invalid."""


class PluginError(KdnsError):
    """A plugin failed to answer the query.

    ``rcode`` is what the client gets; the ``errors`` plugin logs the message.
    """

    def __init__(self, message: str, rcode: int = 2) -> None:
        super().__init__(message)
        self.rcode = rcode


class UpstreamError(PluginError):
    """An upstream failed."""


class UpstreamTimeout(UpstreamError):
    """An upstream did not answer in time."""
