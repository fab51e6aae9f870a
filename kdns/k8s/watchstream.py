"""Sans-IO framing of a watch body into events.

The API server writes one JSON object per line; client-go's JSON framer also accepts objects that
are merely concatenated, so stand-in servers sometimes send that. Both are accepted here: complete
lines are decoded at once, and a stream that has shown no newline yet is decoded whenever a chunk
ends with ``}``. Undecodable lines become MALFORMED events for the caller to count.
"""

from __future__ import annotations

import json
from typing import Any, Final, NamedTuple

from kdns.k8s.errors import ApiProtocolError

# A single watch event larger than this is refused (an EndpointSlice of 1000 endpoints is ~300 KiB).
MAX_EVENT_BYTES: Final = 32 * 1024 * 1024
# Watch event type yielded for a line that could not be decoded (the caller counts it).
MALFORMED: Final = "MALFORMED"
_DECODER = json.JSONDecoder()
_WS = " \t\r\n"


class WatchEvent(NamedTuple):
    """One watch event: ADDED, MODIFIED, DELETED, BOOKMARK, ERROR (a Status object) or
    MALFORMED (``object`` is then ``{"error": reason}``)."""

    type: str
    object: dict[str, Any]


class IncompleteEvent(ApiProtocolError):
    """The watch stream ended in the middle of an event."""


class WatchDecoder:
    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._line_framed = False  # a newline was seen: the stream is newline-delimited
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[WatchEvent]:
        if b"\n" in chunk:
            self._line_framed = True
            parts = chunk.split(b"\n")
            lines = [b"".join([*self._pending, parts[0]]), *parts[1:-1]]
            self._set_pending(parts[-1])
            events: list[WatchEvent] = []
            for line in lines:
                events.extend(_decode_line(line))
            return events
        self._pending.append(chunk)
        self._pending_len += len(chunk)
        if self._pending_len > self._max:
            raise ApiProtocolError(f"watch event larger than {self._max} bytes")
        if self._line_framed or not chunk.rstrip().endswith(b"}"):
            return []
        docs, rest = _split_documents(b"".join(self._pending))
        self._set_pending(rest)
        return [_to_event(d) for d in docs]

    def end(self) -> list[WatchEvent]:
        """At the end of the body: what is left must be whole events (or nothing)."""
        data = b"".join(self._pending)
        self._set_pending(b"")
        docs, rest = _split_documents(data)
        if rest.strip():
            raise IncompleteEvent(f"watch stream ended inside an event ({len(rest)} bytes)")
        return [_to_event(d) for d in docs]

    def _set_pending(self, data: bytes) -> None:
        self._pending = [data] if data else []
        self._pending_len = len(data)


def _split_documents(data: bytes) -> tuple[list[Any], bytes]:
    """The JSON documents at the start of ``data`` and the undecoded rest."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return [], data
    docs: list[Any] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WS:
            i += 1
        if i >= n:
            return docs, b""
        try:
            doc, i = _DECODER.raw_decode(text, i)
        except ValueError:
            return docs, text[i:].encode("utf-8")
        docs.append(doc)


def _decode_line(line: bytes) -> list[WatchEvent]:
    if not line.strip():
        return []
    docs, rest = _split_documents(line)
    events = [_to_event(d) for d in docs]
    if rest.strip():
        events.append(WatchEvent(MALFORMED, {"error": f"not JSON: {rest[:80]!r}"}))
    return events


def _to_event(doc: Any) -> WatchEvent:
    if not isinstance(doc, dict):
        return WatchEvent(MALFORMED, {"error": "event is not a JSON object"})
    kind, obj = doc.get("type"), doc.get("object")
    if not isinstance(kind, str) or not isinstance(obj, dict):
        return WatchEvent(MALFORMED, {"error": "event without a type string or an object"})
    return WatchEvent(kind, obj)
