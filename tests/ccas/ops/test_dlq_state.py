"""The resolved rule, hiding resolved dead letters, and a listing that degrades to unknown states without PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ccas.apps import free_port
from ccas.ops.cli import _table
from ccas.ops.dlq import DeadLetterRecord
from ccas.ops.dlq_state import NO_CALL, CallState, Listing, RecordState, Requeue, annotate, is_resolved

STATUSES = ("PENDING_DOWNLOAD", "DOWNLOADED", "SCORED", "ERROR", None)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("has_result", [True, False])
def test_resolved_means_scored_with_a_scoring_result(status: str | None, has_result: bool) -> None:
    assert is_resolved(status, has_result) == (status == "SCORED" and has_result)


def _record(offset: int, call_id: str | None) -> DeadLetterRecord:
    return DeadLetterRecord("audio.ready.dlq", 0, offset, {"call_id": call_id, "stage": "download",
                                                          "error_type": "AvayaUnavailable", "retries": 5,
                                                          "failed_at": f"2026-11-25T10:00:0{offset}.123456+00:00",
                                                          "error": "replay failed\nsecond line"})


REQUEUE = Requeue(2, datetime(2026, 11, 25, 10, 5, tzinfo=UTC), "00000000-0000-4000-8000-000000000001", "cli")


def test_a_requeued_record_is_resolved_only_once_its_call_is_scored_and_scored_by_any_path_counts() -> None:
    assert not RecordState(REQUEUE, CallState("ERROR", False)).resolved
    assert not RecordState(REQUEUE, CallState("SCORED", False)).resolved, "SCORED without a result stays in sight"
    assert RecordState(REQUEUE, CallState("SCORED", True)).resolved
    assert RecordState(None, CallState("SCORED", True)).resolved, "scored by another path"
    assert not RecordState(None, NO_CALL).resolved


def test_hiding_resolved_leaves_out_exactly_the_resolved_records() -> None:
    records = [_record(1, "a1"), _record(2, "b2"), _record(3, "c3"), _record(4, None)]
    states = {records[0].position: RecordState(REQUEUE, CallState("SCORED", True)),
              records[1].position: RecordState(REQUEUE, CallState("ERROR", False)),
              records[2].position: RecordState(None, CallState("SCORED", True)),
              records[3].position: RecordState(None, NO_CALL)}
    listing = Listing(records, states).without_resolved()
    assert [r.call_id for r in listing.records] == ["b2", None] and listing.hidden == 2
    rows = listing.rows()
    assert rows[0]["requeued"] is True and rows[0]["requeue_count"] == 2 and rows[0]["requeued_at"] == "2026-11-25T10:05:00Z"
    assert rows[1]["call_status"] is None and rows[1]["resolved"] is False
    table = _table(listing)
    assert table.splitlines()[-1] == "2 dead letter(s), 2 resolved hidden"
    first = table.splitlines()[1]
    assert first.split()[:9] == ["b2", "download", "AvayaUnavailable", "5", "2026-11-25", "10:00:02Z", "yes", "#2", "ERROR"]
    assert table.splitlines()[2].split() == ["requeued", "#2", "at", "2026-11-25", "10:05:00Z", "by", "cli,", "new",
                                             "ingest_uuid", REQUEUE.ingest_uuid]


def test_without_postgresql_every_state_is_unknown_and_nothing_is_hidden() -> None:
    records = [_record(1, "a1"), _record(2, None)]
    closed = f"postgresql://ccas:secret-password@127.0.0.1:{free_port()}/ccas"
    for url, reason in ((closed, "PostgreSQL is unreachable"), (None, "no PostgreSQL URL is set")):
        listing = annotate(records, url).without_resolved()
        assert listing.states is None and listing.hidden == 0 and len(listing.records) == 2
        assert {row["requeued"] for row in listing.rows()} == {None} and {row["resolved"] for row in listing.rows()} == {None}
        warning = listing.warning(hide_resolved=True)
        assert warning is not None and f"unknown because {reason}" in warning and "nothing hidden" in warning
        assert "\n" not in warning and "secret-password" not in warning
        row = _table(listing).splitlines()[1].split()
        assert row[6:9] == ["?", "?", "?"], row
