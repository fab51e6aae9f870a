"""Fixtures for kdns-cni tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.cni.cnitest import Namespaces, make_bin_dir


@pytest.fixture
def netns() -> Iterator[Namespaces]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces; CI runs as root")
    if not shutil.which("ip"):
        pytest.skip("iproute2 is not installed (bash .ci/install)")
    ns = Namespaces()
    try:
        yield ns
    finally:
        ns.cleanup()


@pytest.fixture
def cni_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_bin_dir(str(tmp_path_factory.mktemp("cnibin")))
