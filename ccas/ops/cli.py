"""`ccas dlq list [--hide-resolved] | show CALL_ID [--full] | requeue (--call-id ID ... | --error-type E | --all) [--dry-run]
[--requested-by NAME]`."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import logging
import os
import socket
import sys
from datetime import UTC, datetime

import psycopg2

from ccas.ops import audit, dlq, dlq_state
from ccas.ops.masking import mask_record, mask_summary
from ccas.ops.requeue import Outcome, Requeuer
from ccas.ops.settings import DlqSettings
from core.config import add_flags, load_for_command, secret


def _since(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} needs a time zone (e.g. 2026-11-25T10:00:00Z)")
    return parsed


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topic", choices=dlq.DLQ_TOPICS)
    parser.add_argument("--stage")
    parser.add_argument("--error-type")
    parser.add_argument("--since", type=_since, help="failed at or after this ISO time (with zone)")


UNKNOWN = "?"
CLI_ROLE = "cli"  # audit_log.role of a CLI run: it holds no token, it has Kafka and PostgreSQL access of its own


def _os_user() -> str:
    """Who runs the command, for dlq_requeue.requested_by and audit_log.actor."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (a bare container user)
        return f"uid-{os.getuid()}"


def _audit_requeue(database_url: str, actor: str, args: argparse.Namespace, outcomes: list[Outcome] | None,
                   error: BaseException | None = None) -> None:
    actions: dict[str, int] = {}
    for outcome in outcomes or ():
        actions[outcome.action] = actions.get(outcome.action, 0) + 1
    selection = "&".join(f"{name}={value}" for name, value in (
        ("all", args.all or None), ("call_ids", ",".join(args.call_ids) if args.call_ids else None),
        ("error_type", args.selected_error_type), ("topic", args.topic), ("stage", args.stage),
        ("since", args.since.isoformat() if args.since else None)) if value)
    detail = {"dry_run": args.dry_run, "call_ids": args.call_ids, "actions": actions,
              **({"error_type": type(error).__name__} if error else {})}
    audit.record(database_url, actor, CLI_ROLE, "dlq.requeue", "dlq", selection, socket.gethostname(),
                 "error" if error else "ok", detail)


def _short_time(text: str | None) -> str:
    """An ISO time as `YYYY-MM-DD HH:MM:SSZ` (UTC) so the table stays narrow; unparsable text as it is."""
    if not text:
        return ""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text[:20]
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment.tzinfo else text[:20]


def _yes_no(value: bool | None) -> str:
    return UNKNOWN if value is None else ("yes" if value else "no")


