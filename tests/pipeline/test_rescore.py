"""The re-score's command line and its bookkeeping, with no service: how filters and the rate are read (flag over
CCAS_RESCORE_RATE over the default), how the selection is chunked, what a progress line says, and that
`run_pipeline.py --mode=rescore` reaches it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline import main as pipeline_main
from pipeline import rescore
from pipeline.supervisor import EXIT_CONFIG
from tests.pipeline.test_options import COMPLETE, no_ccas_environment  # noqa: F401 - the fixture

NOW = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "moment"), [
    ("-86400", NOW - timedelta(days=1)),
    ("0", NOW),
    ("2026-12-01T08:00:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),  # naive is UTC
    ("2026-12-01T15:00:00+07:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),
    ("2026-12-01T08:00:00Z", datetime(2026, 12, 1, 8, tzinfo=UTC)),
])
def test_since_and_until_are_iso_times_or_seconds_from_now(text: str, moment: datetime) -> None:
    assert rescore.parse_moment(text, NOW) == moment


def test_a_bad_moment_is_an_error() -> None:
    with pytest.raises(ValueError):
        rescore.parse_moment("yesterday", NOW)


def test_the_selection_runs_in_chunks_in_order_and_each_call_once() -> None:
    calls = [f"c{n}" for n in range(7)]
    assert rescore.chunks(calls, 3) == [["c0", "c1", "c2"], ["c3", "c4", "c5"], ["c6"]]
    assert rescore.chunks(calls, 50) == [calls]
    assert rescore.chunks([], 3) == []


def test_a_progress_line_says_done_of_total_the_rate_and_the_errors() -> None:
    progress = rescore.Progress(total=30, target="sc2.0.0+fx1.1.0", started=100.0, written=10, dead_lettered=2, skipped=0)
    line = progress.line(106.0)
    assert line.startswith("rescore sc2.0.0+fx1.1.0: 12/30 done (10 re-scored, 2 dead-lettered")
    assert "2.00 calls/s" in line and "~9 s left" in line
    finished = rescore.Progress(total=3, target="v", started=0.0, written=2, skipped=1)
    assert "3/3 done" in finished.line(1.0) and "left" not in finished.line(1.0)


def test_selection_describes_its_filters() -> None:
    assert rescore.Selection().describe() == "every scored call"
    described = rescore.Selection(since=NOW, agent_id="1234").describe()
    assert described == "since 2026-12-03T15:00:00+00:00, agent 1234"


@pytest.mark.usefixtures("no_ccas_environment")
def test_rate_and_chunk_come_from_the_flag_else_the_variable_else_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    args, settings, config = rescore.resolve([*COMPLETE, "--since=-3600", "--agent=1234"])
    assert (args.rate, settings.rescore_rate, settings.rescore_chunk) == (None, 2.0, 50)
    assert (args.since, args.agent, config.scoring_url) == ("-3600", "1234", "http://127.0.0.1:4")
    monkeypatch.setenv("CCAS_RESCORE_RATE", "5")
    monkeypatch.setenv("CCAS_RESCORE_CHUNK", "20")
    _, settings, _ = rescore.resolve(COMPLETE)
    assert (settings.rescore_rate, settings.rescore_chunk) == (5.0, 20)
    args, _, _ = rescore.resolve([*COMPLETE, "--rate=0.5"])
    assert args.rate == 0.5


@pytest.mark.usefixtures("no_ccas_environment")
@pytest.mark.parametrize("bad", ["--rate=0", "--rate=-1", "--chunk=0", "--since=yesterday"])
def test_bad_arguments_exit_2_before_anything_is_asked(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert rescore.run([*COMPLETE, bad]) == EXIT_CONFIG
    assert "ccas rescore:" in capsys.readouterr().err


@pytest.mark.usefixtures("no_ccas_environment")
def test_run_pipeline_mode_rescore_runs_the_rescore(capsys: pytest.CaptureFixture[str]) -> None:
    # An invalid rate stops it in the re-score's own argument check: proof that --mode=rescore reached it.
    assert pipeline_main.run(["--mode=rescore", *COMPLETE, "--rate=0"]) == EXIT_CONFIG
    assert "ccas rescore: --rate must be > 0" in capsys.readouterr().err
    assert pipeline_main.run(["--mode", "rescore", *COMPLETE, "--rate=-2"]) == EXIT_CONFIG
    assert "ccas rescore: --rate must be > 0" in capsys.readouterr().err


def test_only_the_mode_is_taken_out_of_the_arguments() -> None:
    assert pipeline_main.without_rescore_mode(["--mode=rescore", "--agent", "rescore"]) == ["--agent", "rescore"]
    assert pipeline_main.without_rescore_mode(["--rate=2", "--mode", "rescore", "--agent=7"]) == ["--rate=2", "--agent=7"]
    assert pipeline_main.without_rescore_mode(["--runner=DirectRunner", "--agent", "rescore"]) is None


class _Record:
    def __init__(self, offset: int, value: bytes) -> None:
        self.offset = offset
        self.value = value


class _FakeFollowConsumer:
    """kafka.KafkaConsumer as `follow` uses it: one poll with two events (one not JSON), then the process is stopped."""

    instances: list[_FakeFollowConsumer] = []

    def __init__(self, **config: object) -> None:
        self.config = config
        self.topics: list[str] = []
        self.polls = 0
        self.commits = 0
        self.closed = False
        self.instances.append(self)

    def subscribe(self, topics: list[str]) -> None:
        self.topics = topics

    def poll(self, timeout_ms: int = 0) -> dict[str, list[_Record]]:
        self.polls += 1
        if self.polls > 1:
            raise KeyboardInterrupt  # what SIGTERM / Ctrl-C raise in the follower
        return {"tp": [_Record(0, b'{"model_version": "sc2.0.0+fx1.1.0"}'), _Record(1, b"not json")]}

    def commit(self) -> None:
        self.commits += 1

    def close(self) -> None:
        self.closed = True


def test_follow_rescores_the_lookback_once_per_event_and_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka

    from pipeline import rescore_events
    from tests.pipeline.transforms.test_stages_unit import job_config

    monkeypatch.setattr(kafka, "KafkaConsumer", _FakeFollowConsumer)
    monkeypatch.setattr(rescore_events, "_stop_on_sigterm", lambda: None)
    selections: list[rescore.Selection] = []
    before = datetime.now(UTC)
    assert rescore_events.follow(job_config(), 3600, selections.append, group="ccas-pipeline-rescore-unit") == 0
    [consumer] = _FakeFollowConsumer.instances[-1:]
    assert consumer.topics == [rescore_events.TOPIC] and consumer.config["group_id"] == "ccas-pipeline-rescore-unit"
    [selection] = selections  # the event that is not JSON is skipped
    assert selection.since is not None and before - timedelta(seconds=3601) <= selection.since <= datetime.now(UTC)
    assert (consumer.commits, consumer.closed) == (1, True)
