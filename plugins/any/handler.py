"""any handler: RFC 8482 section 4.2 - a synthesized HINFO instead of everything for qtype ANY."""

from __future__ import annotations

from typing import Final

import dns.message
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.HINFO
import dns.rrset

from kdns.plugin import Plugin, Request

TTL: Final = 8482  # CoreDNS uses the RFC number as the TTL
_HINFO: Final = dns.rdtypes.ANY.HINFO.HINFO(
    dns.rdataclass.IN, dns.rdatatype.HINFO, "ANY obsoleted", "See RFC 8482"
)


class Any(Plugin):
    name = "any"

    async def serve(self, req: Request) -> dns.message.Message:
        if req.qtype != dns.rdatatype.ANY:
            return await self.next.serve(req)
        r = req.reply(by=self.name)
        rrset = dns.rrset.RRset(req.name, dns.rdataclass.IN, dns.rdatatype.HINFO)
        rrset.update_ttl(TTL)
        rrset.add(_HINFO)
        r.answer = [rrset]
        req.reusable()  # the same answer for the same question, always
        return r
