"""CCAS_OPS_TOKENS / CCAS_OPS_TOKEN validation, CCAS_DLQ_RETENTION_DAYS on the DLQ topics, the local stack's named tokens, and
the CLI's masking and requested_by."""

from __future__ import annotations

import getpass
import json
from typing import Any

import pytest

import schemas
from ccas import settings as stack_settings
from ccas.kafka_admin import RETENTION_MS, TopicReplication, bootstrap_topics, dead_letter_topics, topic_config
from ccas.ops import audit, cli, dlq
from ccas.ops.dlq import DeadLetterRecord
from ccas.ops.requeue import Outcome
from ccas.ops.settings import OpsSettings
from core.config import ConfigurationError, load

GOOD = "a-token-of-sixteen+"
OTHER = "another-token-0123456"
DAY_MS = 24 * 3600 * 1000


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CCAS_OPS_TOKEN", "CCAS_OPS_TOKENS", "CCAS_DLQ_RETENTION_DAYS", "CCAS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CCAS_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("CCAS_DATABASE_URL", "postgresql://nobody@127.0.0.1:9/none")


def _load(monkeypatch: pytest.MonkeyPatch, tokens: str | None = None, single: str | None = None) -> OpsSettings:
    if tokens is not None:
        monkeypatch.setenv("CCAS_OPS_TOKENS", tokens)
    if single is not None:
        monkeypatch.setenv("CCAS_OPS_TOKEN", single)
    return load(OpsSettings)


