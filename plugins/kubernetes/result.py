"""The plugin's answer to one (name, type), independent of any Request or wire format."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

import dns.name
import dns.rcode
import dns.rrset


class Outcome(enum.Enum):
    REPLY = "reply"  # write rcode and sections, AA=1
    NEXT = "next"  # hand the query to the next plugin (out of zone, or fallthrough)
    REFUSED = "refused"  # bare server reply, AA=0 (AXFR/IXFR)


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    rcode: int = dns.rcode.NOERROR
    answer: tuple[dns.rrset.RRset, ...] = ()
    authority: tuple[dns.rrset.RRset, ...] = ()
    additional: tuple[dns.rrset.RRset, ...] = ()
    # An ExternalName target outside the queried zone: the server must resolve it (same
    # qtype) and append that reply's answer section after ours (k8s-dns.md 4.6).
    chase: dns.name.Name | None = None
    # What the answer was derived from ("svc:ns/name", "ns:name", "ip:addr", "pod:*"): an
    # answer cache drops the entry when a Store Change carries one of these tags.
    tags: frozenset[str] = frozenset()
    serial: int = 0  # the SOA serial the answer was built with

    @property
    def cacheable(self) -> bool:
        """True when the Result alone is the whole reply (what a wire cache may store)."""
        return self.outcome is Outcome.REPLY and self.chase is None and \
            self.rcode != dns.rcode.SERVFAIL


NEXT: Final = Result(Outcome.NEXT)
REFUSED: Final = Result(Outcome.REFUSED, dns.rcode.REFUSED)
