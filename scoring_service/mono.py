"""Two parties on one channel: speaker roles from voice embeddings make the two-party metrics of a mono call applicable.

`speakers.assign_roles` splits the line's speech into two voices and decides which is the agent, with a confidence. At or
above its gate the split is used: agent/customer talk time, talk/listen ratio, the agent's longest monologue and the customer
→ agent reply gap are measured on it, and the transcript's words are given to the party that said them (so phrase criteria
read the agent only and sentiment is per party, as on stereo). Below the gate those metrics stay not applicable, with the
confidence in the reason. Overtalk and interruptions stay not applicable on mono either way: one channel gives every moment to
one voice, so overlapping speech is never seen as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scoring_service.features import Features, two_party_metrics
from scoring_service.schemas import TranscriptSegment
from scoring_service.speakers import ROLE_CONFIDENCE_GATE, assign_roles
from scoring_service.transcript import assign_speakers, normalise, phrases_for
from scoring_service.voice_encoder import VoiceEncoder

MEASURED_ON_ROLES = (
    "agent_talk_s",
    "customer_talk_s",
    "talk_listen_ratio",
    "longest_agent_monologue_s",
    "response_gap_mean_s",
    "response_gap_max_s",
)
OVERLAP_REASON = "mono recording: overlapping speech of the two parties cannot be told apart on one channel"


@dataclass
class MonoRoles:
    confidence: float
    metrics: dict[str, Any] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)
    intervals: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    segments: list[TranscriptSegment] | None = None

    @property
    def applied(self) -> bool:
        return self.confidence >= ROLE_CONFIDENCE_GATE


def resolve_roles(
    f: Features,
    encoder: VoiceEncoder,
    segments: list[TranscriptSegment] | None,
    phrase_lists: dict[str, dict[str, list[str]]],
    language: str | None,
) -> MonoRoles:
    """Roles of a mono call's line, and what they make measurable (metrics, reasons, evidence, relabelled transcript)."""
    roles = assign_roles(
        f.signals["line"],
        f.speech["line"],
        encoder,
        transcript=segments,
        greeting_phrases=[normalise(p).strip() for p in phrases_for(phrase_lists, "greeting", language)],
        closing_phrases=[normalise(p).strip() for p in phrases_for(phrase_lists, "closing", language)],
    )
    out = MonoRoles(roles.confidence)
    out.metrics["speaker_roles_confidence"] = round(roles.confidence, 3)
    for name in ("overtalk_total_s", "overtalk_count", "interruptions_by_agent", "interruptions_by_customer"):
        out.not_applicable[name] = OVERLAP_REASON
    if not out.applied:
        reason = (
            f"mono recording: speaker roles uncertain (confidence {out.confidence:.2f} < {ROLE_CONFIDENCE_GATE}), so "
            "per-speaker metrics are not measured"
        )
        out.not_applicable.update(dict.fromkeys(MEASURED_ON_ROLES, reason))
        return out
    metrics, evidence = two_party_metrics(roles.agent, roles.customer)
    out.metrics.update({name: metrics[name] for name in MEASURED_ON_ROLES})
    out.intervals = {key: evidence[key] for key in ("monologue", "response_gap")}
    if segments is not None:
        out.segments = assign_speakers(segments, roles.agent, roles.customer)
    return out
