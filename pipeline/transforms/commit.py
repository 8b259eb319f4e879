"""CommitOffsets: advance the consumer group past a message only when it and every message before it in its partition is done.

"Done" = its result, dead letter, or duplicate-drop was written by the sinks upstream. Offsets are committed contiguously per
partition, so after a crash the job resumes from the group's committed offsets and replays (never skips) what was in flight.

Kafka transactions leave control records (commit/abort markers) between data records, and read_committed readers never see
records of aborted transactions: such an offset never arrives here. Whenever the first offset not yet done lies below a done
one, the broker is asked, once per such offset, whether a data record readable by the job holds it; if not, it is stepped
over. This happens as elements arrive, so a commit never depends on a timer firing. A processing-time housekeeping timer
additionally steps over markers at the end of a partition (after the last data record nothing else would arrive) and
refreshes the queue-depth gauge; should a runner lose that timer, the next element re-arms it.

Kafka being unavailable holds the commit (retried through the outage budget), it never fails the bundle at once.

A position the runner lost: Prism 2.73 was seen never delivering the position of a message whose call is SCORED (once
during an S3 outage; once after a restart, for the first three replayed messages of a partition whose calls the killed job
had scored; once for a partition's last record), which would hold the partition's commit forever. When the commit has not
moved from a record for STRANDED_AFTER_S, the records from there to the log end are read back and their calls looked up in
one query; every call already SCORED (final: a replay changes nothing) lets the commit move past its record, with a warning
and `commit_positions_recovered` counted, up to the first record whose call is not. That one keeps the commit waiting (it
may still be in flight), and is looked at again after another STRANDED_AFTER_S.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.coders import ListCoder, VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration, Timestamp

from pipeline import metrics as prom
from pipeline.clients import offset_consumer
from pipeline.io.resilience import KAFKA, POSTGRES, hold
from pipeline.model import SourcePosition
from schemas.contracts import WATERMARK_KEY, is_watermark_marker

log = logging.getLogger(__name__)
HOUSEKEEPING_DELAY_S = 2
# A housekeeping timer this late (beyond its delay) is taken as lost by the runner and armed again by the next element.
TIMER_LOST_AFTER_S = 30
STRANDED_AFTER_S = 60
RECOVER_AT_MOST = 5000  # records read back per recovery
# How often the broker's committed offset is compared with this job's (per partition).
RECONCILE_EVERY_S = 20


def advance(next_offset: int, done: set[int]) -> int:
    """The first offset not yet done, starting from next_offset (removes the consumed ones from `done`)."""
    while next_offset in done:
        done.discard(next_offset)
        next_offset += 1
    return next_offset


def _call_id(value: bytes | None) -> str | None:
    try:
        call_id = json.loads(value or b"null")["call_id"]
    except (ValueError, TypeError, KeyError):
        return None
    return call_id if isinstance(call_id, str) and call_id else None


def read_done(done_state: Any) -> set[int]:
    return set(done_state.read() or ())


def write_done(done_state: Any, done: Iterable[int]) -> None:
    done_state.write(sorted(done))


class _CommitFn(beam.DoFn):
    """(partition key, SourcePosition) → nothing; commits the group's offset for that partition as far as it is contiguous."""

    NEXT = ReadModifyWriteStateSpec("next", VarIntCoder())  # first offset not yet done = the offset to commit
    # Finished offsets beyond a gap, as a sorted list: a deterministic coder keeps savepoints independent of pickle. (Named
    # "done_offsets": the state once held a pickled set under "done", which this coder cannot read.)
    DONE = ReadModifyWriteStateSpec("done_offsets", ListCoder(VarIntCoder()))
    # The offset the broker last confirmed as a readable data record still in flight (no need to ask again for it).
    PROBED = ReadModifyWriteStateSpec("probed", VarIntCoder())
    # When the housekeeping timer was armed (epoch ms); absent = not armed. A time, not a flag, so a lost timer is noticed.
    ARMED_AT = ReadModifyWriteStateSpec("armed_at_ms", VarIntCoder())
    # [offset, since epoch ms]: the data record the commit has waited at, and since when (state, so it survives the DoFn).
    STALLED = ReadModifyWriteStateSpec("stalled", ListCoder(VarIntCoder()))
    HOUSEKEEPING = TimerSpec("housekeeping", TimeDomain.REAL_TIME)

    def __init__(self, group_id: str, consumer_factory: Callable[[], Any], outage_budget_s: float = 900.0,
                 outage_backoff_cap_s: float = 30.0, database_factory: Callable[[], Any] | None = None) -> None:
        self.group_id = group_id
        self.consumer_factory = consumer_factory
        self.database_factory = database_factory
        self.outage_budget_s = outage_budget_s
        self.outage_backoff_cap_s = outage_backoff_cap_s
        self.committed = Metrics.counter(self.__class__, "offset_commits")
        self.skipped_gaps = Metrics.counter(self.__class__, "non_data_offsets_skipped")
        self.recovered = Metrics.counter(self.__class__, "commit_positions_recovered")

    def setup(self) -> None:
        self.consumer: Any = None  # opened on first use: a broker down while the worker starts holds commits, not setup
        self._waiting: dict[Any, int] = {}
        self._reconciled_at: dict[Any, float] = {}
        self.db: Any = None

    def teardown(self) -> None:
        consumer = getattr(self, "consumer", None)  # absent when setup failed
        if consumer is None:
            return
        try:
            consumer.close(autocommit=False)
        except Exception as error:  # teardown is best effort: the worker is going away either way
            log.warning("closing the offset consumer failed: %s", error)
        if getattr(self, "db", None) is not None:
            self.db.close()

    def _kafka(self, action: Callable[[Any], Any]) -> Any:
        """action(consumer), held through a Kafka outage."""
        def attempt() -> Any:
            if self.consumer is None:
                self.consumer = self.consumer_factory()
            return action(self.consumer)

        return hold(KAFKA, attempt, self.outage_budget_s, self.outage_backoff_cap_s)

    def _start_offset(self, tp: Any) -> int:
        committed = self._kafka(lambda consumer: consumer.committed(tp))
        if committed is not None:
            return int(committed)
        return int(self._kafka(lambda consumer: consumer.beginning_offsets([tp]))[tp])

    def _commit(self, tp: Any, offset: int) -> None:
        from kafka.structs import OffsetAndMetadata

        self._kafka(lambda consumer: consumer.commit({tp: OffsetAndMetadata(offset, "", -1)}))
        self.committed.inc()
        prom.OFFSETS_COMMITTED.labels(tp.topic).inc()

    def _first_data_offset_from(self, tp: Any, offset: int) -> int | None:
        """The offset of the first data record at or after `offset`, or the position past trailing control records; None if
        the broker has nothing there yet."""
        def probe(consumer: Any) -> int | None:
            consumer.assign([tp])
            consumer.seek(tp, offset)
            for records in consumer.poll(timeout_ms=2000, max_records=1).values():
                if records:
                    return int(records[0].offset)
            position = int(consumer.position(tp))
            return position if position > offset else None

        return self._kafka(probe)

    def _read_back(self, tp: Any, start: int, end: int) -> tuple[dict[int, Any], int]:
        """The data records of [start, end) as {offset: value} (at most RECOVER_AT_MOST), and the offset the read reached:
        every offset below it that is not a key is a control record. A watermark marker's value is WATERMARK_KEY."""
        def read(consumer: Any) -> tuple[dict[int, Any], int]:
            consumer.assign([tp])
            consumer.seek(tp, start)
            values: dict[int, Any] = {}
            while True:
                position = int(consumer.position(tp))
                if position >= end or len(values) >= RECOVER_AT_MOST:
                    return values, min(position, end)
                batches = consumer.poll(timeout_ms=2000, max_records=min(500, end - position))
                records = [record for records in batches.values() for record in records]
                if not records and int(consumer.position(tp)) == position:
                    return values, position
                # A watermark marker carries no call: its value is replaced by the marker's key, which _stranded passes.
                values.update((int(record.offset), WATERMARK_KEY if is_watermark_marker(record.key) else record.value)
                              for record in records if record.offset < end)

        return self._kafka(read)

    def _stranded(self, tp: Any, next_offset: int, done: set[int], end: int | None, stalled_state: Any) -> int:
        """next_offset, or past the positions the runner lost: when the commit has not moved from one offset for
        STRANDED_AFTER_S although the partition holds records there, those records (up to the log end) are read back, and
        the commit moves past every one whose call is already SCORED (and past control records), up to the first that is
        not (module docstring). The partition's last record counts too: nothing later would ever reveal its loss."""
        upper = max([*done, (end or 0) - 1]) + 1
        if next_offset >= upper or self.database_factory is None:
            stalled_state.clear()
            return next_offset
        now_ms = int(time.time() * 1000)
        stalled = stalled_state.read()
        if not stalled or stalled[0] != next_offset:
            stalled_state.write([next_offset, now_ms])
            return next_offset
        waited_s = (now_ms - stalled[1]) / 1000
        if waited_s < STRANDED_AFTER_S:
            return next_offset
        stalled_state.write([next_offset, now_ms])  # nothing to pass: look again after another STRANDED_AFTER_S
        values, reached = self._read_back(tp, next_offset, upper)
        markers = {offset for offset, value in values.items() if value == WATERMARK_KEY}
        calls: dict[int, str | None] = {offset: _call_id(value) for offset, value in values.items() if offset not in markers}
        if self.db is None:
            self.db = self.database_factory()
        wanted = sorted({call for call in calls.values() if call})
        statuses = hold(POSTGRES, lambda: self.db.call_statuses(wanted), self.outage_budget_s,
                        self.outage_backoff_cap_s) if wanted else {}
        offset, passed = next_offset, []
        while offset < reached:
            if offset in done:
                offset = advance(offset, done)
                continue
            if offset in markers:  # the poller's watermark marker: nothing to wait for
                passed.append(f"{offset} (watermark marker)")
            elif offset in calls:  # a data record: passed only when its call is final
                if statuses.get(calls[offset] or "") != "SCORED":
                    break
                passed.append(f"{offset} (call {calls[offset]})")
            offset += 1  # a control record, or a SCORED call whose position was lost
        offset = advance(offset, done)
        if not passed:
            return next_offset
        log.warning("%s: %d position(s) never reached the commit stage in %d s although their calls are SCORED: "
                    "committing past them: %s", tp, len(passed), int(waited_s), ", ".join(passed[:20]))
        self.recovered.inc(len(passed))
        stalled_state.clear()
        return offset

    def _step_over_gaps(self, tp: Any, next_offset: int, done: set[int], probed: int | None) -> tuple[int, int | None]:
        """While offsets are done beyond `next_offset`, ask (once per offset) whether next_offset is a data record; step over
        it when it is not. Returns the new next offset and the last offset confirmed as data."""
        while done and next_offset < min(done) and probed != next_offset:
            first = self._first_data_offset_from(tp, next_offset)
            if first is None:
                break
            if first > next_offset:
                self.skipped_gaps.inc(first - next_offset)
                next_offset = advance(first, done)
            else:
                probed = next_offset  # a data record still in flight: it will arrive
        return next_offset, probed

    def _reconcile(self, tp: Any, next_offset: int, done: set[int]) -> None:
        """The broker's committed offset must equal ours: a commit acknowledged around a broker restart can be lost (the
        coordinator reloads the group's offsets). Behind → commit again; asked every RECONCILE_EVERY_S per partition, not every
        housekeeping round. Also say when a gap holds the commit."""
        now = time.monotonic()
        if now - self._reconciled_at.get(tp, float("-inf")) >= RECONCILE_EVERY_S:
            self._reconciled_at[tp] = now
            self._reconcile_with_broker(tp, next_offset)
        if done and self._waiting.get(tp) != next_offset:  # once per offset waited at, not every housekeeping round
            self._waiting[tp] = next_offset
            log.info("%s: commit waits at offset %d (a data record still in flight); %d later offset(s) done", tp,
                     next_offset, len(done))

    def _reconcile_with_broker(self, tp: Any, next_offset: int) -> None:
        broker = self._kafka(lambda consumer: consumer.committed(tp))
        if broker is None or int(broker) < next_offset:
            log.warning("%s: the group's committed offset is %s, this job's is %d: committing it again", tp, broker, next_offset)
            self._commit(tp, next_offset)

    def _arm(self, armed_at: Any, housekeeping: Any, force: bool = False) -> None:
        now_ms = int(Timestamp.now().micros // 1000)
        last = armed_at.read()
        lost = last is not None and now_ms - last > (HOUSEKEEPING_DELAY_S + TIMER_LOST_AFTER_S) * 1000
        if force or last is None or lost:
            if lost:
                log.warning("the housekeeping timer armed %d s ago never fired; arming it again", (now_ms - last) // 1000)
            housekeeping.set(Timestamp.now() + Duration(seconds=HOUSEKEEPING_DELAY_S))
            armed_at.write(now_ms)

    def process(self, element: tuple[str, SourcePosition], next_state: Any = beam.DoFn.StateParam(NEXT),
                done_state: Any = beam.DoFn.StateParam(DONE), probed_state: Any = beam.DoFn.StateParam(PROBED),
                armed_at: Any = beam.DoFn.StateParam(ARMED_AT),
                housekeeping: Any = beam.DoFn.TimerParam(HOUSEKEEPING)) -> Iterator[Any]:
        from kafka import TopicPartition

        _, position = element
        tp = TopicPartition(position.topic, position.partition)
        next_offset = next_state.read()
        if next_offset is None:
            next_offset = self._start_offset(tp)
        done = read_done(done_state)
        if position.offset >= next_offset:
            done.add(position.offset)
        advanced = advance(next_offset, done)
        advanced, probed = self._step_over_gaps(tp, advanced, done, probed_state.read())
        if advanced != next_offset:
            self._commit(tp, advanced)
        next_state.write(advanced)
        write_done(done_state, done)
        if probed is not None:
            probed_state.write(probed)
        self._arm(armed_at, housekeeping)
        return iter(())

    @on_timer(HOUSEKEEPING)
    def on_housekeeping(self, key: Any = beam.DoFn.KeyParam, next_state: Any = beam.DoFn.StateParam(NEXT),
                        done_state: Any = beam.DoFn.StateParam(DONE), probed_state: Any = beam.DoFn.StateParam(PROBED),
                        armed_at: Any = beam.DoFn.StateParam(ARMED_AT),
                        stalled_state: Any = beam.DoFn.StateParam(STALLED),
                        housekeeping: Any = beam.DoFn.TimerParam(HOUSEKEEPING)) -> Iterator[Any]:
        from kafka import TopicPartition

        topic, partition = key.rsplit("|", 1)
        tp = TopicPartition(topic, int(partition))
        next_offset = next_state.read()
        done = read_done(done_state)
        armed_at.clear()
        if next_offset is None:
            return iter(())
        log_end = self._kafka(lambda consumer: consumer.end_offsets([tp])).get(tp)
        end = None if log_end is None else int(log_end)
        if end is not None and next_offset < end:
            first = self._first_data_offset_from(tp, next_offset)
            if first is not None and first > next_offset:
                # No data record in [next_offset, first): transaction markers. Step over them.
                self.skipped_gaps.inc(first - next_offset)
                advanced = advance(first, done)
                self._commit(tp, advanced)
                next_offset = advanced
                next_state.write(next_offset)
                write_done(done_state, done)
                probed_state.clear()
        recovered = self._stranded(tp, next_offset, done, end, stalled_state)
        if recovered != next_offset:
            self._commit(tp, recovered)
            next_offset = recovered
            next_state.write(next_offset)
            write_done(done_state, done)
            probed_state.clear()
        self._reconcile(tp, next_offset, done)
        if end is not None:
            prom.QUEUE_DEPTH.labels(topic, str(partition), self.group_id).set(max(0, end - next_offset))
        if done or (end is not None and next_offset < end):
            self._arm(armed_at, housekeeping, force=True)
        return iter(())


def partition_key(position: SourcePosition) -> tuple[str, SourcePosition]:
    return f"{position.topic}|{position.partition}", position


@beam.typehints.with_input_types(SourcePosition)
class CommitOffsets(beam.PTransform):
    """SourcePosition → (nothing): contiguous per-partition offset commits for the consumer group.

    Args:
        bootstrap: Kafka bootstrap servers.
        group_id: the consumer group the reader resumes from.
        consumer_factory: opens the consumer that commits and probes (on first use); None: a real one of the group.
        outage_budget_s, outage_backoff_cap_s: how long a Kafka outage holds the commit, and the longest wait between tries.
        database_factory: opens the database that tells whether a call whose position went missing is SCORED; None: that
            recovery is off (the commit waits for the position).
    """

    def __init__(self, bootstrap: str, group_id: str, *, consumer_factory: Callable[[], Any] | None = None,
                 outage_budget_s: float = 900.0, outage_backoff_cap_s: float = 30.0,
                 database_factory: Callable[[], Any] | None = None) -> None:
        super().__init__()
        self.group_id = group_id
        self.consumer_factory = consumer_factory or functools.partial(offset_consumer, bootstrap, group_id)
        self.database_factory = database_factory
        self.outage_budget_s = outage_budget_s
        self.outage_backoff_cap_s = outage_backoff_cap_s

    def expand(self, positions: Any) -> Any:
        return (
            positions
            | "KeyByPartition" >> beam.Map(partition_key).with_input_types(SourcePosition)
            .with_output_types(tuple[str, SourcePosition])
            | "Commit" >> beam.ParDo(_CommitFn(self.group_id, self.consumer_factory, self.outage_budget_s,
                                               self.outage_backoff_cap_s, self.database_factory))
            .with_input_types(tuple[str, SourcePosition])
        )
