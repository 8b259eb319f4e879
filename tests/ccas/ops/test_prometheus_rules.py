"""`promtool check rules|config` and `promtool test rules` on the project's alert rules and generated scrape config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ccas import settings
from ccas.stack import prometheus

RULES_DIR = settings.REPO_ROOT / "ops" / "prometheus"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package `prometheus`)")


def _promtool(*args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess:
    return subprocess.run([str(PROMTOOL), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_alert_rules_are_valid() -> None:
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 12 rules found" in result.stdout


def test_every_alert_rule_fires_in_one_case_and_stays_quiet_in_another() -> None:
    rules = [rule["alert"] for group in yaml.safe_load((RULES_DIR / "alerts.yml").read_text())["groups"]
             for rule in group["rules"]]
    cases = [case for test in yaml.safe_load((RULES_DIR / "alerts_test.yml").read_text())["tests"]
             for case in test["alert_rule_test"]]
    for rule in rules:
        assert any(c["alertname"] == rule and c["exp_alerts"] for c in cases), f"{rule} has no case that fires it"
        assert any(c["alertname"] == rule and not c["exp_alerts"] for c in cases), f"{rule} has no case that stays quiet"
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_rule_test_fails(tmp_path: Path) -> None:
    """The promtool run above would catch a wrong expectation: the same tests with one expectation flipped fail."""
    shutil.copy(RULES_DIR / "alerts.yml", tmp_path / "alerts.yml")
    text = (RULES_DIR / "alerts_test.yml").read_text().replace("is 2m 10s behind", "is 1m behind", 1)
    (tmp_path / "alerts_test.yml").write_text(text)
    assert _promtool("test", "rules", "alerts_test.yml", cwd=tmp_path).returncode != 0


def test_generated_scrape_config_passes_promtool(tmp_path: Path) -> None:
    path = prometheus.write_config(tmp_path)
    result = _promtool("check", "config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(path.read_text())
    ports = settings.ports()
    targets = {job["job_name"]: (job["static_configs"][0]["targets"], job["static_configs"][0]["labels"]["expected"])
               for job in config["scrape_configs"]}
    assert targets == {
        "prometheus": ([f"127.0.0.1:{ports.prometheus}"], "always"),
        "ccas-lag-exporter": ([f"127.0.0.1:{ports.lag_exporter}"], "always"),
        "ccas-poller": ([f"127.0.0.1:{ports.poller_metrics}"], "while_running"),
        "ccas-pipeline": ([f"127.0.0.1:{ports.pipeline_metrics}"], "while_running"),
        "ccas-scoring-service": ([f"127.0.0.1:{ports.scoring_service}"], "while_running"),
    }
    scoring = next(job for job in config["scrape_configs"] if job["job_name"] == "ccas-scoring-service")
    assert scoring["scheme"] == "https" and scoring["tls_config"]["ca_file"].endswith("/tls/ca.crt")
