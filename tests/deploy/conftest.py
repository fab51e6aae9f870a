"""Fixtures for the deploy/ tests."""

from __future__ import annotations

import pytest
from deploy_support import BASE, Obj, render


@pytest.fixture(scope="session")
def base_objs() -> list[Obj]:
    return render(BASE)
