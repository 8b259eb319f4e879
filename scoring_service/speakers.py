"""Speaker roles on a mono recording: split the line's speech into two voices and decide which one is the agent.

Speech (the VAD segments) is cut into short overlapping windows, each embedded with the voice encoder; the windows are split
into two voices by spherical 2-means (initialised on the principal axis, which separates two voices far more than it separates
the phrases of one voice); per-frame cluster margins are smoothed by a two-state Viterbi pass inside each VAD segment, so a
segment is split only where a speaker change holds for a while. The agent is then picked from cues summed as log-odds: who
speaks first, who talks more, who says the first greeting and the last closing phrase (when a transcript is given), and
likeness to a stored agent voiceprint.

`confidence` = voice separation × role certainty: low when the two clusters are one voice split in two (the customer never
spoke, or two voices the encoder cannot tell apart), and low when the cues disagree or only one cue speaks. Callers should
report the two-party metrics only at or above `ROLE_CONFIDENCE_GATE`.

Limits: overlapped speech cannot be separated on one channel; an overlap goes to whichever voice dominates it, so the other
party's talk time misses it and overtalk on mono stays unmeasurable. A turn taken without a pause is placed to within ~0.1-0.3 s.
A customer who both speaks first and talks more is taken, confidently, for the agent unless a transcript's closing phrase or a
voiceprint says otherwise; one who does only one of the two leaves the cues disagreeing and the confidence under the gate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from audio.intervals import Interval, intersect, merge, total
from scoring_service.transcript import normalise
from scoring_service.voice_encoder import VoiceEncoder

# First speaker alone (~82 % right: certainty 0.72) stays below the gate; a second agreeing cue lifts a well-separated call over.
ROLE_CONFIDENCE_GATE = 0.75
ANALYSIS_RATE = 8000
WINDOW_S = 1.2  # long enough for a stable embedding, short enough to sit inside one turn
HOP_S = 0.6
MIN_WINDOW_S = 0.15  # shorter segments borrow the nearest window's evidence
FRAME_S = 0.05  # label resolution
SWITCH_PENALTY_S = 0.4  # a speaker change inside a segment must be backed by this much typical evidence
KMEANS_ITERATIONS = 30
# Separation needs both: centroids apart (cosine) and windows falling into two lumps rather than one spread (Fisher ratio of the
# windows' projections on the axis between the centroids). Measured on espeak voices after µ-law, 1.2 s windows: one voice split
# in two gives cosine 0.93-0.96 and Fisher 5-11; the same voice model at two pitches 0.92-0.955 and 6-10; a woman and a man
# 0.69-0.80 and 25-77; two Vietnamese voices of one gender 0.82-0.85 and 18-51.
SEPARATED_COS, SAME_VOICE_COS = 0.84, 0.93
SEPARATED_FISHER, SAME_VOICE_FISHER = 20.0, 11.0
MIN_SHARE = 0.08  # a "voice" with less of the speech than this is more likely a few odd windows of the other
GREETING_WINDOW_S = 15.0
CLOSING_WINDOW_S = 30.0
# Log-odds that the cue points at the agent. First speaker: agents open most calls (82 % of the generator's); a greeting is
# mostly the agent's, but customers say "hello" too and it mostly coincides with speaking first, so it adds less; the closing
# is the agent's.
CUE_FIRST_SPEAKER = 1.8
CUE_GREETING = 1.0
CUE_CLOSING = 1.5
# Agents usually talk more than customers (explaining, confirming, closing); a weak prior, so capped below the first-speaker cue.
CUE_TALK_SHARE_SCALE = 6.0  # per unit of the cluster's share above one half
CUE_TALK_SHARE_MAX = 1.5
CUE_VOICEPRINT_SCALE = 20.0  # per unit of cosine difference between the clusters' likeness to the voiceprint
CUE_VOICEPRINT_MAX = 4.0


class TimedText(Protocol):
    start_s: float
    end_s: float
    text: str


@dataclass
class SpeakerRoles:
    agent: list[Interval]
    customer: list[Interval]
    confidence: float  # in [0, 1]; trust the split above ROLE_CONFIDENCE_GATE
    method: str  # voice_clusters | single_voice | no_speech
    detail: dict[str, Any] = field(default_factory=dict)
    # Mean unit embedding of the agent's windows: what a caller may keep per agent and pass back as `agent_voiceprint`.
    agent_embedding: np.ndarray | None = field(default=None, repr=False)

    @property
    def confident(self) -> bool:
        return self.confidence >= ROLE_CONFIDENCE_GATE


def speech_windows(speech: Sequence[Interval]) -> list[Interval]:
    """Windows of ≤ WINDOW_S covering every segment, evenly spread, never reaching outside speech."""
    windows = []
    for start, end in speech:
        length = end - start
        if length < MIN_WINDOW_S:
            continue
        if length <= WINDOW_S:
            windows.append((start, end))
            continue
        count = int(np.ceil((length - WINDOW_S) / HOP_S)) + 1
        for s in np.linspace(start, end - WINDOW_S, count):
            windows.append((float(s), float(s) + WINDOW_S))
    return windows


def two_means(embeddings: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """0/1 label per unit vector: spherical 2-means from the split along the principal axis of the weighted embeddings."""
    w = weights / weights.sum()
    centred = embeddings - w @ embeddings
    _u, _s, vt = np.linalg.svd(centred * np.sqrt(w)[:, None], full_matrices=False)
    labels = (centred @ vt[0] > 0).astype(np.int64)
    for _ in range(KMEANS_ITERATIONS):
        if labels.min() == labels.max():
            break
        centroids = _centroids(embeddings, weights, labels)
        new = np.argmax(embeddings @ centroids.T, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
    # Stable naming: cluster 0 is the one heard first.
    return labels if labels[0] == 0 else 1 - labels


def _centroids(embeddings: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = np.zeros((2, embeddings.shape[1]), dtype=np.float64)
    for k in (0, 1):
        mean = (weights[labels == k, None] * embeddings[labels == k]).sum(axis=0)
        norm = np.linalg.norm(mean)
        out[k] = mean / norm if norm > 0 else mean
    return out


def _ramp(value: float, zero_at: float, one_at: float) -> float:
    return float(np.clip((value - zero_at) / (one_at - zero_at), 0.0, 1.0))


def _separation_stats(centroids: np.ndarray, labels: np.ndarray, margins: np.ndarray, share: np.ndarray) -> tuple[float, float]:
    """(centroid cosine, Fisher ratio of the two clusters' margins); (1, 0) when a cluster is (nearly) empty."""
    if share.min() <= 0 or min(np.sum(labels == 0), np.sum(labels == 1)) < 2:
        return 1.0, 0.0
    m0, m1 = margins[labels == 0], margins[labels == 1]
    fisher = (m0.mean() - m1.mean()) ** 2 / max(m0.var() + m1.var(), 1e-12)
    return float(centroids[0] @ centroids[1]), float(fisher)


def _frame_scores(speech: Sequence[Interval], windows: Sequence[Interval], margins: np.ndarray) -> list[np.ndarray]:
    """Per VAD segment, per FRAME_S frame: the duration-weighted mean margin (cluster 0 minus cluster 1) of covering windows."""
    starts = np.array([a for a, _ in windows])
    ends = np.array([b for _, b in windows])  # windows run in time order, so both are sorted
    mids = (starts + ends) / 2
    out = []
    for start, end in speech:
        n = max(1, int(round((end - start) / FRAME_S)))
        t = start + (np.arange(n) + 0.5) * (end - start) / n
        lo, hi = int(np.searchsorted(ends, start, "right")), int(np.searchsorted(starts, end, "left"))
        a, b, m = starts[lo:hi], ends[lo:hi], margins[lo:hi]
        weight = ((a[None, :] <= t[:, None]) & (b[None, :] > t[:, None])) * (b - a)[None, :]
        summed = weight.sum(axis=1)
        scores = np.where(summed > 0, (weight @ m) / np.maximum(summed, 1e-9), 0.0)
        bare = summed == 0
        if bare.any():  # a segment too short to embed: the nearest window's evidence
            scores[bare] = margins[np.argmin(np.abs(mids[None, :] - t[bare, None]), axis=1)]
        out.append(scores)
    return out


def _viterbi(scores: np.ndarray, penalty: float) -> np.ndarray:
    """Two-state path (0 where scores favour cluster 0) maximising Σ ±score − penalty × switches."""
    n = len(scores)
    gain = np.stack([scores, -scores], axis=1)
    back = np.zeros((n, 2), dtype=np.int8)
    best = gain[0].copy()
    for i in range(1, n):
        stay, switch = best, best[::-1] - penalty
        back[i] = switch > stay
        best = np.maximum(stay, switch) + gain[i]
    path = np.empty(n, dtype=np.int8)
    path[-1] = int(np.argmax(best))
    for i in range(n - 1, 0, -1):
        path[i - 1] = path[i] ^ back[i, path[i]]
    return path


def _intervals(speech: Sequence[Interval], paths: Sequence[np.ndarray]) -> tuple[list[Interval], list[Interval]]:
    per: tuple[list[Interval], list[Interval]] = ([], [])
    for (start, end), path in zip(speech, paths, strict=True):
        step = (end - start) / len(path)
        edges = [0, *(np.flatnonzero(np.diff(path)) + 1).tolist(), len(path)]
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            per[int(path[a])].append((round(start + a * step, 3), round(end if b == len(path) else start + b * step, 3)))
    return per


def _cluster_of(span: Interval, clusters: tuple[list[Interval], list[Interval]]) -> int | None:
    overlap = [total(intersect([span], c)) for c in clusters]
    if max(overlap) <= 0:
        return None
    return int(np.argmax(overlap))


def _phrase_cue(
    transcript: Sequence[TimedText] | None,
    phrases: Sequence[str] | None,
    clusters: tuple[list[Interval], list[Interval]],
    accept: Callable[[TimedText], bool],
    last: bool,
) -> tuple[int | None, str | None]:
    """Cluster of the first (or last) transcript segment within the time window `accept` holding one of `phrases`."""
    if not transcript or not phrases:
        return None, None
    wanted = [normalise(p) for p in phrases if p.strip()]
    hits = [
        seg
        for seg in sorted(transcript, key=lambda s: s.start_s)
        if accept(seg) and any(p in normalise(seg.text) for p in wanted)
    ]
    for seg in reversed(hits) if last else hits:
        cluster = _cluster_of((seg.start_s, seg.end_s), clusters)
        if cluster is not None:
            return cluster, seg.text
    return None, None


@dataclass
class VoiceSplit:
    """The line's speech split into two voices, before deciding which is the agent. Cluster 0 is the voice heard first."""

    clusters: tuple[list[Interval], list[Interval]]
    centroids: np.ndarray  # (2, 256) unit vectors; both the same when only one voice was found
    separation: float  # in [0, 1]: 0 = one voice (or two indistinguishable ones), 1 = clearly two
    call_end_s: float
    detail: dict[str, Any] = field(default_factory=dict)


def split_voices(
    signal: np.ndarray, speech: Sequence[Interval], encoder: VoiceEncoder, sample_rate: int = ANALYSIS_RATE
) -> VoiceSplit:
    """Two-voice split of a mono line (float signal at `sample_rate`, its VAD `speech` segments)."""
    speech = merge(speech)
    windows = speech_windows(speech)
    if not windows:
        return VoiceSplit(([], []), np.zeros((2, 0)), 0.0, 0.0, {"windows": 0})
    embeddings = encoder.embed_windows(signal, sample_rate, windows).astype(np.float64)
    weights = np.array([b - a for a, b in windows])
    labels = two_means(embeddings, weights) if len(windows) > 1 else np.zeros(1, dtype=np.int64)
    centroids = _centroids(embeddings, weights, labels)
    share = np.array([weights[labels == k].sum() for k in (0, 1)]) / weights.sum()
    similarity = embeddings @ centroids.T
    margins = similarity[:, 0] - similarity[:, 1]
    centroid_cos, fisher = _separation_stats(centroids, labels, margins, share)
    separation = min(
        _ramp(centroid_cos, SAME_VOICE_COS, SEPARATED_COS),
        _ramp(fisher, SAME_VOICE_FISHER, SEPARATED_FISHER),
        _ramp(float(share.min()), 0.0, MIN_SHARE),
    )
    detail = {
        "windows": len(windows),
        "centroid_cos": round(centroid_cos, 4),
        "fisher": round(fisher, 2),
        "separation": round(separation, 3),
        "window_share": [round(float(x), 3) for x in share],
    }
    if separation <= 0.0:
        # One voice, whatever the clustering says: all speech is one party's.
        one = _centroids(embeddings, weights, np.zeros(len(windows), dtype=np.int64))[0]
        return VoiceSplit((list(speech), []), np.stack([one, one]), 0.0, speech[-1][1], detail)
    scale = float(np.median(np.abs(margins))) or 1.0
    scores = _frame_scores(speech, windows, margins / scale)
    paths = [_viterbi(s, SWITCH_PENALTY_S / FRAME_S) for s in scores]
    return VoiceSplit(_intervals(speech, paths), centroids, separation, speech[-1][1], detail)


def _signed(cluster: int, weight: float) -> float:
    return weight if cluster == 0 else -weight


def decide_roles(
    split: VoiceSplit,
    transcript: Sequence[TimedText] | None = None,
    greeting_phrases: Sequence[str] | None = None,
    agent_voiceprint: np.ndarray | None = None,
    closing_phrases: Sequence[str] | None = None,
) -> SpeakerRoles:
    """Which voice of `split` is the agent, from cues summed as log-odds (positive: cluster 0 is the agent)."""
    clusters = split.clusters
    if not clusters[0] and not clusters[1]:
        return SpeakerRoles([], [], 0.0, "no_speech", dict(split.detail))
    votes: dict[str, float] = {}
    evidence: dict[str, Any] = {}
    spoken = [(iv, k) for k in (0, 1) for iv in clusters[k] if iv[1] - iv[0] >= 0.3]
    if spoken:
        votes["first_speaker"] = _signed(min(spoken)[1], CUE_FIRST_SPEAKER)
    talk = [total(c) for c in clusters]
    if talk[1] > 0:
        lead = talk[0] / (talk[0] + talk[1]) - 0.5
        votes["talk_share"] = float(np.clip(CUE_TALK_SHARE_SCALE * lead, -CUE_TALK_SHARE_MAX, CUE_TALK_SHARE_MAX))
    greet, greet_text = _phrase_cue(transcript, greeting_phrases, clusters, lambda s: s.start_s < GREETING_WINDOW_S, False)
    if greet is not None:
        votes["greeting"] = _signed(greet, CUE_GREETING)
        evidence["greeting"] = greet_text
    end = split.call_end_s
    close, close_text = _phrase_cue(transcript, closing_phrases, clusters, lambda s: s.end_s >= end - CLOSING_WINDOW_S, True)
    if close is not None:
        votes["closing"] = _signed(close, CUE_CLOSING)
        evidence["closing"] = close_text
    if agent_voiceprint is not None and clusters[1]:
        vp = np.asarray(agent_voiceprint, dtype=np.float64)
        likeness = split.centroids @ (vp / np.linalg.norm(vp))
        difference = CUE_VOICEPRINT_SCALE * float(likeness[0] - likeness[1])
        votes["voiceprint"] = float(np.clip(difference, -CUE_VOICEPRINT_MAX, CUE_VOICEPRINT_MAX))
        evidence["voiceprint_likeness"] = [round(float(x), 3) for x in likeness]
    log_odds = sum(votes.values())
    agent_cluster = 0 if log_odds >= 0 else 1
    certainty = float(np.tanh(abs(log_odds) / 2))  # = 2 P(right) - 1 if the cues were independent
    detail = {
        **split.detail,
        "votes": {k: round(v, 3) for k, v in votes.items()},
        "role_certainty": round(certainty, 3),
        "agent_cluster": agent_cluster,
        **evidence,
    }
    return SpeakerRoles(
        agent=clusters[agent_cluster],
        customer=clusters[1 - agent_cluster],
        confidence=round(split.separation * certainty, 4),
        method="voice_clusters" if split.separation > 0 else "single_voice",
        detail=detail,
        agent_embedding=split.centroids[agent_cluster].astype(np.float32),
    )


def assign_roles(
    signal: np.ndarray,
    speech: Sequence[Interval],
    encoder: VoiceEncoder,
    transcript: Sequence[TimedText] | None = None,
    greeting_phrases: Sequence[str] | None = None,
    agent_voiceprint: np.ndarray | None = None,
    closing_phrases: Sequence[str] | None = None,
    sample_rate: int = ANALYSIS_RATE,
) -> SpeakerRoles:
    """Agent and customer speech intervals of a mono line (float signal at `sample_rate`, its VAD `speech` segments).

    `transcript` segments (start_s, end_s, text; speaker labels unused, mono ASR has none) with normalised `greeting_phrases` /
    `closing_phrases` add role cues; `agent_voiceprint` is a unit embedding of the agent's voice (`SpeakerRoles.agent_embedding`
    of an earlier confident call, or `encoder.embed` of the agent's speech).
    """
    split = split_voices(signal, speech, encoder, sample_rate)
    return decide_roles(split, transcript, greeting_phrases, agent_voiceprint, closing_phrases)
