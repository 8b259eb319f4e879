"""The wheel, built once per test session from an sdist of this clone."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.product import build_wheel


@pytest.fixture(scope="session")
def ccas_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("ccas-wheel"))
