"""Response typing for ``class`` filters: CoreDNS's response.Typify + Classify, on dnspython.

NOERROR with an answer is success (NODATA when an A/AAAA answer has no record of that type);
SOA in authority makes NOERROR NODATA and NXDOMAIN a name error (denial); NXDOMAIN without an
SOA, REFUSED, FORMERR, ... are errors, as in CoreDNS.
"""

from __future__ import annotations

import time

import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype

_CLASS = {
    "NOERROR": "success", "DELEGATION": "success", "NXDOMAIN": "denial", "NODATA": "denial",
}


def _expired_signatures(m: dns.message.Message, now: float) -> bool:
    for section in (m.answer, m.authority, m.additional):
        for rrset in section:
            if rrset.rdtype != dns.rdatatype.RRSIG:
                continue
            for sig in rrset:
                if not sig.inception <= now <= sig.expiration:
                    return True
    return False


def typify(m: dns.message.Message | None) -> str:
    """NOERROR, NXDOMAIN, SERVERERROR, NODATA, DELEGATION, META, UPDATE or OTHERERROR."""
    if m is None:
        return "OTHERERROR"
    opcode = m.opcode()
    if opcode == dns.opcode.UPDATE:
        return "UPDATE"
    if opcode == dns.opcode.NOTIFY:
        return "META"
    qtype = m.question[0].rdtype if m.question else None
    if qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        return "META"
    if m.ednsflags & 0x8000 and _expired_signatures(m, time.time()):
        return "OTHERERROR"
    rcode = m.rcode()
    if m.answer and rcode == dns.rcode.NOERROR:
        if qtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            matched = any(rrset.rdtype == qtype for rrset in m.answer)
            return "NOERROR" if matched else "NODATA"
        return "NOERROR"
    soa = any(rrset.rdtype == dns.rdatatype.SOA for rrset in m.authority)
    ns = any(rrset.rdtype == dns.rdatatype.NS for rrset in m.authority)
    if soa and rcode == dns.rcode.NOERROR:
        return "NODATA"
    if soa and rcode == dns.rcode.NXDOMAIN:
        return "NXDOMAIN"
    if rcode in (dns.rcode.SERVFAIL, dns.rcode.NOTIMP):
        return "SERVERERROR"
    if ns and rcode == dns.rcode.NOERROR:
        return "DELEGATION"
    if rcode == dns.rcode.NOERROR:
        return "NOERROR"
    return "OTHERERROR"


def classify(response_type: str) -> str:
    """success, denial or error."""
    return _CLASS.get(response_type, "error")
