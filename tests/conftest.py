"""Shared fixtures: integration tests run against the real local stack that `make test` starts."""

from __future__ import annotations

import pytest

from ccas import settings


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    """The local stack's CCAS_* settings; fails (never skips) when the stack is not running."""
    from ccas.stack.cli import services

    down = [service.name for service in services() if service.pid() is None]
    if down:
        pytest.fail(f"local stack not running ({', '.join(down)} down): run `ccas stack up` (make test does)")
    return settings.local_stack_env()
