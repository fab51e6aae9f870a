"""acl decisions in-process (CoreDNS plugin/acl/acl_test.go cases) and the fast-path memo."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dns.edns
import dns.message
import dns.rcode
import pytest

from kdns.plugins.acl.handler import Acl
from kdns.query import QueryProcessor
from tests.chainbuild import build_text, plugins_of

HOSTS = "hosts {\n 10.0.0.1 www.example.org a.example.org b.example.org a.example.com\n}"


@asynccontextmanager
async def serving(text: str) -> AsyncIterator[QueryProcessor]:
    """A processor for the one listener of ``text``, its plugins started (hosts loads there)."""
    (lst,) = build_text(text)
    plugins = [h for chain in lst.zones.values() for h in chain.plugins]
    for h in plugins:
        await h.start()  # type: ignore[attr-defined]
    try:
        yield QueryProcessor(lst)
    finally:
        for h in reversed(plugins):
            await h.stop()  # type: ignore[attr-defined]


async def _rcode(config: str, keys: str, name: str, client: str, qtype: str = "A") -> int:
    async with serving(f"{keys} {{\n{config}\n{HOSTS}\n}}\n") as p:
        out = await p.process(dns.message.make_query(name, qtype).to_wire(), (client, 5353),
                              "udp")
    assert out is not None
    return dns.message.from_wire(out).rcode()


REFUSED, NOERROR = dns.rcode.REFUSED, dns.rcode.NOERROR


@pytest.mark.parametrize("config,keys,name,client,qtype,want", [
    ("acl example.org {\n block type A net 192.168.0.0/16\n}", ".", "www.example.org",
     "192.168.0.2", "A", REFUSED),
    ("acl example.org {\n block type A net 192.168.0.0/16\n}", ".", "www.example.org",
     "192.167.0.2", "A", NOERROR),
    ("acl example.org {\n block type * net 192.168.0.0/16\n}", ".", "www.example.org",
     "192.168.0.2", "AAAA", REFUSED),
    ("acl example.org {\n block type A\n}", ".", "www.example.org", "10.1.0.2", "A", REFUSED),
    ("acl example.org {\n block type A\n}", ".", "www.example.org", "10.1.0.2", "AAAA",
     NOERROR),
    ("acl example.org {\n block type A net 192.168.1.2\n}", ".", "www.example.org",
     "192.168.1.2", "A", REFUSED),
    ("acl example.org {\n block type A net 192.168.1.2\n}", ".", "www.example.org",
     "192.168.1.3", "A", NOERROR),
    ("acl example.org {\n allow net 192.168.0.0/16\n block\n}", ".", "www.example.org",
     "192.168.0.2", "A", NOERROR),
    ("acl example.org {\n allow type * net 192.168.0.0/16\n block\n}", ".", "www.example.org",
     "10.1.0.2", "A", REFUSED),
    ("acl a.example.org {\n block type * net 192.168.1.0/24\n}", "example.org",
     "a.example.org", "192.168.1.2", "A", REFUSED),
    ("acl a.example.org {\n block net 192.168.1.0/24\n}", "example.org", "www.example.org",
     "192.168.1.2", "A", NOERROR),
    ("acl {\n block net 192.168.1.0/24\n}", "example.org", "a.example.org", "192.168.1.2",
     "A", REFUSED),
    ("acl example.org {\n block net 192.168.1.0/24\n}", "example.org example.com",
     "a.example.com", "192.168.1.2", "A", NOERROR),
    ("acl a.example.org {\n block net 192.168.1.0/24\n}\n"
     "acl b.example.org {\n block type * net 192.168.2.0/24\n}", "example.org",
     "b.example.org", "192.168.2.2", "A", REFUSED),
    ("acl a.example.org {\n block net 192.168.1.0/24\n}\n"
     "acl b.example.org {\n block net 192.168.2.0/24\n}", "example.org", "b.example.org",
     "192.168.1.2", "A", NOERROR),
    # An allow in one acl directive ends the evaluation: the next one's block is not reached.
    ("acl {\n allow net 192.168.1.0/24\n}\nacl {\n block\n}", ".", "www.example.org",
     "192.168.1.2", "A", NOERROR),
    ("acl {\n allow net 192.168.1.0/24\n}\nacl {\n block\n}", ".", "www.example.org",
     "192.168.2.2", "A", REFUSED),
    # IPv6.
    ("acl example.org {\n block type A net 2001:db8:abcd:0012::0/64\n}", ".", "www.example.org",
     "2001:db8:abcd:0012::1230", "A", REFUSED),
    ("acl example.org {\n block type A net 2001:db8:abcd:0012::0/64\n}", ".", "www.example.org",
     "2001:db8:abcd:0013::0", "A", NOERROR),
    ("acl example.org {\n block type A net 2001:0db8:85a3:0000:0000:8a2e:0370:7334\n}", ".",
     "www.example.org", "2001:db8:85a3::8a2e:370:7334", "A", REFUSED),
    ("acl example.org {\n block type A net ::/0\n}", ".", "www.example.org", "127.0.0.1", "A",
     NOERROR),  # an IPv6 network never matches an IPv4 client
    ("acl example.org {\n block type A net 0.0.0.0/0\n}", ".", "www.example.org", "fe80::1%lo",
     "A", NOERROR),
    ("acl {\n filter net 10.0.0.0/8\n}", ".", "www.example.org", "10.9.9.9", "A", NOERROR),
])
async def test_decisions(config: str, keys: str, name: str, client: str, qtype: str,
                         want: int) -> None:
    assert await _rcode(config, keys, name, client, qtype) == want


async def test_block_and_filter_replies() -> None:
    async with serving(". {\n acl {\n block net 10.0.0.0/8\n filter net 10.1.0.0/16\n"
                       " filter net 192.168.0.0/16\n}\n" + HOSTS + "\n}\n") as p:
        await _check_block_and_filter(p)


async def _check_block_and_filter(p: QueryProcessor) -> None:
    q = dns.message.make_query("www.example.org", "A", use_edns=0)
    r = dns.message.from_wire(await p.process(q.to_wire(), ("10.1.2.3", 1), "udp") or b"")
    assert r.rcode() == dns.rcode.REFUSED and not r.answer
    assert [(o.code, o.otype) for o in r.options] == [(dns.edns.EDECode.BLOCKED,
                                                       dns.edns.OptionType.EDE)]
    r = dns.message.from_wire(await p.process(q.to_wire(), ("192.168.0.1", 1), "udp") or b"")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    assert [o.code for o in r.options] == [dns.edns.EDECode.FILTERED]
    # Without EDNS in the query there is no OPT in the reply (RFC 6891 section 7).
    q = dns.message.make_query("www.example.org", "A")
    r = dns.message.from_wire(await p.process(q.to_wire(), ("10.1.2.3", 1), "udp") or b"")
    assert r.rcode() == dns.rcode.REFUSED and r.edns < 0


async def test_drop_sends_nothing() -> None:
    async with serving(". {\n acl {\n drop net 10.0.0.0/8\n}\n" + HOSTS + "\n}\n") as p:
        wire = dns.message.make_query("www.example.org", "A").to_wire()
        assert await p.process(wire, ("10.1.2.3", 1), "udp") is None
        assert await p.process(wire, ("10.1.2.3", 1), "tcp") is None
        assert await p.process(wire, ("11.1.2.3", 1), "udp") is not None


@pytest.mark.parametrize("proto", ["udp", "tcp"])
async def test_memo_never_replays_across_clients(proto: str) -> None:
    """An answer hosts declared reusable must not reach a blocked client from the fast path,
    and a REFUSED must not reach an allowed one."""
    async with serving(". {\n acl {\n block net 127.9.0.0/16\n}\n" + HOSTS + "\n}\n") as p:
        wire = dns.message.make_query("www.example.org", "A").to_wire()
        ok, bad = ("127.0.0.1", 1), ("127.9.0.1", 1)
        for _ in range(3):
            for client, want in ((ok, NOERROR), (bad, REFUSED)):
                assert p.fast(wire, client, proto) is None
                out = await p.process(wire, client, proto)
                assert out is not None and dns.message.from_wire(out).rcode() == want
        assert not p.memos[proto].entries


async def test_rules_without_source_keep_the_fast_path_and_count_replays() -> None:
    async with serving(". {\n acl {\n block type MX\n}\n" + HOSTS + "\n}\n") as p:
        (acl,) = [h for chain in p.listener.zones.values() for h in chain.plugins
                  if isinstance(h, Acl)]
        wire = dns.message.make_query("www.example.org", "A").to_wire()
        before = acl.allowed._value.get()
        assert await p.process(wire, ("127.0.0.1", 1), "udp") is not None
        assert p.fast(wire, ("127.9.0.1", 1), "udp") is not None  # not client-dependent
        acl.count_replays()
        assert acl.allowed._value.get() - before == 2


def test_one_instance_per_directive() -> None:
    assert len(plugins_of(". {\n acl\n acl\n whoami\n}\n", Acl)) == 2
