"""The scoring service refuses to start without CCAS_SCORING_TOKEN: every test here gets a throwaway one."""

from __future__ import annotations

import pytest

TEST_TOKEN = "unit-test-scoring-token-0123456789"


@pytest.fixture(autouse=True)
def scoring_token(monkeypatch: pytest.MonkeyPatch) -> str:
    """CCAS_SCORING_TOKEN for ScoringSettings() built in a test (a value already exported, e.g. the stack's, is replaced)."""
    monkeypatch.setenv("CCAS_SCORING_TOKEN", TEST_TOKEN)
    return TEST_TOKEN
