"""kubernetes ``guard_tld_namespaces``: parsing, and that it reaches the handler."""

from __future__ import annotations

import pytest

from kdns.errors import CorefileError
from kdns.plugins.kubernetes.handler import Kubernetes
from tests.chainbuild import built_plugin


def kubernetes(body: str) -> Kubernetes:
    return built_plugin(f"kubernetes cluster.local {{\n{body}\n}}", Kubernetes)


def test_off_by_default() -> None:
    k = kubernetes("")
    assert k.cfg.guard_tld_namespaces is False
    assert k.guard is None


def test_on() -> None:
    k = kubernetes("guard_tld_namespaces\nnamespaces com default")
    assert k.cfg.guard_tld_namespaces is True
    assert k.guard is not None


def test_except_list() -> None:
    k = kubernetes("guard_tld_namespaces except Dev prod")
    assert k.cfg.guard_except == frozenset({"dev", "prod"})
    assert k.guard is not None
    assert not k.guard.hides("dev") and not k.guard.hides("prod") and k.guard.hides("com")


@pytest.mark.parametrize("args", ["yes", "except", "dev prod"])
def test_bad_arguments(args: str) -> None:
    with pytest.raises(CorefileError) as e:
        kubernetes(f"guard_tld_namespaces {args}")
    assert str(e.value) == (
        "plugin/kubernetes: Corefile:3 - Error during parsing: guard_tld_namespaces takes "
        f"'except NAMESPACE...', not {args!r}")


def test_misspelt_is_unknown() -> None:
    with pytest.raises(CorefileError) as e:
        kubernetes("guard_tld_namespace")
    assert "unknown property 'guard_tld_namespace'" in str(e.value)
    assert "Corefile:3" in str(e.value)
