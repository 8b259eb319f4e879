"""Prometheus (Debian's `prometheus` package) and the consumer-lag exporter, started by `ccas stack up`.

The scrape config is generated from ops/prometheus/prometheus.yml.tmpl with this clone's ports, and loads the alert rules of
ops/prometheus/alerts.yml. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from string import Template

import requests

from ccas import settings
from ccas.stack import process, tls
from ccas.stack.process import StackError
from ccas.stack.service import Service

OPS_DIR = settings.REPO_ROOT / "ops" / "prometheus"
SCRAPE_INTERVAL = "5s"


def render_config(rules: Path = OPS_DIR / "alerts.yml", scrape_interval: str = SCRAPE_INTERVAL) -> str:
    p = settings.ports()
    return Template((OPS_DIR / "prometheus.yml.tmpl").read_text()).substitute(
        scrape_interval=scrape_interval, rules=str(rules), prometheus=p.prometheus, lag_exporter=p.lag_exporter,
        poller_metrics=p.poller_metrics, pipeline_metrics=p.pipeline_metrics, scoring_service=p.scoring_service,
        ca_file=tls.ca_file())


def write_config(folder: Path) -> Path:
    """prometheus.yml in folder, with a copy of the alert rules beside it (what `promtool check config` reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(OPS_DIR / "alerts.yml", folder / "alerts.yml")
    path = folder / "prometheus.yml"
    path.write_text(render_config(folder / "alerts.yml"))
    return path


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        raise StackError("the `prometheus` binary is not installed: `apt-get install prometheus` (Debian 12 has 2.42)")
    return found


class Prometheus(Service):
    name = "prometheus"
    start_timeout_s = 60.0

    def ports(self) -> dict[str, int]:
        return {"http": self.ports_all.prometheus}

    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports_all.prometheus}"

    def prepare(self) -> None:
        self.binary = prometheus_binary()
        self.config = write_config(self.dir)

    def start(self) -> None:
        argv = [self.binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.dir / 'data'}",
                "--storage.tsdb.retention.time=3d", f"--web.listen-address=127.0.0.1:{self.ports_all.prometheus}",
                "--web.enable-lifecycle"]
        process.spawn(argv, self.log_file, self.pid_file, cwd=self.dir)

    def probe(self) -> str:
        ready = requests.get(f"{self.url()}/-/ready", timeout=3)
        ready.raise_for_status()
        targets = requests.get(f"{self.url()}/api/v1/targets", timeout=3).json()["data"]["activeTargets"]
        up = sum(target["health"] == "up" for target in targets)
        return f"ready, {up}/{len(targets)} targets up"


class LagExporter(Service):
    """`ccas lag-exporter`: queue_depth per topic/partition/group and dlq_messages from broker offsets."""

    name = "lag-exporter"
    start_timeout_s = 30.0

    def ports(self) -> dict[str, int]:
        return {"http": self.ports_all.lag_exporter}

    def start(self) -> None:
        argv = [sys.executable, "-m", "ccas.cli", "lag-exporter", "--port", str(self.ports_all.lag_exporter),
                "--stack-dir", str(self.dir), "--kafka-bootstrap", f"127.0.0.1:{self.ports_all.kafka}"]
        # Its own Kafka principal, allowed to describe groups and topics and nothing else (ccas/kafka_acls.py).
        env = settings.kafka_principal_env("lag-exporter")
        process.spawn(argv, self.log_file, self.pid_file, env=env, cwd=settings.REPO_ROOT)

    def probe(self) -> str:
        answer = requests.get(f"http://127.0.0.1:{self.ports_all.lag_exporter}/metrics", timeout=15)
        answer.raise_for_status()
        if "dlq_messages" not in answer.text:
            raise StackError("no offsets read from the broker yet")
        series = sum(line.startswith("queue_depth{") for line in answer.text.splitlines())
        return f"{series} queue_depth series"
