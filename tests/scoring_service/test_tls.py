"""HTTPS: the real service (uvicorn in a subprocess, 127.0.0.1, a free port) with a throwaway CA and server certificate.

A client trusting that CA gets through with the token (requests and the pipeline's ScoringClient); plain HTTP to the port and a
client without the CA fail; the token is still checked over TLS.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from audio.wav import wav_bytes
from callgen import plan_call, render_call
from ccas.apps import free_port
from pipeline.io.resilience import UNAVAILABLE, classify
from pipeline.io.scoring_client import ScoringAuthFailed, ScoringClient, ScoringUnavailable
from tests.pki import Pki, throwaway_pki

REPO = Path(__file__).resolve().parents[2]
TOKEN = "tls-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return throwaway_pki(tmp_path_factory.mktemp("stack"), "scoring")


@pytest.fixture(scope="module")
def port(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    log = tmp_path_factory.mktemp("tls-svc") / "service.log"
    env = {**os.environ, "CCAS_SCORING_TOKEN": TOKEN, "CCAS_SCORING_TLS_CERT_FILE": str(pki.cert),
           "CCAS_SCORING_TLS_KEY_FILE": str(pki.key)}
    cmd = [sys.executable, "-m", "ccas.cli", "scoring-service", "--port", str(port), "--log-level", "warning"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"service exited: {log.read_text()}"
            try:
                if requests.get(f"https://127.0.0.1:{port}/healthz", verify=str(pki.ca), timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"service did not start over TLS: {log.read_text()}")
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _call() -> bytes:
    return wav_bytes(render_call(plan_call(411, duration_s=6, language="en")), 8000, "ulaw")


def test_https_with_the_ca_and_the_token(pki: Pki, port: int) -> None:
    url = f"https://127.0.0.1:{port}"
    answer = requests.get(f"{url}/v1/scorecard", headers={"Authorization": f"Bearer {TOKEN}"}, verify=str(pki.ca), timeout=10)
    assert answer.status_code == 200, answer.text
    assert requests.get(f"{url}/v1/scorecard", verify=str(pki.ca), timeout=10).status_code == 401, "TLS is no credential"
    assert requests.get(f"{url}/healthz", verify=str(pki.ca), timeout=10).status_code == 200


def test_the_pipeline_client_scores_over_https_with_the_ca_file(pki: Pki, port: int) -> None:
    audio = _call()
    client = ScoringClient(f"https://127.0.0.1:{port}", token=TOKEN, ca_file=str(pki.ca))
    try:
        result = client.score(call_id="tls-1", agent_id="a-1", audio=io.BytesIO(audio), size=len(audio))
    finally:
        client.close()
    assert result["call_id"] == "tls-1" and result["model_version"]
    wrong = ScoringClient(f"https://127.0.0.1:{port}", token="not-the-token-at-all", ca_file=str(pki.ca))
    with pytest.raises(ScoringAuthFailed) as refused:
        wrong.score(call_id="tls-2", agent_id=None, audio=io.BytesIO(audio), size=len(audio))
    assert refused.value.status == 403 and classify(refused.value) == UNAVAILABLE


def test_plain_http_to_the_tls_port_fails(port: int) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)


def test_a_client_without_the_ca_fails_verification(port: int) -> None:
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        requests.get(f"https://127.0.0.1:{port}/healthz", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    # The pipeline's client on the system trust store: unavailable (held), never a bad recording.
    audio = _call()
    client = ScoringClient(f"https://127.0.0.1:{port}", token=TOKEN)
    with pytest.raises(ScoringUnavailable, match="CERTIFICATE_VERIFY_FAILED") as failed:
        client.score(call_id="tls-3", agent_id=None, audio=io.BytesIO(audio), size=len(audio))
    assert classify(failed.value) == UNAVAILABLE
