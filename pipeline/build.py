"""The pipeline graph, one line per stage (labels are stable: Flink shows them and savepoints depend on them)."""

from __future__ import annotations

import apache_beam as beam

from pipeline.clients import StageClients
from pipeline.options import JobConfig
from pipeline.transforms.analytics import ExportScoringResults
from pipeline.transforms.commit import CommitOffsets
from pipeline.transforms.dedup import DedupPerCall
from pipeline.transforms.download import DownloadToS3
from pipeline.transforms.enrich import EnrichCall
from pipeline.transforms.parse import ParseAndValidate
from pipeline.transforms.read import ReadCallEvents
from pipeline.transforms.rescore import RescoreOnModelVersion
from pipeline.transforms.score import ScoreCall
from pipeline.transforms.scorecard import AgentScorecards
from pipeline.transforms.write import WriteDeadLetters, WriteResults


def build_pipeline(p: beam.Pipeline, config: JobConfig, clients: StageClients | None = None) -> None:
    """Every stage from calls.raw to the offset commit, and the re-score on model.version.updated; `clients` (default: the
    real ones of `config`) feeds the I/O stages."""
    clients = clients or StageClients(config)
    records = p | "ReadCallEvents" >> ReadCallEvents(config)
    events, bad_messages, markers = records | "ParseAndValidate" >> ParseAndValidate()
    unique, duplicates = events | "DedupPerCall" >> DedupPerCall(config.dedup_ttl_s)
    enriched, enrich_failures, already_scored = unique | "EnrichCall" >> EnrichCall(config, clients)
    stored, download_failures = enriched | "DownloadToS3" >> DownloadToS3(config, clients)
    scored, scoring_failures = stored | "ScoreCall" >> ScoreCall(config, clients)
    written = scored | "WriteResults" >> WriteResults(config, clients)
    _ = scored | "AgentScorecards" >> AgentScorecards(config, clients)
    if config.analytics_export:  # a side branch: the offset commit never waits for a window to close
        _ = scored | "ExportScoringResults" >> ExportScoringResults(config, clients)
    dead = (
        (bad_messages, enrich_failures, download_failures, scoring_failures)
        | "CollectDeadLetters" >> beam.Flatten()
        | "WriteDeadLetters" >> WriteDeadLetters(config, clients)
    )
    _ = (
        (written, dead, duplicates, already_scored, markers)
        | "CollectFinished" >> beam.Flatten()
        | "CommitOffsets" >> CommitOffsets(config.kafka_bootstrap, config.consumer_group,
                                           consumer_factory=clients.offset_consumer, outage_budget_s=config.outage_budget_s,
                                           outage_backoff_cap_s=config.outage_backoff_cap_s,
                                           database_factory=clients.database)
    )
    if config.rescore_on_events:  # a graph of its own: its calls are not calls.raw offsets, scorecards or export rows
        _ = p | "RescoreOnModelVersion" >> RescoreOnModelVersion(config, clients)
