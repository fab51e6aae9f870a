"""Render a response within a size limit: whole RRsets only, TC=1 when anything was dropped.

Decision (shared/docs/README.md): over UDP the answer keeps only the whole RRsets that fit (possibly
none), never a partial RRset, and sets TC whenever something was left out.
"""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.renderer

OPT_RR_SIZE = 11  # root owner + type + class + ttl + rdlen, with no options


def render(msg: dns.message.Message, max_size: int = 65535) -> bytes:
    """Wire bytes of ``msg`` no larger than ``max_size`` (truncating with TC when needed)."""
    rcode = msg.rcode()
    flags = (msg.flags & ~0x000F) | (rcode & 0x000F)
    r = dns.renderer.Renderer(msg.id, flags, max(max_size, 12 + OPT_RR_SIZE))
    has_opt = msg.edns >= 0
    if has_opt:
        r.reserve(OPT_RR_SIZE)
    truncated = False
    try:
        for rrset in msg.question:
            r.add_question(rrset.name, rrset.rdtype, rrset.rdclass)
        for section, rrsets in (
            (dns.renderer.ANSWER, msg.answer),
            (dns.renderer.AUTHORITY, msg.authority),
            (dns.renderer.ADDITIONAL, msg.additional),
        ):
            for rrset in rrsets:
                # dnspython shuffles rdatas by default; order is loadbalance's job, not ours.
                r.add_rrset(section, rrset, want_shuffle=False)
    except dns.exception.TooBig:
        truncated = True
    if has_opt:
        r.release_reserved()
        ednsflags = (msg.ednsflags & 0x00FF_FFFF) | ((rcode >> 4) << 24)
        r.add_edns(0, ednsflags & 0xFF00_FFFF, msg.payload, msg.options)
    if truncated:
        r.flags |= dns.flags.TC
    r.write_header()
    wire: bytes = r.get_wire()
    return wire
