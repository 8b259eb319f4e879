"""The installed product end to end: the wheel in a fresh virtualenv outside the clone, on the real local stack.

`ccas db migrate` on a scratch database, then `ccas scoring-service`, `ccas ops-api`, a standalone Prism job service, a Beam
worker pool and `ccas-pipeline --runner=PortableRunner` (EXTERNAL workers), all from that virtualenv, run from a temporary
folder with no PYTHONPATH, only explicit `CCAS_*` settings and `CCAS_STACK_DIR` pointing to an empty folder. The mock recorder
comes from the clone (it synthesizes speech with espeak-ng); the installed poller publishes its calls. Every call must end
SCORED with a scoring_result row. Isolation from other tests: a scratch database, a consumer group of its own positioned at the
end of calls.raw before anything is published, and call ids from a random seed of the mock.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from ccas import settings as stack_settings
from ccas.stack import tools
from core.kafka import client_security
from tests.deploy.product import (
    REPO_ROOT,
    Process,
    create_venv,
    free_port,
    machine_env,
    port_open,
    query,
    run,
    scratch_database,
    wait_until,
)

pytestmark = pytest.mark.integration

CALLS = 5
SCORED_TIMEOUT_S = 600
INPUT_TOPIC = "calls.raw"


@pytest.fixture(scope="module")
def installed(ccas_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv holding the wheel and its dependencies."""
    return create_venv(tmp_path_factory.mktemp("installed") / "venv", ccas_wheel)


def _kafka_as(stack_env: dict[str, str], component: str) -> dict[str, str]:
    """The Kafka settings of one component, spelled out: TLS and that component's SCRAM user (least-privilege ACLs)."""
    return {"CCAS_KAFKA_BOOTSTRAP": stack_env["CCAS_KAFKA_BOOTSTRAP"], **stack_settings.kafka_principal_env(component)}


