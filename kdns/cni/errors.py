"""CNI error codes and the one exception type every kdns-cni failure is reported through."""

from __future__ import annotations

from typing import Any, Final

# Spec section "Error": 0-99 are reserved for well-known errors.
INCOMPATIBLE_VERSION: Final = 1
UNSUPPORTED_FIELD: Final = 2
CONTAINER_UNKNOWN: Final = 3
INVALID_ENV: Final = 4
IO_FAILURE: Final = 5
DECODE_FAILURE: Final = 6
INVALID_CONFIG: Final = 7
TRY_AGAIN_LATER: Final = 11
NOT_AVAILABLE: Final = 50
NOT_AVAILABLE_LIMITED: Final = 51
# 100+ are plugin specific.
PLUGIN_FAILURE: Final = 100
INTERFACE_EXISTS: Final = 101
ADDRESS_EXHAUSTED: Final = 102
CHECK_FAILED: Final = 103
DELEGATE_FAILURE: Final = 104
ALREADY_ALLOCATED: Final = 105


class CniError(Exception):
    """A failure reported to the runtime as CNI error JSON."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict[str, Any]:
        # The reference plugins omit cniVersion (and empty details); the spec's error shape has
        # all four keys, so they are always present here.
        return {"cniVersion": cni_version, "code": self.code, "msg": self.msg,
                "details": self.details}

    def __str__(self) -> str:
        return f"{self.msg}: {self.details}" if self.details else self.msg