def test_named_tokens_are_read_with_their_roles(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = _load(monkeypatch, f"ann@ops:viewer:{GOOD}, bob.b-1:admin:{OTHER}:with:colons")
    assert [(t.name, t.role, t.token) for t in loaded.tokens()] == [("ann@ops", "viewer", GOOD),
                                                                    ("bob.b-1", "admin", f"{OTHER}:with:colons")]
    assert GOOD not in repr(loaded) and GOOD not in repr(loaded.tokens())


@pytest.mark.parametrize("tokens,problem", [
    (f"ann:viewer:{GOOD},ann:admin:{OTHER}", "name 'ann' appears more than once"),
    (f"ann:viewer:{GOOD},bob:admin:{GOOD}", "bob has the same token as an entry before it"),
    ("ann:viewer:short", "ann): token must be at least 16 characters"),
    (f"ann:root:{GOOD}", "role 'root' is not one of viewer, operator, admin"),
    (f"ann smith:viewer:{GOOD}", "name 'ann smith' must be"),
    (f":viewer:{GOOD}", "name '' must be"),
    (f"ann-viewer-{GOOD}", "entry 1 is not name:role:token"),
    (f"ann:viewer:{GOOD},", "entry 2 is not name:role:token"),
])
def test_bad_named_tokens_are_a_configuration_error_naming_the_variable(monkeypatch: pytest.MonkeyPatch, tokens: str,
                                                                       problem: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        _load(monkeypatch, tokens)
    message = str(raised.value)
    assert "CCAS_OPS_TOKENS" in message and problem in message, message
    assert GOOD not in message and OTHER not in message, "a token never appears in an error"


def test_one_of_the_two_token_settings_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="set CCAS_OPS_TOKENS .* or CCAS_OPS_TOKEN"):
        _load(monkeypatch)
    with pytest.raises(ConfigurationError, match="CCAS_OPS_TOKEN.*at least 16 characters"):
        _load(monkeypatch, single="short")


def test_the_single_token_is_operator_ops_unless_a_named_entry_holds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [(t.name, t.role) for t in _load(monkeypatch, single=GOOD).tokens()] == [("ops", "operator")]
    both = _load(monkeypatch, f"ann:admin:{OTHER}", GOOD)
    assert [(t.name, t.role) for t in both.tokens()] == [("ann", "admin"), ("ops", "operator")]
    same = _load(monkeypatch, f"ann:viewer:{GOOD}", GOOD)
    assert [(t.name, t.role) for t in same.tokens()] == [("ann", "viewer")], "one secret, one identity: the named one"
    with pytest.raises(ConfigurationError, match="names a token 'ops'"):
        _load(monkeypatch, f"ops:admin:{OTHER}", GOOD)


def test_the_local_stack_hands_out_a_dev_operator_and_a_dev_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {key: f"{key.lower()}-secret-0123456789" for key in stack_settings._generate_secrets()}
    monkeypatch.setattr(stack_settings, "load_secrets", lambda create=False: secrets)
    env = stack_settings.local_stack_env()
    monkeypatch.setenv("CCAS_OPS_TOKENS", env["CCAS_OPS_TOKENS"])
    monkeypatch.setenv("CCAS_OPS_TOKEN", env["CCAS_OPS_TOKEN"])
    loaded = load(OpsSettings)
    assert [(t.name, t.role, t.token) for t in loaded.tokens()] == [
        ("dev-operator", "operator", secrets["CCAS_OPS_TOKEN"]), ("dev-admin", "admin", secrets["CCAS_OPS_ADMIN_TOKEN"])]


def test_dlq_retention_overrides_the_dead_letter_topics_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(TopicReplication).dlq_retention_days == 30
    monkeypatch.setenv("CCAS_DLQ_RETENTION_DAYS", "7")
    settings = load(TopicReplication)
    assert dead_letter_topics() == set(dlq.DLQ_TOPICS) and dead_letter_topics()
    for name, spec in schemas.topics().items():
        wanted = 7 if name in dead_letter_topics() else spec.retention_days
        assert topic_config(spec, settings)[RETENTION_MS] == str(wanted * DAY_MS), name
    for wrong in ("0", "366", "thirty"):
        monkeypatch.setenv("CCAS_DLQ_RETENTION_DAYS", wrong)
        with pytest.raises(ConfigurationError, match="CCAS_DLQ_RETENTION_DAYS"):
            load(TopicReplication)


class _Admin:
    """Just enough of KafkaAdminClient for bootstrap_topics on an empty cluster."""

    def __init__(self) -> None:
        self.created: dict[str, dict[str, Any]] = {}

    def list_topics(self) -> list[str]:
        return []

    def create_topics(self, topics: dict[str, dict[str, Any]]) -> None:
        self.created.update(topics)


def test_kafka_bootstrap_creates_the_dlq_topics_with_the_configured_retention() -> None:
    admin = _Admin()
    report = bootstrap_topics(admin, TopicReplication(kafka_replication_factor=1, kafka_min_insync_replicas=1,
                                                      dlq_retention_days=14))
    assert admin.created["calls.raw.dlq"]["configs"][RETENTION_MS] == str(14 * DAY_MS)
    assert admin.created["calls.raw"]["configs"][RETENTION_MS] == str(schemas.topics()["calls.raw"].retention_ms)
    assert any(line.startswith("audio.ready.dlq: created") and "retention 14 d" in line for line in report), report


CUSTOMER = "0901234567"


def _letter() -> DeadLetterRecord:
    return DeadLetterRecord("audio.ready.dlq", 0, 3, {"call_id": "100000123456", "stage": "download", "error_type": "X",
                                                     "error": "", "stack": "", "retries": 1, "failed_at": "",
                                                     "payload": {"call_id": "100000123456", "other_parties": CUSTOMER}})


def test_cli_show_masks_unless_full(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(dlq, "show", lambda bootstrap, call_id: [_letter()])
    assert cli.main(["show", "100000123456"]) == 0
    masked = capsys.readouterr().out
    assert CUSTOMER not in masked and json.loads(masked)[0]["payload"]["other_parties"] == "********67"
    assert cli.main(["show", "100000123456", "--full"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["payload"]["other_parties"] == CUSTOMER


@pytest.mark.parametrize("flags,who", [([], None), (["--requested-by", "jane.doe"], "jane.doe")])
def test_cli_requeue_is_requested_by_the_os_user_or_the_flag_and_audited(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], flags: list[str], who: str | None) -> None:
    requested: list[str] = []
    rows: list[tuple[Any, ...]] = []

    class FakeRequeuer:
        def __init__(self, bootstrap: str, database_url: str, requested_by: str = "cli") -> None:
            requested.append(requested_by)

        def requeue(self, where: dlq.Filter, dry_run: bool = False) -> list[Outcome]:
            return [Outcome("100000123456", "audio.ready.dlq:0:3", "download", "X", "would_requeue")]

    monkeypatch.setattr(cli, "Requeuer", FakeRequeuer)
    monkeypatch.setattr(audit, "record", lambda *args, **kwargs: rows.append(args))
    assert cli.main(["requeue", "--call-id", "100000123456", "--dry-run", *flags]) == 0
    expected = who or getpass.getuser()
    assert requested == [expected]
    [(url, actor, role, action, object_type, object_id, _source, outcome, detail)] = rows
    assert (url, actor, role, action, object_type, object_id, outcome) == (
        "postgresql://nobody@127.0.0.1:9/none", expected, "cli", "dlq.requeue", "dlq", "call_ids=100000123456", "ok")
    assert detail["dry_run"] is True and detail["actions"] == {"would_requeue": 1}