def _group_at_end_of_input(bootstrap: str, group: str) -> dict[int, int]:
    """Commit the group at the current end of calls.raw, so the job reads only what is published from now on."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **client_security(None), group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(INPUT_TOPIC, p) for p in sorted(consumer.partitions_for_topic(INPUT_TOPIC))]
        ends = consumer.end_offsets(partitions)
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in ends.items()})
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        consumer.close()


def _delete_group(bootstrap: str, group: str) -> None:
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client_security(None), client_id="ccas-deploy-test")
        try:
            admin.delete_consumer_groups([group])
        finally:
            admin.close()
    except Exception:  # noqa: BLE001 - best effort: a group left behind harms nothing (the lag exporter reports ^ccas- only)
        pass


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """The folder every installed command runs from: nothing of the clone is reachable from it."""
    folder = tmp_path / "run"
    (folder / "empty-stack").mkdir(parents=True)
    yield folder


def test_installed_venv_does_not_see_the_clone(installed: Path, workdir: Path) -> None:
    env = machine_env(PATH=f"{installed}:/usr/local/bin:/usr/bin:/bin")
    out = run([str(installed / "python"), "-c", "import alembic, ccas, core, pipeline; "
               "print(ccas.__file__, core.__file__, pipeline.__file__, alembic.__file__, sep='\\n')"], cwd=workdir, env=env)
    for line in out.split():
        assert line.startswith(str(installed.parent)), f"imported from outside the venv: {line}"
    assert "ccas-pipeline" in run([str(installed / "ccas-pipeline"), "--help"], cwd=workdir, env=env, timeout_s=120)


def test_installed_product_scores_calls_end_to_end(installed: Path, workdir: Path, stack_env: dict[str, str]) -> None:
    logs = workdir / "logs"
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    seed = uuid.uuid4().int % 90_000 + 10_000
    tag = uuid.uuid4().hex[:8]
    recorder_user, recorder_password = f"deploy{tag}", uuid.uuid4().hex
    installed_path = f"{installed}:/usr/local/bin:/usr/bin:/bin"
    processes: list[Process] = []

    def start(name: str, argv: list[str], env: dict[str, str], cwd: Path = workdir) -> Process:
        process = Process(name, argv, logs / f"{name}.log", env, cwd).start()
        processes.append(process)
        return process

    with scratch_database(stack_env["CCAS_DATABASE_URL"]) as database_url:
        try:
            # Only explicit settings: no PYTHONPATH, no CCAS_* from the test's own environment, an empty stack folder.
            ccas_env = machine_env(PATH=installed_path, CCAS_STACK_DIR=str(workdir / "empty-stack"))
            run([str(installed / "ccas"), "db", "migrate"], cwd=workdir, env={**ccas_env, "CCAS_DATABASE_URL": database_url})
            tables = {row[0] for row in query(database_url, "SELECT table_name FROM information_schema.tables "
                                                            "WHERE table_schema = 'public'")}
            assert {"alembic_version", "call", "audio_asset", "scoring_result", "ingested_recording"} <= tables, tables

            mock_port, scoring_port, job_port, pool_port, metrics_port, ops_port = (free_port() for _ in range(6))
            recorder_url, scoring_url = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{scoring_port}"
            recorder = {"CCAS_AVAYA_URL": recorder_url, "CCAS_AVAYA_USER": recorder_user,
                        "CCAS_AVAYA_PASSWORD": recorder_password}
            start_of_calls = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
            mock = start("avaya-mock", [str(REPO_ROOT / ".venv" / "bin" / "python"), "-m", "ccas.cli", "avaya-mock",
                                        "--port", str(mock_port), "--seed", str(seed), "--start", start_of_calls,
                                        "--calls-per-minute", "30", "--count", str(CALLS), "--duration-median", "8",
                                        "--duration-min", "4", "--duration-max", "15", "--availability-delay", "0",
                                        "--multi-inum-ratio", "0"],
                         machine_env(PATH=f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin", **recorder),
                         cwd=REPO_ROOT)
            scoring_token = uuid.uuid4().hex  # the service requires it, the pipeline sends it
            scoring = start("scoring-service", [str(installed / "ccas"), "scoring-service", "--port", str(scoring_port)],
                            {**ccas_env, "CCAS_SCORING_ASR_ENGINE": "none", "CCAS_SCORING_TOKEN": scoring_token})
            ops_token = uuid.uuid4().hex
            ops_api = start("ops-api", [str(installed / "ccas"), "ops-api", "--port", str(ops_port)],
                            {**ccas_env, "CCAS_OPS_TOKEN": ops_token, "CCAS_DATABASE_URL": database_url,
                             **_kafka_as(stack_env, "ops")})
            prism = start("prism", [str(tools.go_binary("prism")), f"--job_port={job_port}", "--serve_http=false",
                                    "--log_level=warn"], ccas_env)
            # The pool starts each SDK worker as `python` from PATH: the installed venv's, with the installed package.
            pool = start("worker-pool", [str(installed / "python"), "-m", "apache_beam.runners.worker.worker_pool_main",
                                         f"--service_port={pool_port}"], ccas_env)

            def answers(url: str) -> bool:
                try:
                    return requests.get(url, timeout=2).status_code == 200
                except requests.RequestException:
                    return False

            wait_until(lambda: answers(f"{recorder_url}/_mock/health"), 60, "the mock recorder", [mock])
            wait_until(lambda: answers(f"{scoring_url}/healthz"), 120, "the installed scoring service", [scoring])
            wait_until(lambda: port_open(ops_port), 60, "the installed ops API", [ops_api])
            wait_until(lambda: port_open(job_port), 60, "Prism's Job API", [prism])
            wait_until(lambda: port_open(pool_port), 60, "the installed worker pool", [pool])

            planned = requests.get(f"{recorder_url}/_mock/calls", auth=(recorder_user, recorder_password), timeout=10).json()
            call_ids = sorted(call["inum"] for call in planned)
            assert len(call_ids) == CALLS, f"the mock planned {call_ids}"

            group = f"ccas-pipeline-deploy-{tag}"  # the pipeline principal may use ccas-pipeline* groups only

            _group_at_end_of_input(bootstrap, group)
            pipeline_env = {
                **ccas_env, **recorder, **_kafka_as(stack_env, "pipeline"),
                "CCAS_DATABASE_URL": stack_settings.database_role_url(database_url, "pipeline"),
                "CCAS_S3_ENDPOINT": stack_env["CCAS_S3_ENDPOINT"], "CCAS_S3_BUCKET": stack_env["CCAS_S3_BUCKET"],
                "CCAS_S3_ACCESS_KEY": stack_env["CCAS_S3_ACCESS_KEY"], "CCAS_S3_SECRET_KEY": stack_env["CCAS_S3_SECRET_KEY"],
                "CCAS_S3_CA_FILE": stack_env["CCAS_S3_CA_FILE"], "CCAS_SCORING_URL": scoring_url,
                "CCAS_SCORING_TOKEN": scoring_token, "CCAS_CONSUMER_GROUP": group,
                "CCAS_INPUT_TOPIC": INPUT_TOPIC, "CCAS_PII_HMAC_KEY": uuid.uuid4().hex,  # 32 bytes: the hash's key
                "CCAS_PIPELINE_METRICS_HOST": "127.0.0.1", "CCAS_PIPELINE_METRICS_PORT": str(metrics_port),
                "CCAS_DOWNLOAD_BACKOFF_S": "1", "CCAS_SCORING_BACKOFF_S": "0.5",
            }
            pipeline = start("pipeline", [str(installed / "ccas-pipeline"), "--runner=PortableRunner",
                                          f"--job_endpoint=localhost:{job_port}", "--environment_type=EXTERNAL",
                                          f"--environment_config=localhost:{pool_port}", "--kafka_io=python"], pipeline_env)

            first_start = min(datetime.fromisoformat(call["started_at"]) for call in planned) - timedelta(minutes=1)
            poller = start("poller", [str(installed / "ccas"), "poller", "--once", "--from", first_start.isoformat(),
                                      "--to", (datetime.now(UTC) - timedelta(seconds=5)).isoformat(), "--metrics-port", "0",
                                      "--transactional-id", f"ccas-poller-deploy-{tag}"],
                           {**ccas_env, **recorder, **_kafka_as(stack_env, "poller"),
                            "CCAS_DATABASE_URL": stack_settings.database_role_url(database_url, "poller")})
            code = poller.popen.wait(180)
            assert code == 0, f"the installed poller failed ({code}):\n{poller.tail()}"
            assert f"{CALLS} published" in poller.tail(5), poller.tail(10)

            def statuses() -> dict[str, str]:
                rows = query(database_url, "SELECT c.call_id, c.status, count(r.call_id) FROM call c LEFT JOIN scoring_result r"
                                           " USING (call_id) WHERE c.call_id = ANY(%s) GROUP BY 1, 2", (call_ids,))
                return {call_id: status if results else f"{status} (no scoring_result)" for call_id, status, results in rows}

            def all_scored() -> bool:
                return statuses() == dict.fromkeys(call_ids, "SCORED")

            wait_until(all_scored, SCORED_TIMEOUT_S, f"{CALLS} calls SCORED with a scoring_result",
                       [pipeline, pool, prism, scoring, mock], interval_s=2,
                       details=lambda: f"statuses: {json.dumps(statuses())}\npipeline log:\n{pipeline.tail(30)}\n"
                                       f"worker pool log:\n{pool.tail(30)}")
            results = query(database_url, "SELECT call_id, score, model_version FROM scoring_result WHERE call_id = ANY(%s)"
                                          " ORDER BY call_id", (call_ids,))
            assert [row[0] for row in results] == call_ids, "exactly one scoring_result per call"
            assert all(row[2] for row in results)

            ops_url = f"http://127.0.0.1:{ops_port}/v1/dlq"
            assert requests.get(ops_url, timeout=10).status_code == 401
            listed = requests.get(ops_url, headers={"Authorization": f"Bearer {ops_token}"}, timeout=30)
            assert listed.status_code == 200, listed.text
            assert not [item for item in listed.json() if item.get("call_id") in call_ids], "no call of this run dead-lettered"

            # The SDK worker's own metrics endpoint, on the first free port of the configured span.
            from pipeline.metrics import PORT_SPAN

            served = [port for port in range(metrics_port, metrics_port + PORT_SPAN)
                      if answers(f"http://127.0.0.1:{port}/metrics")
                      and "pipeline_calls_total" in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text]
            assert served, f"no worker metrics endpoint on 127.0.0.1:{metrics_port}-{metrics_port + PORT_SPAN - 1}"
        finally:
            for process in reversed(processes):  # the pipeline first (it cancels its job), Prism and the pool after it
                process.stop()
            _delete_group(bootstrap, f"ccas-pipeline-deploy-{tag}")
