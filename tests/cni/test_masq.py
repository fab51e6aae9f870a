from __future__ import annotations

import ipaddress
import json
import shutil
import subprocess

import pytest

from kdns.cni import masq


def test_render_add_replaces_stale_elements_and_quotes_comments() -> None:
    addrs = [ipaddress.ip_interface("10.0.0.5/24"), ipaddress.ip_interface("fd00::5/64")]
    stale = [masq.Element(4, "10.0.0.5", "old eth0 net", "masq-10.0.0.0-24"),
             masq.Element(4, "10.0.0.6", "other eth0 net", "masq-10.0.0.0-24")]
    script = masq.render_add(addrs, masq.attachment_comment('n"et', "c1", "eth0"), stale)
    assert "delete element inet kdns-cni masq4 { 10.0.0.5 }" in script
    assert "10.0.0.6" not in script
    assert 'comment "c1 eth0 n?et" : jump masq-10.0.0.0-24' in script
    assert "add chain inet kdns-cni masq-fd00__-64" in script
    assert "ip6 daddr ff00::/8 return" in script


def test_parse_elements_and_ownership() -> None:
    listing = {"nftables": [{"metainfo": {}}, {"map": {
        "family": "inet", "name": "masq4", "table": "kdns-cni", "type": "ipv4_addr",
        "map": "verdict", "elem": [[{"elem": {"val": "10.0.0.5", "comment": "c1 eth0 net"}},
                                    {"jump": {"target": "masq-10.0.0.0-24"}}]]}}]}
    els = masq.parse_elements(json.dumps(listing))
    assert els == [masq.Element(4, "10.0.0.5", "c1 eth0 net", "masq-10.0.0.0-24")]
    assert masq.owned_by(els, masq.attachment_comment("net", "c1", "eth0")) == els
    assert masq.belongs_to(els[0], "net") and not masq.belongs_to(els[0], "net2")


def test_comments_are_printable_ascii() -> None:
    assert masq.attachment_comment("n\\é\nt", "c", "e") == "c e n???t"


def test_long_comments_are_truncated_consistently() -> None:
    comment = masq.attachment_comment("n" * 100, "c" * 64, "eth0")
    assert len(comment) == masq.COMMENT_MAX
    assert masq.belongs_to(masq.Element(4, "1.2.3.4", comment, ""), "n" * 100)


@pytest.mark.skipif(not shutil.which("nft"), reason="nft is not installed")
def test_rendered_script_passes_nft_check() -> None:
    script = masq.render_add([ipaddress.ip_interface("10.0.0.5/24")], "c1 eth0 net", [])
    proc = subprocess.run(["nft", "-c", "-f", "-"], input=script, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN")
    assert proc.returncode == 0, proc.stderr
