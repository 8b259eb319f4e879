"""Shared fixtures: integration tests run against the real local stack that `make test` starts.

Tests that need no service run in `make unit`; a test is an integration test when it is marked so or asks for `stack_env`.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "stack_env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """The local stack's CCAS_* settings, also filled into this process's environment (unset ones only), as `ccas --local`
    does for a command; fails (never skips) when the stack is not running."""
    from ccas.stack.cli import services
    from ccas.stack.env import fill_from_local_stack, local_env

    down = [service.name for service in services() if service.pid() is None]
    if down:
        pytest.fail(f"local stack not running ({', '.join(down)} down): run `ccas stack up` (make test does)")
    fill_from_local_stack(os.environ)
    return local_env()
