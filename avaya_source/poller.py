"""`ccas poller`: search the recorder in sliding windows and publish each finished call to calls.raw exactly once.

Per window: search (split while the answer hits the recorder's cap), and search again the start seconds of the recordings
tracked as in progress (tracking.py) → drop rejected results and those still in progress → drop calls the dedup table knows →
one Kafka transaction → dedup rows + tracking changes + checkpoint in one DB transaction. Any failure after the Kafka
transaction began marks the state "in doubt"; the topic is read back (publisher.read_back) before the next window.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg2
from kafka.errors import KafkaError, ProducerFencedError

import schemas
from avaya_source import tracking
from avaya_source.client import LAYOUT_CONTACTS, LAYOUT_SEGMENTS, AvayaClient, AvayaError
from avaya_source.metrics import PollerMetrics
from avaya_source.publisher import TransactionalPublisher
from avaya_source.records import Contact, Recording
from avaya_source.settings import PollerSettings
from avaya_source.store import IngestStore, Published
from avaya_source.tracking import Tracked, TrackingChange
from avaya_source.windows import Window, WindowPolicy, behind, floor_second, next_window
from avaya_source.xmlsafe import SearchPage
from core.config import add_flags, env_var, load, secret

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollerConfig:
    policy: WindowPolicy
    first_start: datetime  # where to begin when the checkpoint table is empty
    interval_s: float = 30.0
    search_cap: int = 1000  # the recorder's max results per search: an answer this long is split and re-queried
    with_contacts: bool = True  # also ask SearchLayout60 for contactid + inums of multi-inum calls
    max_call_age: timedelta = timedelta(hours=4)  # a recording still in progress after this long is dropped, loudly
    watermark_interval: timedelta = timedelta(seconds=60)  # least event time between two rounds of watermark markers


@dataclass
class WindowOutcome:
    window: Window
    results: int = 0
    published: int = 0
    duplicates: int = 0
    rejected: int = 0
    in_progress: int = 0
    tracked: int = 0  # recordings tracked as in progress after this window
    poll_to_publish_s: float = 0.0


class Poller:
    def __init__(
        self,
        client: AvayaClient,
        store: IngestStore,
        publisher: TransactionalPublisher,
        config: PollerConfig,
        metrics: PollerMetrics | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.publisher = publisher
        self.config = config
        self.metrics = metrics or PollerMetrics()
        self.in_doubt = True  # at start we do not know whether a previous run died between Kafka and the DB
        self._checkpoint_to: datetime | None = None
        self._marked_to: datetime | None = None  # the newest watermark marker this process wrote
        self._expired: set[str] = set()  # inums already reported as expired by this process: counted once
        self.metrics.ingest_lag.set_function(self._lag)

    def _lag(self) -> float:
        return 0.0 if self._checkpoint_to is None else (datetime.now(UTC) - self._checkpoint_to).total_seconds()

    # -- exactly-once bookkeeping ----------------------------------------------------------------------------------------

    def reconcile(self, since: datetime) -> int:
        """Record in the dedup table every call committed on the topic since `since` (see publisher.py); clears the doubt."""
        found = self.publisher.read_back(since)
        missing = self.store.mark_published(found)
        if missing:
            log.warning("reconcile: %d call(s) on %s missing from the dedup table; recorded now", missing, self.publisher.topic)
        self.metrics.reconciled.inc(missing)
        self.in_doubt = False
        return missing

    def reconcile_since(self, checkpoint: tuple[datetime, datetime] | None, tracked: Sequence[Tracked] = ()) -> datetime:
        """The earliest call end an unrecorded publication can have: the start of the first un-checkpointed window, or earlier
        for a tracked call (published when it ended, however long ago it started)."""
        since = self.config.first_start if checkpoint is None else checkpoint[1] - self.config.policy.lookback
        floor = tracking.reconcile_floor(tracked, self.config.policy.lookback)
        return since if floor is None else min(since, floor)

    # -- one window ------------------------------------------------------------------------------------------------------

    def _search(self, window: Window, layout: str) -> SearchPage:
        page = self.client.search(window.start, window.end, layout)
        if page.result_count < self.config.search_cap:
            return page
        halves = window.split()
        if halves is None:
            log.error("window %s hits the cap of %d results at one second; some may be missed", window, self.config.search_cap)
            self.metrics.poll_errors.labels("cap_unsplittable").inc()
            return page
        self.metrics.splits.inc()
        log.info("window %s hit the cap (%d results): split in two", window, page.result_count)
        left, right = (self._search(half, layout) for half in halves)
        return SearchPage(
            left.recordings + right.recordings,
            left.contacts + right.contacts,
            left.rejected + right.rejected,
            left.result_count + right.result_count,
        )

    def _recheck(self, tracked: list[Tracked], window: Window) -> SearchPage:
        """The start seconds of tracked recordings that this window does not cover, searched again (both layouts)."""
        found = SearchPage()
        for recheck in tracking.recheck_windows(tracked, window.start):
            page = self._search(recheck, LAYOUT_SEGMENTS)
            found.recordings += page.recordings
            found.rejected += page.rejected
            found.result_count += page.result_count
            if self.config.with_contacts:
                found.contacts += self._search(recheck, LAYOUT_CONTACTS).contacts
        return found

    def poll_window(self, window: Window) -> WindowOutcome:
        """Poll, publish and checkpoint one window; raises (and leaves the checkpoint alone) if any step fails."""
        started = time.monotonic()
        searched_at = datetime.now(UTC)  # a recording listed in progress had not ended (long) before this
        outcome = WindowOutcome(window)
        page = self._search(window, LAYOUT_SEGMENTS)
        contacts = self._search(window, LAYOUT_CONTACTS).contacts if self.config.with_contacts else []
        tracked = self.store.tracked()
        rechecked = self._recheck(tracked, window)
        outcome.results = page.result_count
        for bad in page.rejected + rechecked.rejected:
            self.metrics.rejected.labels(bad.reason).inc()
        outcome.rejected = len(page.rejected) + len(rechecked.rejected)

        unique: dict[str, Recording] = {}
        for recording in page.recordings:
            if recording.call_id in unique:
                outcome.duplicates += 1
            else:
                unique[recording.call_id] = recording
        in_window = set(unique)
        for recording in rechecked.recordings:  # calls started near a tracked one are listed again: not duplicates
            unique.setdefault(recording.call_id, recording)
        ended = [r for r in unique.values() if r.ended]
        outcome.in_progress = len(unique) - len(ended)
        ended = _with_contacts(ended, list(unique.values()), contacts + rechecked.contacts)

        known = self.store.known(r.call_id for r in ended)
        outcome.duplicates += len(known & in_window)
        events: list[tuple[Recording, dict]] = []
        now = datetime.now(UTC)
        for recording in sorted((r for r in ended if r.call_id not in known), key=lambda r: r.started_at):
            value = recording.to_event(now)
            try:
                schemas.validate("calls.raw", value)
            except schemas.SchemaError as exc:
                log.warning("rejected inum=%s: %s", recording.call_id, exc)
                self.metrics.rejected.labels("schema").inc()
                outcome.rejected += 1
                continue
            events.append((recording, value))

        change = tracking.plan(tracked, unique.values(), {r.call_id for r in ended}, searched_at, self.config.max_call_age)

        self.in_doubt = True  # from here until the DB commit, a failure leaves the topic ahead of the table
        # Every call that ended before the window's end is published now or was before (a call still running when the
        # recorder was asked ends later): the window's end is the readers' watermark for partitions without a call. Not
        # after every window: a round of markers is a message per partition, and a minute of event time is fine enough
        # for hourly windows.
        marks = self._marked_to is None or window.end - self._marked_to >= self.config.watermark_interval
        self.publisher.publish(events, watermark=window.end if marks else None)
        if marks:
            self._marked_to = window.end
        outcome.poll_to_publish_s = time.monotonic() - started
        published_at = datetime.now(UTC)
        self.store.commit_window([Published.of(r) for r, _ in events], window.start, window.end, change)
        self.in_doubt = False
        self._report_expired(change)
        outcome.tracked = len(({r.call_id for r in tracked} | {r.call_id for r in change.seen}) - change.dropped)
        self.metrics.tracked.set(outcome.tracked)

        self._checkpoint_to = max(window.end, self._checkpoint_to or window.end)
        outcome.published = len(events)
        m = self.metrics
        m.published.inc(outcome.published)
        m.duplicates.inc(outcome.duplicates)
        m.in_progress.set(outcome.in_progress)
        m.windows.inc()
        m.poll_duration.observe(time.monotonic() - started)
        if events:
            m.poll_to_publish.observe(outcome.poll_to_publish_s)
            for recording, _ in events:
                m.publish_delay.observe(max(0.0, (published_at - recording.ended_at).total_seconds()))  # type: ignore[operator]
        log.info(
            "window %s: %d results, %d published, %d duplicate, %d rejected, %d in progress, %d tracked (%.3f s)",
            window, outcome.results, outcome.published, outcome.duplicates, outcome.rejected, outcome.in_progress,
            outcome.tracked, time.monotonic() - started,
        )
        return outcome

    def _report_expired(self, change: TrackingChange) -> None:
        """Never silent: each recording dropped at the maximum call age is counted and named (after the DB commit)."""
        for row in change.expired:
            if row.call_id in self._expired:
                continue
            if len(self._expired) >= 100_000:
                self._expired.clear()
            self._expired.add(row.call_id)
            self.metrics.expired.inc()
            log.warning(
                "in-progress recording inum=%s started %s (first seen %s, last listed in progress %s) is older than the "
                "maximum call age of %d s: dropped from tracking, NOT published; once it has ended, publish it with "
                "`ccas poller --once --from <start> --to <start>`",
                row.call_id, row.started_at.isoformat(), row.first_seen_at.isoformat(), row.last_seen_at.isoformat(),
                int(self.config.max_call_age.total_seconds()),
            )

    # -- loop ------------------------------------------------------------------------------------------------------------

    def _attempt(self, window_or_none: Window | None) -> WindowOutcome | None:
        """One step: reconcile if in doubt, then poll the given or the next window. Errors are logged, counted and raised."""
        try:
            checkpoint = self.store.checkpoint()
            if checkpoint is not None:
                self._checkpoint_to = max(checkpoint[1], self._checkpoint_to or checkpoint[1])
            if self.in_doubt:
                since = self.reconcile_since(checkpoint, self.store.tracked())
                self.reconcile(min(since, window_or_none.start) if window_or_none else since)
            window = window_or_none or next_window(
                checkpoint[1] if checkpoint else None, self.config.first_start, datetime.now(UTC), self.config.policy
            )
            return None if window is None else self.poll_window(window)
        except AvayaError as exc:
            self._failed(exc.reason, exc)
        except ProducerFencedError as exc:
            log.error("another poller with transactional id %s took over; stopping", self.publisher.transactional_id)
            self.metrics.poll_errors.labels("fenced").inc()
            raise SystemExit(3) from exc
        except (KafkaError, TimeoutError) as exc:
            self.publisher.reset()
            self._failed("kafka", exc)
        except psycopg2.Error as exc:
            self._failed("database", exc)
        except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen answer must not stop ingestion; counted and logged
            log.exception("unexpected error while polling")
            self.publisher.reset()
            self.in_doubt = True  # we cannot tell how far the window got
            self._failed("unexpected", exc)
        raise _WindowFailed()

    def _failed(self, reason: str, exc: BaseException) -> None:
        self.metrics.poll_errors.labels(reason).inc()
        log.error("poll failed (%s), window will be retried: %s: %s", reason, type(exc).__name__, str(exc)[:300])

    def run_once(self, window: Window | None = None) -> WindowOutcome | None:
        """`--once`: the given window (backfill) or the next due one; raises _WindowFailed if it failed."""
        return self._attempt(window)

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set; a window in progress is always finished (SIGTERM waits for it)."""
        while not stop.is_set():
            try:
                outcome = self._attempt(None)
            except _WindowFailed:
                stop.wait(self.config.interval_s)
                continue
            if outcome is not None and behind(self._checkpoint_to, datetime.now(UTC), self.config.policy):
                continue  # catching up: next chunk at once
            stop.wait(self.config.interval_s)


