"""DNS over TCP framing (RFC 1035 4.2.2, RFC 7766), sans-IO: a 2-byte length before each message."""

from __future__ import annotations


class FrameDecoder:
    """Feed bytes, get whole messages back; zero-length frames are protocol errors."""

    def __init__(self, max_buffer: int = 65535 + 2) -> None:
        self._buf = bytearray()
        self.max_buffer = max_buffer

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 2:
            n = (buf[pos] << 8) | buf[pos + 1]
            if n == 0:
                raise ValueError("zero-length DNS message over TCP")
            if len(buf) - pos - 2 < n:
                break
            out.append(bytes(buf[pos + 2 : pos + 2 + n]))
            pos += 2 + n
        if pos:
            del buf[:pos]
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


def frame(msg: bytes) -> bytes:
    return len(msg).to_bytes(2, "big") + msg