def _table(listing: dlq_state.Listing) -> str:
    """One line per dead letter; a requeued one gets a second line with when, by whom and the new ingest_uuid."""
    lines = [f"{'call_id':<20} {'stage':<9} {'error_type':<22} {'retries':>7}  {'failed_at':<20}  {'requeued':<8} "
             f"{'call_status':<16} {'result':<6} error"]
    for row in map(mask_summary, listing.rows()):  # the error line may quote a number
        known = row["resolved"] is not None
        requeued = (f"yes #{row['requeue_count']}" if row["requeued"] else "no") if known else UNKNOWN
        status = (row["call_status"] or "-") if known else UNKNOWN
        lines.append(f"{str(row['call_id']):<20} {row['stage']:<9} {row['error_type']:<22} {str(row['retries']):>7}  "
                     f"{_short_time(row['failed_at']):<20}  {requeued:<8} {status:<16} {_yes_no(row['has_scoring_result']):<6} "
                     f"{row['error'][:60]}")
        if row["requeued"]:
            lines.append(f"{'':<20} requeued #{row['requeue_count']} at {_short_time(row['requeued_at'])} by "
                         f"{row['requeued_by']}, new ingest_uuid {row['requeue_ingest_uuid']}")
    hidden = f", {listing.hidden} resolved hidden" if listing.hidden else ""
    lines.append(f"{len(listing.records)} dead letter(s){hidden}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas dlq", description="inspect and requeue dead letters (calls.raw.dlq, "
                                     "audio.ready.dlq, scoring.results.dlq)")
    add_flags(parser, DlqSettings, skip=["database_url"])  # --database-url belongs to `requeue`, the one that needs it
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="a table of dead letters, with whether each was requeued and its call's status now")
    _filters(listing)
    listing.add_argument("--hide-resolved", action="store_true",
                         help="leave out dead letters whose call is now SCORED with a scoring_result (however it got there)")
    listing.add_argument("--json", action="store_true")
    add_flags(listing, DlqSettings, skip=["kafka_bootstrap"])  # the status columns; unset or unreachable: shown unknown
    show = sub.add_parser("show", help="the full records of one call, with the original payload and stack")
    show.add_argument("call_id")
    show.add_argument("--full", action="store_true", help="customer numbers in clear (masked by default)")
    requeue = sub.add_parser("requeue", help="republish original payloads to calls.raw (recorded; never twice)")
    selector = requeue.add_mutually_exclusive_group(required=True)
    selector.add_argument("--call-id", nargs="+", dest="call_ids")
    selector.add_argument("--error-type", dest="selected_error_type")
    selector.add_argument("--all", action="store_true")
    requeue.add_argument("--topic", choices=dlq.DLQ_TOPICS)
    requeue.add_argument("--stage")
    requeue.add_argument("--since", type=_since)
    requeue.add_argument("--dry-run", action="store_true")
    requeue.add_argument("--requested-by", default=None, metavar="NAME",
                         help="who asked, recorded in dlq_requeue and audit_log (default: the OS user running this)")
    add_flags(requeue, DlqSettings, skip=["kafka_bootstrap"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    settings = load_for_command(DlqSettings, args, "ccas dlq")
    bootstrap = settings.kafka_bootstrap
    try:
        if args.command == "list":
            records = dlq.list_dead_letters(bootstrap, dlq.Filter(args.topic, args.stage, args.error_type, args.since))
            listing = dlq_state.annotate(records, secret(settings.database_url) or None)
            if args.hide_resolved:
                listing = listing.without_resolved()
            warning = listing.warning(args.hide_resolved)
            if warning:
                print(f"ccas dlq: {warning}", file=sys.stderr)
            print(json.dumps([mask_summary(row) for row in listing.rows()], indent=2) if args.json else _table(listing))
            return 0
        if args.command == "show":
            if not dlq.schemas.is_valid_call_id(args.call_id):
                raise ValueError(f"invalid call_id {args.call_id!r}")
            records = dlq.show(bootstrap, args.call_id)
            shown = [r.full() if args.full else mask_record(r.full()) for r in records]
            print(json.dumps(shown, indent=2, default=str))
            return 0 if records else 1
        where = dlq.Filter(args.topic, args.stage, args.selected_error_type, args.since,
                           frozenset(args.call_ids) if args.call_ids else None)
        if settings.database_url is None:
            raise ValueError("requeue records what it did in PostgreSQL: set CCAS_DATABASE_URL or --database-url")
        database_url = secret(settings.database_url)
        requested_by = (args.requested_by or _os_user())[:64]  # dlq_requeue.requested_by is String(64)
        requeuer = Requeuer(bootstrap, database_url, requested_by=requested_by)
        try:
            outcomes = requeuer.requeue(where, dry_run=args.dry_run)
        except Exception as error:
            with contextlib.suppress(psycopg2.Error):  # the requeue's own error is the one to report
                _audit_requeue(database_url, requested_by, args, None, error)
            raise
        try:
            _audit_requeue(database_url, requested_by, args, outcomes)
        except psycopg2.Error as error:
            # Done and recorded in dlq_requeue, but not audited: say so and fail the command so it is noticed.
            print(f"ccas dlq: requeue done but its audit row could not be written: {type(error).__name__}", file=sys.stderr)
            status = 1
        else:
            status = 0
        for outcome in outcomes:
            print(f"{str(outcome.call_id):<20} {outcome.dlq:<24} {outcome.stage:<9} {outcome.error_type:<22} "
                  f"{outcome.action:<16} {outcome.detail}")
        print(f"{sum(o.action in ('requeued', 'would_requeue') for o in outcomes)} "
              f"{'would be requeued' if args.dry_run else 'requeued'}, {len(outcomes)} record(s) considered")
        return status
    except ValueError as error:
        print(f"ccas dlq: {error}", file=sys.stderr)
        return 2
