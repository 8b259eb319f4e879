"""CommitOffsets: advance the consumer group past a message only when it and every message before it in its partition is done.

"Done" = its result, dead letter, or duplicate-drop was written by the sinks upstream. Offsets are committed contiguously per
partition, so after a crash the job resumes from the group's committed offsets and replays (never skips) what was in flight.
Kafka transactions leave control records between data records (the poller publishes transactionally): an offset that never
arrives is checked against the broker and skipped only if no data record holds it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.coders import BooleanCoder, ListCoder, VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration, Timestamp

from pipeline import metrics as prom
from pipeline.clients import offset_consumer
from pipeline.model import SourcePosition

log = logging.getLogger(__name__)
HOUSEKEEPING_DELAY_S = 2


def advance(next_offset: int, done: set[int]) -> int:
    """The first offset not yet done, starting from next_offset (removes the consumed ones from `done`)."""
    while next_offset in done:
        done.discard(next_offset)
        next_offset += 1
    return next_offset


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
    ARMED = ReadModifyWriteStateSpec("armed", BooleanCoder())
    HOUSEKEEPING = TimerSpec("housekeeping", TimeDomain.REAL_TIME)

    def __init__(self, group_id: str, consumer_factory: Callable[[], Any]) -> None:
        self.group_id = group_id
        self.consumer_factory = consumer_factory
        self.committed = Metrics.counter(self.__class__, "offset_commits")
        self.skipped_gaps = Metrics.counter(self.__class__, "non_data_offsets_skipped")

    def setup(self) -> None:
        self.consumer = self.consumer_factory()

    def teardown(self) -> None:
        consumer = getattr(self, "consumer", None)  # absent when setup failed
        if consumer is None:
            return
        try:
            consumer.close(autocommit=False)
        except Exception as error:  # teardown is best effort: the worker is going away either way
            log.warning("closing the offset consumer failed: %s", error)

    def _start_offset(self, tp: Any) -> int:
        committed = self.consumer.committed(tp)
        if committed is not None:
            return int(committed)
        return int(self.consumer.beginning_offsets([tp])[tp])

    def _commit(self, tp: Any, offset: int) -> None:
        from kafka.structs import OffsetAndMetadata

        self.consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
        self.committed.inc()
        prom.OFFSETS_COMMITTED.labels(tp.topic).inc()

    def _first_data_offset_from(self, tp: Any, offset: int) -> int | None:
        """The offset of the first data record at or after `offset`, or the position past trailing control records; None if
        the broker has nothing there yet."""
        self.consumer.assign([tp])
        self.consumer.seek(tp, offset)
        batches = self.consumer.poll(timeout_ms=2000, max_records=1)
        for records in batches.values():
            if records:
                return int(records[0].offset)
        position = int(self.consumer.position(tp))
        return position if position > offset else None

    def process(self, element: tuple[str, SourcePosition], next_state: Any = beam.DoFn.StateParam(NEXT),
                done_state: Any = beam.DoFn.StateParam(DONE), armed: Any = beam.DoFn.StateParam(ARMED),
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
        if advanced != next_offset:
            self._commit(tp, advanced)
        next_state.write(advanced)
        write_done(done_state, done)
        if not armed.read():
            housekeeping.set(Timestamp.now() + Duration(seconds=HOUSEKEEPING_DELAY_S))
            armed.write(True)
        return iter(())

    @on_timer(HOUSEKEEPING)
    def on_housekeeping(self, key: Any = beam.DoFn.KeyParam, next_state: Any = beam.DoFn.StateParam(NEXT),
                        done_state: Any = beam.DoFn.StateParam(DONE), armed: Any = beam.DoFn.StateParam(ARMED),
                        housekeeping: Any = beam.DoFn.TimerParam(HOUSEKEEPING)) -> Iterator[Any]:
        from kafka import TopicPartition

        topic, partition = key.rsplit("|", 1)
        tp = TopicPartition(topic, int(partition))
        next_offset = next_state.read()
        done = read_done(done_state)
        armed.write(False)
        if next_offset is None:
            return iter(())
        end = self.consumer.end_offsets([tp]).get(tp)
        if end is not None and next_offset < int(end):
            first = self._first_data_offset_from(tp, next_offset)
            if first is not None and first > next_offset:
                # No data record in [next_offset, first): transaction markers. Step over them.
                self.skipped_gaps.inc(first - next_offset)
                advanced = advance(first, done)
                self._commit(tp, advanced)
                next_offset = advanced
                next_state.write(next_offset)
                write_done(done_state, done)
        if end is not None:
            prom.QUEUE_DEPTH.labels(topic, str(partition), self.group_id).set(max(0, int(end) - next_offset))
        if done or (end is not None and next_offset < int(end)):
            housekeeping.set(Timestamp.now() + Duration(seconds=HOUSEKEEPING_DELAY_S))
            armed.write(True)
        return iter(())


def partition_key(position: SourcePosition) -> tuple[str, SourcePosition]:
    return f"{position.topic}|{position.partition}", position


@beam.typehints.with_input_types(SourcePosition)
class CommitOffsets(beam.PTransform):
    """SourcePosition → (nothing): contiguous per-partition offset commits for the consumer group.

    Args:
        bootstrap: Kafka bootstrap servers.
        group_id: the consumer group the reader resumes from.
        consumer_factory: opens the consumer that commits and probes (called in DoFn setup); None: a real one of the group.
    """

    def __init__(self, bootstrap: str, group_id: str, *, consumer_factory: Callable[[], Any] | None = None) -> None:
        super().__init__()
        self.group_id = group_id
        self.consumer_factory = consumer_factory or functools.partial(offset_consumer, bootstrap, group_id)

    def expand(self, positions: Any) -> Any:
        return (
            positions
            | "KeyByPartition" >> beam.Map(partition_key).with_input_types(SourcePosition)
            .with_output_types(tuple[str, SourcePosition])
            | "Commit" >> beam.ParDo(_CommitFn(self.group_id, self.consumer_factory))
            .with_input_types(tuple[str, SourcePosition])
        )
