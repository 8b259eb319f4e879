"""`ccas poller`: search the recorder in sliding windows and publish each finished call to calls.raw exactly once.

Per window: search (split while the answer hits the recorder's cap) → drop in-progress and rejected results → drop calls the
dedup table knows → one Kafka transaction → dedup rows + checkpoint in one DB transaction. Any failure after the Kafka
transaction began marks the state "in doubt"; the topic is read back (publisher.read_back) before the next window.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import psycopg2
from kafka.errors import KafkaError, ProducerFencedError

import schemas
from avaya_source.client import LAYOUT_CONTACTS, LAYOUT_SEGMENTS, AvayaClient, AvayaError, Credentials
from avaya_source.metrics import PollerMetrics
from avaya_source.publisher import TransactionalPublisher
from avaya_source.records import Contact, Recording
from avaya_source.store import IngestStore, Published
from avaya_source.windows import Window, WindowPolicy, behind, floor_second, next_window
from avaya_source.xmlsafe import SearchPage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollerConfig:
    policy: WindowPolicy
    first_start: datetime  # where to begin when the checkpoint table is empty
    interval_s: float = 30.0
    search_cap: int = 1000  # the recorder's max results per search: an answer this long is split and re-queried
    with_contacts: bool = True  # also ask SearchLayout60 for contactid + inums of multi-inum calls


@dataclass
class WindowOutcome:
    window: Window
    results: int = 0
    published: int = 0
    duplicates: int = 0
    rejected: int = 0
    in_progress: int = 0
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

    def reconcile_since(self, checkpoint: tuple[datetime, datetime] | None) -> datetime:
        """The earliest call end an unrecorded publication can have: the start of the first un-checkpointed window."""
        if checkpoint is None:
            return self.config.first_start
        return checkpoint[1] - self.config.policy.lookback

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

    def poll_window(self, window: Window) -> WindowOutcome:
        """Poll, publish and checkpoint one window; raises (and leaves the checkpoint alone) if any step fails."""
        started = time.monotonic()
        outcome = WindowOutcome(window)
        page = self._search(window, LAYOUT_SEGMENTS)
        contacts = self._search(window, LAYOUT_CONTACTS).contacts if self.config.with_contacts else []
        outcome.results = page.result_count
        for bad in page.rejected:
            self.metrics.rejected.labels(bad.reason).inc()
        outcome.rejected = len(page.rejected)

        unique: dict[str, Recording] = {}
        for recording in page.recordings:
            if recording.call_id in unique:
                outcome.duplicates += 1
            else:
                unique[recording.call_id] = recording
        ended = [r for r in unique.values() if r.ended]
        outcome.in_progress = len(unique) - len(ended)
        ended = _with_contacts(ended, list(unique.values()), contacts)

        known = self.store.known(r.call_id for r in ended)
        outcome.duplicates += len(known)
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

        self.in_doubt = True  # from here until the DB commit, a failure leaves the topic ahead of the table
        self.publisher.publish(events)
        outcome.poll_to_publish_s = time.monotonic() - started
        published_at = datetime.now(UTC)
        self.store.commit_window([Published.of(r) for r, _ in events], window.start, window.end)
        self.in_doubt = False

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
            "window %s: %d results, %d published, %d duplicate, %d rejected, %d in progress (%.3f s)",
            window, outcome.results, outcome.published, outcome.duplicates, outcome.rejected, outcome.in_progress,
            time.monotonic() - started,
        )
        return outcome

    # -- loop ------------------------------------------------------------------------------------------------------------

    def _attempt(self, window_or_none: Window | None) -> WindowOutcome | None:
        """One step: reconcile if in doubt, then poll the given or the next window. Errors are logged, counted and raised."""
        try:
            checkpoint = self.store.checkpoint()
            if checkpoint is not None:
                self._checkpoint_to = max(checkpoint[1], self._checkpoint_to or checkpoint[1])
            if self.in_doubt:
                since = self.reconcile_since(checkpoint)
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


def _moment(text: str) -> datetime:
    """ISO 8601 (naive = UTC here: operators type UTC), or seconds relative to now (`-3600`)."""
    try:
        return datetime.now(UTC) + timedelta(seconds=float(text))
    except ValueError:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    from ccas.settings import ports

    p = argparse.ArgumentParser(prog="ccas poller", description=__doc__.splitlines()[0])

    def add(flag: str, env: str, default: object, kind: type = str, **kw: object) -> None:
        value = os.environ.get(env) or (None if default is None else str(default))
        p.add_argument(flag, default=value, type=kind, help=f"(env {env}, default {default})", **kw)

    p.add_argument("--once", action="store_true", help="poll one window and exit (the next due one, or --from/--to)")
    add("--from", "CCAS_POLLER_FROM", None, _moment, dest="window_from")
    add("--to", "CCAS_POLLER_TO", None, _moment, dest="window_to")
    add("--start", "CCAS_POLLER_START", "-3600", _moment, dest="first_start")
    add("--interval", "CCAS_POLLER_INTERVAL", 30.0, float)
    add("--lookback", "CCAS_POLLER_LOOKBACK", 900.0, float)
    add("--settle", "CCAS_POLLER_SETTLE", 30.0, float)
    add("--max-window", "CCAS_POLLER_MAX_WINDOW", 600.0, float)
    add("--search-cap", "CCAS_AVAYA_SEARCH_CAP", 1000, int)
    add("--contacts", "CCAS_POLLER_CONTACTS", "true", choices=("true", "false"))
    add("--topic", "CCAS_POLLER_TOPIC", "calls.raw")
    add("--transactional-id", "CCAS_POLLER_TRANSACTIONAL_ID", None)
    add("--metrics-port", "CCAS_POLLER_METRICS_PORT", ports().poller_metrics, int)
    add("--metrics-host", "CCAS_POLLER_METRICS_HOST", "127.0.0.1")
    add("--avaya-url", "CCAS_AVAYA_URL", None)
    add("--connect-timeout", "CCAS_AVAYA_CONNECT_TIMEOUT", 3.05, float)
    add("--read-timeout", "CCAS_AVAYA_READ_TIMEOUT", 30.0, float)
    add("--retries", "CCAS_AVAYA_RETRIES", 3, int)
    add("--max-response-bytes", "CCAS_AVAYA_MAX_RESPONSE_BYTES", 8 * 1024 * 1024, int)
    add("--kafka-bootstrap", "CCAS_KAFKA_BOOTSTRAP", None)
    add("--database-url", "CCAS_DATABASE_URL", None)
    add("--log-level", "CCAS_LOG_LEVEL", "INFO")
    return p


def main(argv: list[str]) -> int:
    from ccas.settings import setting

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level.upper() != "DEBUG":
        logging.getLogger("kafka").setLevel(logging.WARNING)  # its INFO lines (connections, metadata) drown the poller's own
    if (args.window_from is None) != (args.window_to is None) or (args.window_from and not args.once):
        print("ccas poller: --from and --to go together, with --once", file=sys.stderr)
        return 2
    policy = WindowPolicy(timedelta(seconds=args.lookback), timedelta(seconds=args.settle), timedelta(seconds=args.max_window))
    config = PollerConfig(policy, args.first_start, args.interval, args.search_cap, args.contacts == "true")
    client = AvayaClient(
        args.avaya_url or setting("CCAS_AVAYA_URL"),
        Credentials.from_env(),  # the password never travels on a command line (ps shows argv)
        connect_timeout=args.connect_timeout,
        read_timeout=args.read_timeout,
        retries=args.retries,
        max_response_bytes=args.max_response_bytes,
    )
    store = IngestStore(args.database_url or setting("CCAS_DATABASE_URL"))
    publisher = TransactionalPublisher(
        args.kafka_bootstrap or setting("CCAS_KAFKA_BOOTSTRAP"), args.topic, args.transactional_id or f"ccas-poller.{args.topic}"
    )
    metrics = PollerMetrics()
    poller = Poller(client, store, publisher, config, metrics)
    try:
        if args.once:
            window = Window(floor_second(args.window_from), floor_second(args.window_to)) if args.window_from else None
            try:
                outcome = poller.run_once(window)
            except _WindowFailed:
                return 1
            print("nothing due" if outcome is None else f"{outcome.window}: {outcome.published} published, "
                  f"{outcome.duplicates} duplicate, {outcome.rejected} rejected, {outcome.in_progress} in progress")
            return 0
        if args.metrics_port > 0:
            metrics.serve(args.metrics_port, args.metrics_host)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())  # finish the current window, then leave
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        log.info("poller: %s → %s every %g s (metrics :%d)", client.base_url, args.topic, args.interval, args.metrics_port)
        poller.run(stop)
        log.info("poller stopped")
        return 0
    finally:
        publisher.close()
        store.close()
        client.close()
