"""Call plans: deterministic from the seed, durations like real calls, truth consistent with the segments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from callgen import plan_call, sample_duration


def test_same_seed_same_plan_and_different_seed_differs() -> None:
    a, b = plan_call(42, duration_s=90), plan_call(42, duration_s=90)
    assert a == b and a.truth == b.truth
    assert plan_call(43, duration_s=90).utterances != a.utterances


def test_duration_distribution_matches_real_calls() -> None:
    rng = np.random.default_rng(0)
    durations = np.array([sample_duration(rng) for _ in range(20000)])
    assert durations.min() >= 0.7 and durations.max() <= 520
    assert 95 < np.median(durations) < 117  # median of real calls ≈ 106 s
    assert (durations > 500).mean() < 0.01 and (durations < 30).mean() > 0.05  # no pile-up at the cap


def test_drawn_fields_and_identity() -> None:
    plan = plan_call(7)
    assert plan.language in ("vi", "en") and 0.7 <= plan.duration_s <= 520
    assert plan.agent_id.isdigit() and len(plan.agent_id) == 4
    assert plan.agent_name.startswith(f"agent{plan.agent_id}.")
    json.dumps(plan.truth)  # JSON-able


def test_truth_aggregates_follow_from_segments() -> None:
    for seed in range(20):
        plan = plan_call(seed, duration_s=60 + 20 * seed, stereo=True)
        t = plan.truth
        segs = t["segments"]
        speech = [s for s in segs if s["kind"] == "speech"]
        assert all(0 <= s["start_s"] < s["end_s"] <= plan.duration_s + 1e-6 for s in segs)
        for who in ("agent", "customer"):
            mine = sorted((s["start_s"], s["end_s"]) for s in speech if s["speaker"] == who)
            assert all(b[0] >= a[1] for a, b in zip(mine, mine[1:], strict=False)), "a speaker never overlaps themself"
            assert abs(sum(e - s for s, e in mine) - t[f"{who}_talk_s"]) < 0.01
        dead = [s for s in segs if s["kind"] == "dead_air"]
        assert all(s["end_s"] - s["start_s"] >= 3.0 for s in dead)
        assert abs(sum(s["end_s"] - s["start_s"] for s in dead) - t["dead_air_total_s"]) < 0.01
        hold = [s for s in segs if s["kind"] == "hold"]
        assert all(s["end_s"] - s["start_s"] >= 10.0 for s in hold)
        overtalk = [s for s in segs if s["kind"] == "overtalk"]
        assert sum(t["interruptions"].values()) == len(overtalk)
        assert t["phrases"]["hold_etiquette"] is None if not hold else isinstance(t["phrases"]["hold_etiquette"], bool)
        roles = {s["role"] for s in speech}
        assert t["phrases"]["prohibited"] == ("prohibited" in roles)


def test_no_silence_sits_near_the_dead_air_threshold() -> None:
    # Silences are conversational (< 2.4 s) or deliberate dead air (> 3.2 s): truth never hinges on a few ms around 3 s.
    for seed in range(30):
        plan = plan_call(seed, duration_s=30 + 15 * seed)
        spans = sorted([(u.start_s, u.end_s) for u in plan.utterances] + [(h.start_s, h.end_s) for h in plan.holds])
        t = spans[0][1] if spans else 0.0
        for start, end in spans[1:] + [(plan.duration_s, plan.duration_s)]:
            assert not 2.4 < start - t < 3.2, f"seed {seed}: silence of {start - t:.2f} s at {t:.2f}"
            t = max(t, end)


def test_very_short_call_is_silence_or_a_few_words() -> None:
    plan = plan_call(3, duration_s=0.7)
    assert plan.duration_s == 0.7 and plan.truth["speech_total_s"] <= 0.7


def test_hold_sound_is_drawn_apart_from_the_timeline() -> None:
    # How a hold sounds comes from its own random stream: forcing it leaves every utterance and hold span as drawn.
    kinds = []
    for seed in range(40):
        drawn = plan_call(seed, duration_s=150)
        kinds += [h.kind for h in drawn.holds]
        for kind in ("music", "beep", "tone"):
            forced = plan_call(seed, duration_s=150, hold_kind=kind)
            assert forced.utterances == drawn.utterances
            assert [(h.start_s, h.end_s) for h in forced.holds] == [(h.start_s, h.end_s) for h in drawn.holds]
            assert all(h.kind == kind for h in forced.holds)
            assert {s["pattern"] for s in forced.truth["segments"] if s["kind"] == "hold"} <= {kind}
    assert len(kinds) > 20 and 0.3 < np.mean([k != "music" for k in kinds]) < 0.7


def test_beeps_and_tones_fill_the_hold_from_start_to_end() -> None:
    for seed in range(30):
        for kind in ("beep", "tone"):
            plan = plan_call(seed, duration_s=90, hold_kind=kind, force_hold=True)
            assert plan.holds, f"seed {seed}: force_hold gave no hold"
            for h in plan.holds:
                onsets = h.burst_onsets()
                assert len(onsets) >= 3 and onsets[0] == h.start_s
                assert abs(onsets[-1] + h.on_s - h.end_s) < 1e-3  # the last burst ends the hold
                assert 1.5 <= h.period_s <= 20 and 400 <= h.tone_hz <= 1400
                if kind == "beep":
                    assert 0.2 <= h.on_s <= 0.52 and h.beeps in (1, 2)
                else:
                    assert 0.8 <= h.on_s <= 1.5 and h.period_s - h.on_s >= 1.5 and h.beeps == 1


def test_force_hold_puts_a_hold_at_the_first_place_with_room() -> None:
    for seed in range(15):
        plain, forced = plan_call(seed, duration_s=90), plan_call(seed, duration_s=90, force_hold=True)
        assert forced.holds and forced == plan_call(seed, duration_s=90, force_hold=True)
        # Up to the forced hold the call is the one the dice drew.
        before = forced.holds[0].start_s - 4
        assert [u for u in forced.utterances if u.end_s < before] == [u for u in plain.utterances if u.end_s < before]
    with pytest.raises(ValueError):
        plan_call(1, duration_s=60, hold_kind="jazz")
