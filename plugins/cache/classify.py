"""Response classification and cache duration (CoreDNS response.Typify, dnsutil.MinimalTTL)."""

from __future__ import annotations

import enum

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype


class MsgType(enum.Enum):
    NOERROR = "NoError"
    NAME_ERROR = "NameError"  # NXDOMAIN with an SOA
    NO_DATA = "NoData"  # NOERROR, no answer, SOA in authority
    DELEGATION = "Delegation"
    SERVER_ERROR = "ServerError"  # SERVFAIL
    OTHER_ERROR = "OtherError"  # never cached
    META = "Meta"  # transfers, notify, update: never cached


NEGATIVE = frozenset({MsgType.NAME_ERROR, MsgType.NO_DATA})


def typify(msg: dns.message.Message) -> MsgType:
    """What kind of response ``msg`` is, for caching decisions."""
    if msg.opcode() in (dns.opcode.UPDATE, dns.opcode.NOTIFY):
        return MsgType.META
    if msg.question and msg.question[0].rdtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        return MsgType.META
    rcode = msg.rcode()
    if msg.answer and rcode == dns.rcode.NOERROR:
        return MsgType.NOERROR
    soa = any(r.rdtype == dns.rdatatype.SOA for r in msg.authority)
    ns = any(r.rdtype == dns.rdatatype.NS for r in msg.authority)
    if soa and rcode == dns.rcode.NOERROR:
        return MsgType.NO_DATA
    if soa and rcode == dns.rcode.NXDOMAIN:
        return MsgType.NAME_ERROR
    if rcode == dns.rcode.SERVFAIL:
        return MsgType.SERVER_ERROR
    if ns and rcode == dns.rcode.NOERROR:
        return MsgType.DELEGATION
    # NXDOMAIN/NODATA without an SOA (RFC 2308 §5: not cacheable; CoreDNS 1.14.7) and
    # REFUSED/FORMERR/NOTIMP/...: never cached.
    return MsgType.OTHER_ERROR


def minimal_ttl(msg: dns.message.Message, mt: MsgType) -> int:
    """Smallest TTL of every record (OPT excluded); negatives also cap at the SOA MINIMUM."""
    if mt not in (MsgType.NOERROR, MsgType.NAME_ERROR, MsgType.NO_DATA, MsgType.DELEGATION):
        return 5
    rrsets = [*msg.answer, *msg.authority, *msg.additional]
    if not rrsets:
        return 5
    ttl = min(r.ttl for r in rrsets)
    if mt in NEGATIVE:  # RFC 2308 §5: min(SOA TTL, SOA MINIMUM)
        for r in msg.authority:
            if r.rdtype == dns.rdatatype.SOA:
                ttl = min(ttl, *(rd.minimum for rd in r))
    return int(ttl)


def clamp(ttl: int, lo: int, hi: int) -> int:
    """CoreDNS's computeTTL: raise to the floor first, then cap (so the cap wins)."""
    return min(max(ttl, lo), hi)


def is_truncated(msg: dns.message.Message) -> bool:
    return bool(msg.flags & dns.flags.TC)
