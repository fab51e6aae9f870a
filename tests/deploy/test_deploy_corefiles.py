"""The stock Corefiles of the usual CoreDNS installs set up in kdns unchanged, as deploy/README.md
claims: the addon manifest's, coredns/deployment's (with a stub-domain block), the Helm chart's,
and AKS's layout that imports coredns-custom's ``*.override``/``*.server`` files."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_support import FIXTURES

COREFILES = FIXTURES / "corefiles"
EXPECTED_ZONES = {
    "addon.Corefile": {"."},
    "coredns-deployment.Corefile": {".", "acme.local."},
    "helm.Corefile": {"."},
    "aks.Corefile": {".", "corp.example."},
}


@pytest.mark.parametrize("name", sorted(EXPECTED_ZONES))
def test_stock_corefile_sets_up(name: str) -> None:
    from kdns.chain import build
    from kdns.corefile import parse_file
    from kdns.server.run import Server

    path = COREFILES / name
    listeners = build(parse_file(path), 53, Server(path.read_text(), str(path)))
    assert [(lst.scheme, lst.port) for lst in listeners] == [("dns", 53)]
    assert set(listeners[0].zones) == EXPECTED_ZONES[name]


def test_aks_custom_imports_land_where_aks_puts_them() -> None:
    from kdns.corefile import parse_file

    blocks = parse_file(COREFILES / "aks.Corefile")
    by_key = {tuple(k.text for k in b.keys): [d.name for d in b.directives] for b in blocks}
    assert by_key[(".:53",)][-1] == "hosts", "the *.override file joins the .:53 block"
    assert by_key[("corp.example:53",)] == ["errors", "cache", "forward"]


def test_every_fixture_is_checked() -> None:
    assert {p.name for p in Path(COREFILES).glob("*.Corefile")} == set(EXPECTED_ZONES)
