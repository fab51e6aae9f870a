"""Cheap construction of dnspython messages for the slow path.

``dns.message.from_wire`` spends ~60-90 µs on a plain query (a wire reader, enum conversions,
an OPT rdata parsed and validated), and ``Message.use_edns`` ~20 µs building an OPT rdata; the
slow path does both for every query it answers. A plain query (the shape the wire fast path
accepts: one uncompressed question, no answer/authority records, at most one option-less EDNS0
OPT) is parsed here by hand into the same Message; anything else goes to dnspython. OPT RRsets
are copied from a small set of templates (their OPT rdata is immutable and shared).
"""

from __future__ import annotations

import struct
from typing import Final

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.OPT
import dns.rrset

from kdns.wire.fastpath import question_end

_MAX_TEMPLATES: Final = 64  # payload sizes are client-chosen: keep the map bounded
_opt_templates: dict[int, dns.rrset.RRset] = {}
_QTYPE_QCLASS: Final = struct.Struct("!HH")


def opt_rrset(flags: int, payload: int) -> dns.rrset.RRset:
    """An OPT RRset with no options (what ``Message.use_edns(0, flags, payload)`` makes)."""
    template = _opt_templates.get(payload)
    if template is None:
        if len(_opt_templates) >= _MAX_TEMPLATES:
            _opt_templates.clear()
        opt = dns.rdtypes.ANY.OPT.OPT(payload, dns.rdatatype.OPT, ())
        template = dns.rrset.from_rdata(dns.name.root, 0, opt)
        _opt_templates[payload] = template
    rrset: dns.rrset.RRset = template.copy()
    rrset.ttl = flags
    return rrset


def parse_query(wire: bytes) -> dns.message.Message:
    """``dns.message.from_wire(wire, one_rr_per_rrset=True)``, by hand when ``wire`` is plain;
    raises what from_wire raises for anything it cannot parse."""
    qend = question_end(wire)
    if qend:
        try:
            return _parse_plain(wire, qend)
        except dns.exception.DNSException:
            pass  # e.g. a name over 255 octets: let dnspython raise its own error
    return dns.message.from_wire(wire, one_rr_per_rrset=True)


def _parse_plain(wire: bytes, qend: int) -> dns.message.Message:
    labels = []
    pos = 12
    while True:
        n = wire[pos]
        if n == 0:
            break
        labels.append(wire[pos + 1:pos + 1 + n])
        pos += n + 1
    labels.append(b"")
    name = dns.name.Name(labels)
    qtype, qclass = _QTYPE_QCLASS.unpack_from(wire, qend - 4)
    qid, flags = struct.unpack_from("!HH", wire)
    msg = dns.message.Message(id=qid)
    msg.flags = dns.flags.Flag(flags)
    msg.question = [dns.rrset.RRset(name, dns.rdataclass.RdataClass.make(qclass),
                                    dns.rdatatype.RdataType.make(qtype))]
    if len(wire) > qend:  # question_end allows exactly one option-less OPT here
        payload = (wire[qend + 3] << 8) | wire[qend + 4]
        msg.opt = opt_rrset(int.from_bytes(wire[qend + 5:qend + 9], "big"), payload)
    return msg
