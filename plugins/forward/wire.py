"""Upstream query bytes and reply acceptance, as pure functions on bytes (RFC 5452).

Rules (reliability.md §5):
1. Every upstream query is built here from (name, type, class, flags) — never the client's bytes,
   so client EDNS options (cookies, ECS) are not relayed and coalesced clients share one query.
2. A reply is accepted only if it is a response (QR=1, opcode QUERY) with the query's ID, exactly
   one question, and the question bytes identical to the ones we sent (exact case: a spoofer must
   also guess any 0x20 spelling the client used). Anything else is ignored by the caller, who keeps
   waiting until its deadline (CoreDNS's TuDoor lesson).
3. A *near miss* — our exact question, a response, but another ID — arriving on a socket whose
   random port only the upstream knows is a spoofing attempt that guessed the port: the caller
   finishes that query over TCP, where an off-path attacker cannot inject (BIND 9's 2026 rule).
"""

from __future__ import annotations

import secrets
import struct

import dns.name

_RD = 0x0100
_CD = 0x0010
_QR = 0x80  # in the third header byte
_OPCODE_BITS = 0x78  # in the third header byte
UPSTREAM_PAYLOAD = 1232  # EDNS payload we advertise upstream (DNS flag day 2020)


def build_query(name: dns.name.Name, qtype: int, qclass: int, *, rd: bool = True,
                cd: bool = False, do: bool = False) -> bytes:
    """Wire bytes of a one-question query with ID 0 and an option-less EDNS0 OPT record."""
    flags = (_RD if rd else 0) | (_CD if cd else 0)
    header = struct.pack("!HHHHHH", 0, flags, 1, 0, 0, 1)
    wire_name = name.to_wire()
    assert wire_name is not None
    question = wire_name + struct.pack("!HH", qtype, qclass)
    opt = b"\x00" + struct.pack("!HHBBHH", 41, UPSTREAM_PAYLOAD, 0, 0, 0x8000 if do else 0, 0)
    return header + question + opt


def with_random_id(query: bytes) -> bytes:
    """``query`` with a fresh 16-bit ID from the OS CSPRNG."""
    return secrets.randbits(16).to_bytes(2, "big") + query[2:]


def question_end(wire: bytes, offset: int = 12) -> int | None:
    """Offset just past the first question (name, type, class); None if malformed.

    Compression pointers are refused: the question is the first name of a message, so a pointer
    there can only point into the header.
    """
    n = len(wire)
    i = offset
    while True:
        if i >= n:
            return None
        length = wire[i]
        if length == 0:
            i += 1
            break
        if length > 63:
            return None
        i += 1 + length
    i += 4
    return i if i <= n else None


def reply_matches(reply: bytes, query: bytes, qend: int) -> bool:
    """True if ``reply`` answers ``query`` (same ID, QR=1, QUERY, one identical question)."""
    if len(reply) < qend:
        return False
    if reply[0] != query[0] or reply[1] != query[1]:
        return False
    if not reply[2] & _QR or reply[2] & _OPCODE_BITS:
        return False
    if reply[4] != 0 or reply[5] != 1:
        return False
    return reply[12:qend] == query[12:qend]


def is_near_miss(reply: bytes, query: bytes, qend: int) -> bool:
    """A response to our exact question with a different ID (see rule 3)."""
    if len(reply) < qend or reply[:2] == query[:2]:
        return False
    if not reply[2] & _QR or reply[2] & _OPCODE_BITS:
        return False
    return reply[4] == 0 and reply[5] == 1 and reply[12:qend] == query[12:qend]
