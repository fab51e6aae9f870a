"""Go's ``time.Duration.String()`` for log lines that CoreDNS users grep (``5s``, ``1m0s``)."""

from __future__ import annotations

_SECOND = 1_000_000_000


def _fixed(value: int, decimals: int) -> str:
    """``value / 10**decimals`` without trailing zeros (Go's fmtFrac + fmtInt)."""
    whole, frac = divmod(value, 10**decimals)
    if not frac:
        return str(whole)
    return f"{whole}.{str(frac).rjust(decimals, '0').rstrip('0')}"


def format_go_duration(seconds: float) -> str:
    """``seconds`` as Go prints a Duration: 0s, 750ms, 1.5s, 1m0s, 2h3m4s (nanosecond steps)."""
    ns = round(seconds * _SECOND)
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns == 0:
        return "0s"
    if ns < _SECOND:
        if ns < 1_000:
            return f"{sign}{ns}ns"
        if ns < 1_000_000:
            return f"{sign}{_fixed(ns, 3)}µs"
        return f"{sign}{_fixed(ns, 6)}ms"
    hours, rest = divmod(ns, 3600 * _SECOND)
    minutes, rest = divmod(rest, 60 * _SECOND)
    text = f"{_fixed(rest, 9)}s"
    if hours:
        text = f"{hours}h{minutes}m{text}"
    elif minutes:
        text = f"{minutes}m{text}"
    return sign + text
