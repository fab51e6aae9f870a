"""Watch body framing: newline-delimited or concatenated JSON, any chunking."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kdns.k8s.errors import ApiProtocolError
from kdns.k8s.watchstream import MALFORMED, IncompleteEvent, WatchDecoder, WatchEvent

EVENTS = [WatchEvent("ADDED", {"metadata": {"name": "a", "resourceVersion": "1"},
                               "data": {"k": "v}{\n"}}),
          WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "2"}}),
          WatchEvent("DELETED", {"metadata": {"name": "é", "resourceVersion": "3"},
                                 "nested": [{"x": [1, {"y": "}"}]}]})]


def _encode(e: WatchEvent) -> bytes:
    return json.dumps({"type": e.type, "object": e.object}, ensure_ascii=False).encode()


def _decode_all(chunks: list[bytes]) -> list[WatchEvent]:
    d = WatchDecoder()
    out: list[WatchEvent] = []
    for c in chunks:
        out.extend(d.feed(c))
    out.extend(d.end())
    return out


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=300, deadline=None, database=None)
@given(sep=st.sampled_from([b"\n", b"", b" ", b"\r\n", b"\n\n"]),
       cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_any_chunking_and_separator_gives_the_same_events(sep: bytes, cuts: list[int]) -> None:
    body = sep.join(_encode(e) for e in EVENTS) + (b"\n" if sep == b"\n" else b"")
    assert _decode_all(_chunked(body, cuts)) == EVENTS


def test_malformed_lines_are_reported_and_framing_continues() -> None:
    body = b'garbage\n{"type":"ADDED"}\n[1]\n' + _encode(EVENTS[0]) + b"\n\xff\xfe\n"
    kinds = [e.type for e in _decode_all([body])]
    assert kinds == [MALFORMED, MALFORMED, MALFORMED, "ADDED", MALFORMED]


def test_two_objects_on_one_line_and_trailing_garbage() -> None:
    line = _encode(EVENTS[0]) + _encode(EVENTS[1]) + b" tail\n"
    assert [e.type for e in _decode_all([line])] == ["ADDED", "BOOKMARK", MALFORMED]


def test_stream_ending_inside_an_event() -> None:
    d = WatchDecoder()
    assert d.feed(_encode(EVENTS[0])[:-3]) == []
    with pytest.raises(IncompleteEvent):
        d.end()


def test_event_size_limit() -> None:
    d = WatchDecoder(max_event_bytes=100)
    with pytest.raises(ApiProtocolError, match="larger than 100"):
        for _ in range(10):
            d.feed(b'{"type": "ADDED", ')
