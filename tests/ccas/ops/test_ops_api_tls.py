"""`ccas ops-api` with a certificate serves HTTPS only; half a TLS configuration is refused at start-up."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ccas.apps import App, ccas_command, free_port, wait_http
from ccas.ops.settings import OpsSettings
from core.config import ConfigurationError, load
from tests.pki import Pki, throwaway_pki

TOKEN = "ops-tls-test-token-0123456789"
UNUSED_DATABASE = "postgresql://nobody@127.0.0.1:9/none"  # /healthz and a refused /v1 never reach it


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return throwaway_pki(tmp_path_factory.mktemp("stack"), "ops-api")


@pytest.fixture(scope="module")
def api(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    app = App("ops-api-tls", ccas_command("ops-api", "--port", str(port)), tmp_path_factory.mktemp("log") / "ops-api.log",
              env={"CCAS_OPS_TOKENS": f"ann:viewer:{TOKEN}", "CCAS_OPS_API_TLS_CERT_FILE": str(pki.cert),
                   "CCAS_OPS_API_TLS_KEY_FILE": str(pki.key), "CCAS_KAFKA_BOOTSTRAP": "127.0.0.1:9",
                   "CCAS_DATABASE_URL": UNUSED_DATABASE}).start()
    try:
        wait_http(f"https://127.0.0.1:{port}/healthz", 60, app, str(pki.ca))
        yield f"127.0.0.1:{port}"
    finally:
        app.stop()


def test_https_with_the_ca_answers_and_still_wants_the_token(api: str, pki: Pki) -> None:
    assert requests.get(f"https://{api}/healthz", verify=str(pki.ca), timeout=10).status_code == 200
    assert requests.get(f"https://{api}/v1/dlq", verify=str(pki.ca), timeout=10).status_code == 401, "TLS is no credential"


def test_plain_http_to_the_tls_port_fails(api: str) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://{api}/healthz", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


def test_a_client_without_the_ca_fails_verification(api: str) -> None:
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        requests.get(f"https://{api}/healthz", timeout=10)


def test_half_a_tls_configuration_is_refused(monkeypatch: pytest.MonkeyPatch, pki: Pki,
                                              tmp_path: Path) -> None:
    monkeypatch.setenv("CCAS_OPS_TOKEN", TOKEN)
    monkeypatch.setenv("CCAS_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("CCAS_DATABASE_URL", UNUSED_DATABASE)
    monkeypatch.setenv("CCAS_OPS_API_TLS_CERT_FILE", str(pki.cert))
    with pytest.raises(ConfigurationError, match="CCAS_OPS_API_TLS_CERT_FILE and CCAS_OPS_API_TLS_KEY_FILE go together"):
        load(OpsSettings)
    monkeypatch.setenv("CCAS_OPS_API_TLS_KEY_FILE", str(tmp_path / "missing.key"))
    with pytest.raises(ConfigurationError, match="CCAS_OPS_API_TLS_KEY_FILE: .*missing.key is not a file"):
        load(OpsSettings)
    monkeypatch.setenv("CCAS_OPS_API_TLS_KEY_FILE", str(pki.key))
    assert load(OpsSettings).uvicorn_tls() == {"ssl_certfile": str(pki.cert), "ssl_keyfile": str(pki.key)}


def test_the_token_has_no_command_line_flag() -> None:
    helped = subprocess.run(ccas_command("ops-api", "--help"), capture_output=True, text=True, timeout=60, check=True)
    assert "--tls-cert-file" in helped.stdout and "--ops-token" not in helped.stdout
