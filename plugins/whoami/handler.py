"""whoami handler: client IP in the additional section (A/AAAA) plus an SRV with its port."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import dns.rrset

from kdns.plugin import Plugin, Request


class Whoami(Plugin):
    name = "whoami"

    async def serve(self, req: Request) -> dns.message.Message:
        r = req.reply(aa=True, by=self.name)
        ip, port = req.client
        owner = req.name
        if ":" in ip:
            addr = dns.rrset.from_text(owner, 0, "IN", "AAAA", ip)
        else:
            addr = dns.rrset.from_text(owner, 0, "IN", "A", ip)
        r.additional = [addr]
        label = b"_" + req.proto.encode()
        try:
            srv_owner = dns.name.Name((label, *owner.labels))
        except dns.name.NameTooLong:  # a qname near 255 octets has no room for "_udp."
            return r
        srv = dns.rrset.RRset(srv_owner, dns.rdataclass.IN, dns.rdatatype.SRV)
        srv.update_ttl(0)
        srv.add(dns.rdtypes.IN.SRV.SRV(dns.rdataclass.IN, dns.rdatatype.SRV, 0, 0, port,
                                       dns.name.root))
        r.additional.append(srv)
        return r
