"""deploy/README.md says nothing the repository contradicts: the plugin lists and the paths."""

from __future__ import annotations

import re

from deploy_support import DEPLOY, REPO

README = (DEPLOY / "README.md").read_text()


def implemented_claim() -> set[str]:
    m = re.search(r"<!-- implemented-plugins -->(.*?)<!-- /implemented-plugins -->", README, re.S)
    assert m, "implemented-plugins markers missing"
    return set(re.findall(r"`([a-z0-9_]+)`", m.group(1)))


def not_implemented_claim() -> set[str]:
    m = re.search(r"Not implemented, among the commonly used ones:(.*?)\n\n", README, re.S)
    assert m, "not-implemented paragraph missing"
    return set(re.findall(r"`([a-z0-9_]+)`", m.group(1)))


def present_plugins() -> set[str]:
    return {p.parent.name for p in (REPO / "plugins").glob("*/__init__.py")}


def test_claimed_plugins_exist() -> None:
    from kdns.directives import BUILTIN

    claimed = implemented_claim()
    assert claimed, "no implemented plugin listed"
    assert claimed <= present_plugins(), f"claimed but absent: {claimed - present_plugins()}"
    assert claimed <= BUILTIN, f"claimed but not built in: {claimed - BUILTIN}"


def test_every_present_plugin_is_listed() -> None:
    unlisted = present_plugins() - implemented_claim()
    assert not unlisted, (
        f"plugins/{sorted(unlisted)} exist: add them to the implemented-plugins list in "
        "deploy/README.md (and drop them from its not-implemented list)"
    )


def test_not_implemented_list_is_true() -> None:
    from kdns.directives import BUILTIN, ORDER

    missing = not_implemented_claim() - {"quic"}  # quic is named in "tls/grpc/quic transports"
    assert missing
    implemented = missing & (BUILTIN | present_plugins())
    assert not implemented, f"deploy/README.md calls {sorted(implemented)} not implemented"
    assert missing <= set(ORDER), f"not CoreDNS directives: {missing - set(ORDER)}"


def test_stock_corefile_plugins_are_claimed() -> None:
    stock = {"errors", "health", "ready", "kubernetes", "prometheus", "forward", "cache"}
    stock |= {"loop", "reload", "loadbalance"}
    assert stock <= implemented_claim(), stock - implemented_claim()


def test_referenced_repository_paths_exist() -> None:
    paths = set(re.findall(r"(?<![\w/])((?:deploy|tests)/[\w./-]*[\w/])", README))
    assert paths
    for path in paths:
        assert (REPO / path).exists(), path
