"""The scoring service's security settings: the bearer token (required, >= 16 characters, environment only) and the TLS pair."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import ConfigurationError, load
from scoring_service.main import build_parser
from scoring_service.settings import ScoringSettings

REPO = Path(__file__).resolve().parents[2]


def test_the_token_is_required_and_named_by_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CCAS_SCORING_TOKEN")
    with pytest.raises(ConfigurationError, match="CCAS_SCORING_TOKEN .*is not set"):
        load(ScoringSettings)
    monkeypatch.setenv("CCAS_SCORING_TOKEN", "")  # empty counts as unset
    with pytest.raises(ConfigurationError, match="CCAS_SCORING_TOKEN .*is not set"):
        load(ScoringSettings)


@pytest.mark.parametrize("token", ["short", "fifteen-chars-x", " " * 20])
def test_a_short_or_blank_token_is_refused(monkeypatch: pytest.MonkeyPatch, token: str) -> None:
    monkeypatch.setenv("CCAS_SCORING_TOKEN", token)
    with pytest.raises(ConfigurationError) as caught:
        load(ScoringSettings)
    message = str(caught.value)
    assert "CCAS_SCORING_TOKEN" in message and "at least 16 characters" in message
    if token.strip():
        assert token not in message, "the refused value is never echoed"


def test_the_token_is_a_secret_from_the_environment_only(scoring_token: str) -> None:
    settings = load(ScoringSettings)
    assert settings.token.get_secret_value() == scoring_token
    assert scoring_token not in repr(settings)
    # No flag: a command line shows in `ps`.
    assert "--token" not in build_parser().format_help()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--token", scoring_token])


def test_the_service_does_not_start_without_a_token() -> None:
    env = {key: value for key, value in os.environ.items() if key != "CCAS_SCORING_TOKEN"}
    result = subprocess.run([sys.executable, "-m", "ccas.cli", "scoring-service", "--port", "1"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "CCAS_SCORING_TOKEN" in result.stderr and "is not set" in result.stderr


def test_tls_files_go_together_and_must_exist(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("c")
    key.write_text("k")
    assert not ScoringSettings().tls
    both = load(ScoringSettings, {"tls_cert_file": str(cert), "tls_key_file": str(key)})
    assert both.tls and both.tls_cert_file == cert and both.tls_key_file == key
    for half in ({"tls_cert_file": str(cert)}, {"tls_key_file": str(key)}):
        with pytest.raises(ConfigurationError, match="CCAS_SCORING_TLS_CERT_FILE and CCAS_SCORING_TLS_KEY_FILE go together"):
            load(ScoringSettings, half)
    with pytest.raises(ConfigurationError, match=r"CCAS_SCORING_TLS_KEY_FILE: .*missing\.pem is not a file"):
        load(ScoringSettings, {"tls_cert_file": str(cert), "tls_key_file": str(tmp_path / "missing.pem")})


def test_tls_files_come_from_variables_or_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("c")
    key.write_text("k")
    monkeypatch.setenv("CCAS_SCORING_TLS_CERT_FILE", str(cert))
    monkeypatch.setenv("CCAS_SCORING_TLS_KEY_FILE", str(key))
    assert load(ScoringSettings).tls
    other = tmp_path / "other.pem"
    other.write_text("o")
    flags = build_parser().parse_args(["--tls-cert-file", str(other)])
    assert load(ScoringSettings, flags).tls_cert_file == other
