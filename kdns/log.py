"""CoreDNS-style log lines on stdout: ``[INFO] plugin/<name>: message``, no timestamps.

Core (non-plugin) messages have no ``plugin/`` prefix (``[INFO] Reloading``). Existing log alerts
grep these prefixes, so the format is kept byte for byte.
"""

from __future__ import annotations

import logging
import sys

_LEVELS = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "FATAL",
}
_PLUGIN_PREFIX = "kdns.plugin."


def _clean(text: str) -> str:
    # Never let raw control bytes from queries or API objects reach the log stream.
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\t" else f"\\x{ord(c):02x}" for c in text)


class CorednsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = _LEVELS.get(record.levelno, record.levelname)
        msg = _clean(record.getMessage())
        if record.name.startswith(_PLUGIN_PREFIX):
            return f"[{level}] plugin/{record.name[len(_PLUGIN_PREFIX):]}: {msg}"
        return f"[{level}] {msg}"


def plugin_log(name: str) -> logging.Logger:
    """The logger of plugin ``name``; lines read ``[LEVEL] plugin/<name>: ...``."""
    return logging.getLogger(_PLUGIN_PREFIX + name)


core_log = logging.getLogger("kdns.core")


def setup_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger("kdns")
    if any(getattr(h, "_kdns", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CorednsFormatter())
    handler._kdns = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
