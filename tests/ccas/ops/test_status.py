"""`ccas status` on the running stack: every section present, the stack's services up, the numbers are numbers."""

from __future__ import annotations

import re
import subprocess

import pytest

from ccas import settings
from ccas.apps import ccas_command

pytestmark = pytest.mark.integration


def test_status_shows_services_counts_dlqs_lag_latencies_and_urls(stack_env: dict[str, str]) -> None:
    result = subprocess.run(ccas_command("status"), capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in ("postgres", "kafka", "s3", "lag-exporter", "prometheus"):
        assert re.search(rf"^  UP   {re.escape(name)} ", out, re.M), f"{name} not UP:\n{out}"
    assert re.search(r"^  UP   ccas-lag-exporter .*\[always\]", out, re.M), out
    assert re.search(r"^  polled \d+   enriched \d+   downloaded \d+   scored \d+   errors now \d+$", out, re.M), out
    assert re.search(r"audio\.ready\.dlq \(download\) \d+ .*calls\.raw\.dlq \(parse\) \d+ .*scoring\.results\.dlq \(score\) \d+",
                     out), out
    assert "p95 latency, last hour" in out and "unavailable" not in out, out
    p = settings.ports()
    for url in (f"http://127.0.0.1:{p.prometheus}", f"http://127.0.0.1:{p.ops_api}/docs", f"http://127.0.0.1:{p.job_server_ui}"):
        assert url in out
