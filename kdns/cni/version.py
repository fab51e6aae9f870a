"""CNI spec versions: which ones kdns speaks and how they compare."""

from __future__ import annotations

from typing import Final

from kdns.cni.errors import INCOMPATIBLE_VERSION, CniError

SUPPORTED_VERSIONS: Final = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST: Final = "1.1.0"


def parse(version: str) -> tuple[int, int, int]:
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise CniError(INCOMPATIBLE_VERSION, "invalid cniVersion", repr(version))
    return int(parts[0]), int(parts[1]), int(parts[2])


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)


def require_supported(version: str) -> str:
    if version not in SUPPORTED_VERSIONS:
        raise CniError(
            INCOMPATIBLE_VERSION,
            "incompatible CNI versions",
            f'config is "{version}", plugin supports {list(SUPPORTED_VERSIONS)}',
        )
    return version


def highest_supported(candidates: list[str]) -> str | None:
    """Spec 1.1: a runtime picks the highest version from cniVersions that it supports."""
    usable = [v for v in candidates if v in SUPPORTED_VERSIONS]
    return max(usable, key=parse) if usable else None