class _WindowFailed(Exception):
    """A window failed; its cause was logged and counted."""


def _with_contacts(ended: list[Recording], listed: list[Recording], contacts: list[Contact]) -> list[Recording]:
    """Attach contact_id and the contact's inums; without a SearchLayout60 match, group the answer's inums by switchcallid."""
    by_inum = {inum: contact for contact in contacts for inum in contact.inums}
    by_switch: dict[str, list[Recording]] = {}
    for recording in listed:
        if recording.switch_call_id:
            by_switch.setdefault(recording.switch_call_id, []).append(recording)
    out = []
    for recording in ended:
        contact = by_inum.get(recording.call_id)
        if contact is not None:
            out.append(replace(recording, contact_id=contact.contact_id, inums=contact.inums))
            continue
        siblings = sorted(by_switch.get(recording.switch_call_id, [recording]), key=lambda r: (r.started_at, r.call_id))
        out.append(replace(recording, inums=tuple(r.call_id for r in siblings)))
    return out


# -- CLI ---------------------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccas poller", description=__doc__.splitlines()[0])
    # A switch rather than a `--once true` flag, as operators and scripts have always typed it.
    once_help = PollerSettings.model_fields["poller_once"].description
    parser.add_argument("--once", dest="poller_once", action="store_const", const=True, default=None,
                        help=f"{once_help} [{env_var(PollerSettings, 'poller_once')}]")
    add_flags(parser, PollerSettings, skip=["poller_once"])
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load(PollerSettings, args)
        credentials = settings.credentials()  # give the password as a variable or a mounted file: ps shows a command line
        recorder_zone = ZoneInfo(settings.avaya_tz)
    except (ValueError, OSError, ZoneInfoNotFoundError) as error:
        print(f"ccas poller: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO lines (connections, metadata) drown the poller's own
    policy = WindowPolicy(timedelta(seconds=settings.poller_lookback), timedelta(seconds=settings.poller_settle),
                          timedelta(seconds=settings.poller_max_window))
    config = PollerConfig(policy, settings.poller_start, settings.poller_interval, settings.avaya_search_cap,
                          settings.poller_contacts, timedelta(seconds=settings.poller_max_call_age),
                          timedelta(seconds=settings.poller_watermark_interval))
    client = AvayaClient(
        settings.avaya_url,
        credentials,
        tz=recorder_zone,
        connect_timeout=settings.avaya_connect_timeout,
        read_timeout=settings.avaya_read_timeout,
        retries=settings.avaya_retries,
        max_response_bytes=settings.avaya_max_response_bytes,
    )
    store = IngestStore(secret(settings.database_url))
    publisher = TransactionalPublisher(settings.kafka_bootstrap, settings.poller_topic, settings.transactional_id(),
                                       security=settings.kafka_security())
    metrics = PollerMetrics()
    poller = Poller(client, store, publisher, config, metrics)
    try:
        if settings.poller_once:
            start, end = settings.poller_from, settings.poller_to
            window = Window(floor_second(start), floor_second(end)) if start and end else None
            try:
                outcome = poller.run_once(window)
            except _WindowFailed:
                return 1
            print("nothing due" if outcome is None else f"{outcome.window}: {outcome.published} published, "
                  f"{outcome.duplicates} duplicate, {outcome.rejected} rejected, {outcome.in_progress} in progress")
            return 0
        if settings.poller_metrics_port > 0:
            metrics.serve(settings.poller_metrics_port, settings.poller_metrics_host)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())  # finish the current window, then leave
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        log.info("poller: %s → %s every %g s (metrics :%d)", client.base_url, settings.poller_topic, settings.poller_interval,
                 settings.poller_metrics_port)
        poller.run(stop)
        log.info("poller stopped")
        return 0
    finally:
        publisher.close()
        store.close()
        client.close()
