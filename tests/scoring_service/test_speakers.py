"""Speaker roles on mono recordings: the numpy voice encoder (Resemblyzer 0.1.4 weights) and the agent/customer split.

Generated two-voice calls are mixed to one channel, sent through µ-law and decoded as the scorer does; the split is checked
against the generator's per-speaker truth. The corpus test prints its table (always, via capsys.disabled): per call whether the
agent voice was found, the confidence and the talk-time errors, then accuracy and CPU cost.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
import pytest

from audio import dsp
from audio.intervals import Interval, intersect, merge, total
from audio.wav import read_wav, wav_bytes
from callgen import CallPlan, plan_call, render_call, script, synth
from ccas.settings import voice_encoder_weights
from scoring_service.features import extract
from scoring_service.schemas import TranscriptSegment
from scoring_service.scorecard import load_scorecard
from scoring_service.speakers import ROLE_CONFIDENCE_GATE, SpeakerRoles, assign_roles, decide_roles, split_voices
from scoring_service.voice_encoder import VoiceEncoder, load_torch_state, mel_filterbank, shared_encoder

# 14 calls, VI and EN alternating, 60–200 s. Seeds 7000+ also hold calls where the customer speaks first (no greeting) and where
# espeak's "en-gb+f2" agent is the same voice as an "en-gb" customer (espeak-ng 1.51 ignores that variant): both must stay
# under the gate rather than be reported wrong.
CORPUS = [(7000 + i, "vi" if i % 2 == 0 else "en", 60.0 + (37 * i) % 140) for i in range(14)]
CUSTOMER_FIRST_SEED, CUSTOMER_FIRST_DURATION = 7010, 150.0  # vi, no greeting: the customer opens the call

# Floors from the first measurement (see the printed table), with margin.
# Measured: 11 of 14 split into two voices, agent found in 8 (the 3 misses are customer-first calls, all under the gate); 8 above
# the gate, all right; talk-time |error| mean 1.5 s / 6.1 %, max 4.1 s / 17 % (mostly overtalk, which the truth counts for both);
# 0.007 CPU-s per audio second.
MIN_SPLIT_CALLS = 9
MIN_ROLE_ACCURACY_SPLIT = 0.6  # calls split into two voices, any confidence
MIN_CONFIDENT_CALLS = 6  # of 14: the gate must not simply refuse everything
MIN_ROLE_ACCURACY_CONFIDENT = 1.0  # above the gate, the agent is the agent
MAX_TALK_ERROR_PCT_MEAN = 10.0  # confident calls, |measured − truth| / truth, mean over agent and customer
MAX_TALK_ERROR_S = 7.0  # any confident call, either party
MAX_CPU_PER_AUDIO_S = 0.05  # split_voices + decide_roles, CPU seconds per second of call

# Resemblyzer's own embed_utterance (torch 1.12.1, librosa 0.10.2) on `_reference_signal()`: its 12 largest dimensions.
REFERENCE_TOP = {
    246: 0.22933,
    146: 0.214703,
    122: 0.201431,
    189: 0.197459,
    218: 0.183666,
    202: 0.167603,
    151: 0.150636,
    111: 0.149411,
    120: 0.143295,
    180: 0.142461,
    248: 0.139982,
    11: 0.139156,
}


@pytest.fixture(scope="module")
def encoder() -> VoiceEncoder:
    path = voice_encoder_weights()
    if not path.is_file():
        pytest.fail(f"voice encoder weights missing at {path}: run `bash scripts/models.sh`")
    return shared_encoder(path)


def _ulaw(x: np.ndarray) -> np.ndarray:
    pcm, _rate, _codec = read_wav(wav_bytes(dsp.to_int16(np.asarray(x).reshape(-1, 1)), 8000, "ulaw"))
    return dsp.to_float(pcm[:, 0])


def _reference_signal() -> np.ndarray:
    """3 s at 16 kHz: a gliding harmonic tone, amplitude-modulated, with a little noise (platform-independent)."""
    rng = np.random.default_rng(1234)
    t = np.arange(48000) / 16000
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 0.7 * t)) / 16000
    x = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (0.1 * (x + 0.01 * rng.standard_normal(len(t)))).astype(np.float32)


def test_weights_load_and_match_resemblyzer(encoder: VoiceEncoder) -> None:
    state = load_torch_state(voice_encoder_weights())["model_state"]
    assert state["lstm.weight_ih_l0"].shape == (1024, 40)
    assert state["lstm.weight_hh_l2"].shape == (1024, 256)
    assert state["linear.weight"].shape == (256, 256)
    first, again = encoder.embed(_reference_signal(), 16000), encoder.embed(_reference_signal(), 16000)
    assert np.array_equal(first, again)
    assert abs(float(np.linalg.norm(first)) - 1.0) < 1e-5
    got = {i: round(float(first[i]), 6) for i in REFERENCE_TOP}
    assert all(abs(got[i] - v) < 1e-4 for i, v in REFERENCE_TOP.items()), f"numpy {got} vs Resemblyzer {REFERENCE_TOP}"
    # librosa.filters.mel(sr=16000, n_fft=400, n_mels=40): Slaney-normalised bands, peaks at these FFT bins.
    bank = mel_filterbank()
    assert np.allclose(bank.sum(axis=1)[[0, 10, 20, 39]], [0.024809, 0.024809, 0.02522, 0.024979], atol=2e-6)
    assert bank.argmax(axis=1)[[0, 10, 20, 39]].tolist() == [2, 20, 44, 185]


def test_same_voice_closer_than_other_voices(encoder: VoiceEncoder, capsys: pytest.CaptureFixture[str]) -> None:
    voices = {"en-us+f3": "f", "vi+f3": "f", "en-us": "m", "en-us+m3": "m", "vi": "m"}
    lines = script.LINES["en"]["agent"][:6]
    halves = {}
    for voice in voices:
        a, b = (np.concatenate([synth.synthesize(t, voice, 160, 50, 8000) for t in part]) for part in (lines[:3], lines[3:]))
        halves[voice] = (encoder.embed(_ulaw(0.4 * a), 8000), encoder.embed(_ulaw(0.4 * b), 8000))
    names = list(voices)
    sim = np.array([[float(halves[v][0] @ halves[w][1]) for w in names] for v in names])
    with capsys.disabled():
        print("\ncosine, first half of voice (row) vs second half of voice (column), 8 kHz µ-law, ~7 s each")
        print(" " * 10 + "".join(f"{n:>10}" for n in names))
        for v, row in zip(names, sim, strict=True):
            print(f"{v:<10}" + "".join(f"{x:>10.3f}" for x in row))
    for i, v in enumerate(names):
        assert sim[i, i] >= 0.9, f"{v}: same voice only {sim[i, i]:.3f}"
        others = max(max(sim[i, j], sim[j, i]) for j in range(len(names)) if j != i)
        assert sim[i, i] > others, f"{v}: same voice {sim[i, i]:.3f} not above other voices {others:.3f}"
        for j, w in enumerate(names):
            if voices[v] != voices[w]:
                assert sim[i, j] < 0.8, f"{v} vs {w} (other sex) {sim[i, j]:.3f}"


@dataclass(frozen=True)
class MonoCall:
    plan: CallPlan
    signal: np.ndarray
    speech: list[Interval]

    def truth(self, speaker: str) -> list[Interval]:
        segs = self.plan.truth["segments"]
        return merge((s["start_s"], s["end_s"]) for s in segs if s["kind"] == "speech" and s["speaker"] == speaker)

    def transcript(self) -> list[TranscriptSegment]:
        """A perfect mono ASR: the truth's text and times, without speaker labels."""
        return [
            TranscriptSegment(start_s=s["start_s"], end_s=s["end_s"], text=s["text"])
            for s in self.plan.truth["segments"]
            if s["kind"] == "speech"
        ]


def _decode(plan: CallPlan) -> MonoCall:
    """Render mono, through µ-law, and decode as the scorer does."""
    pcm, rate, _ = read_wav(wav_bytes(render_call(plan), 8000, "ulaw"))
    features = extract(pcm, rate, "mono")
    return MonoCall(plan, features.signals["line"], features.speech["line"])


@cache
def mono_call(seed: int, language: str, duration: float) -> MonoCall:
    return _decode(plan_call(seed, duration_s=duration, language=language, stereo=False))


def _phrases(kind: str) -> list[str]:
    return [p for phrases in load_scorecard().phrases[kind].values() for p in phrases]


def _agent_found(roles: SpeakerRoles, call: MonoCall) -> bool:
    agent = merge(roles.agent)
    return total(intersect(agent, call.truth("agent"))) > total(intersect(agent, call.truth("customer")))


@pytest.mark.slow
def test_mono_calls_roles_and_talk_time(encoder: VoiceEncoder, capsys: pytest.CaptureFixture[str]) -> None:
    greetings, closings = _phrases("greeting"), _phrases("closing")
    rows, cpu, audio_s, speech_s = [], 0.0, 0.0, 0.0
    for seed, language, duration in CORPUS:
        call = mono_call(seed, language, duration)
        start = time.process_time()
        split = split_voices(call.signal, call.speech, encoder)
        audio_only = decide_roles(split)
        cpu += time.process_time() - start
        audio_s, speech_s = audio_s + duration, speech_s + total(call.speech)
        with_text = decide_roles(split, call.transcript(), greetings, closing_phrases=closings)
        rows.append((call, audio_only, with_text))
    lines, summary = _report(rows)
    with capsys.disabled():
        print("\n" + "\n".join(lines))
        print(f"CPU: {cpu / audio_s:.4f} s per audio second, {cpu / speech_s:.4f} s per speech second ({cpu:.1f} s in all)")
    for label, stats in summary.items():
        assert stats["split"] >= MIN_SPLIT_CALLS, f"{label}: only {stats['split']} calls split into two voices"
        assert stats["accuracy_split"] >= MIN_ROLE_ACCURACY_SPLIT, f"{label}: role accuracy {stats['accuracy_split']:.2f}"
        assert stats["confident"] >= MIN_CONFIDENT_CALLS, f"{label}: only {stats['confident']} calls above the gate"
        assert stats["accuracy_confident"] >= MIN_ROLE_ACCURACY_CONFIDENT, f"{label}: wrong agent above the gate"
        assert stats["error_pct_mean"] <= MAX_TALK_ERROR_PCT_MEAN, f"{label}: talk-time error {stats['error_pct_mean']:.1f} %"
        assert stats["error_s_max"] <= MAX_TALK_ERROR_S, f"{label}: talk-time error {stats['error_s_max']:.2f} s"
    assert cpu / audio_s <= MAX_CPU_PER_AUDIO_S


def _report(rows: Sequence[tuple[MonoCall, SpeakerRoles, SpeakerRoles]]) -> tuple[list[str], dict[str, dict[str, float]]]:
    head = (
        f"{'call':<16}{'agent / customer voice':<36}{'cos':>6}{'conf':>6}{'agent?':>7}{'Δagent s':>10}{'Δcust s':>9}"
        f"{'overtalk s':>11}{'conf+text':>10}{'agent?':>7}"
    )
    lines = [head, "-" * len(head)]
    stats: dict[str, list[tuple[SpeakerRoles, MonoCall]]] = {"audio only": [], "with transcript": []}
    for call, audio, text in rows:
        plan = call.plan
        voices = {u.speaker: f"{u.voice}/{u.pitch}" for u in plan.utterances}
        agent_err = total(audio.agent) - total(call.truth("agent"))
        customer_err = total(audio.customer) - total(call.truth("customer"))
        found = _agent_found(audio, call) if audio.method == "voice_clusters" else None
        found_text = _agent_found(text, call) if text.method == "voice_clusters" else None
        overtalk = total(intersect(call.truth("agent"), call.truth("customer")))
        lines.append(
            f"{plan.seed} {plan.language} {plan.duration_s:4.0f}s {voices['agent'] + ' ' + voices['customer']:<36}"
            f"{audio.detail['centroid_cos']:>6.3f}{audio.confidence:>6.2f}{_mark(found):>7}{agent_err:>+10.2f}"
            f"{customer_err:>+9.2f}{overtalk:>11.2f}{text.confidence:>10.2f}{_mark(found_text):>7}"
        )
        stats["audio only"].append((audio, call))
        stats["with transcript"].append((text, call))
    lines.append("-" * len(head))
    lines.append("cos: the two voice clusters' centroid cosine; conf: audio only; agent? '-' = one voice or alike, not split")
    summary = {}
    for label, results in stats.items():
        split = [(r, c) for r, c in results if r.method == "voice_clusters"]
        confident = [(r, c) for r, c in split if r.confidence >= ROLE_CONFIDENCE_GATE]
        errors_s, errors_pct = [], []
        for r, c in confident:
            for mine, speaker in ((r.agent, "agent"), (r.customer, "customer")):
                truth = total(c.truth(speaker))
                errors_s.append(abs(total(mine) - truth))
                errors_pct.append(100 * errors_s[-1] / truth)
        summary[label] = {
            "split": len(split),
            "accuracy_split": float(np.mean([_agent_found(r, c) for r, c in split])) if split else 0.0,
            "confident": len(confident),
            "accuracy_confident": float(np.mean([_agent_found(r, c) for r, c in confident])) if confident else 0.0,
            "error_s_mean": float(np.mean(errors_s)) if errors_s else 0.0,
            "error_s_max": max(errors_s, default=0.0),
            "error_pct_mean": float(np.mean(errors_pct)) if errors_pct else 0.0,
            "error_pct_max": max(errors_pct, default=0.0),
        }
        s = summary[label]
        confs = sorted(r.confidence for r, _ in results)
        lines.append(
            f"{label}: {len(results)} calls, {len(results) - len(split)} one voice / alike (conf 0); split {len(split)}, agent "
            f"found {s['accuracy_split']:.0%}; above gate {ROLE_CONFIDENCE_GATE}: {len(confident)}, agent found "
            f"{s['accuracy_confident']:.0%}, talk-time |error| mean {s['error_s_mean']:.2f} s / {s['error_pct_mean']:.1f} %, max "
            f"{s['error_s_max']:.2f} s / {s['error_pct_max']:.1f} %; confidences {', '.join(f'{c:.2f}' for c in confs)}"
        )
    return lines, summary


def _brief(roles: SpeakerRoles) -> str:
    keys = ("centroid_cos", "fisher", "separation", "votes", "role_certainty")
    return ", ".join(f"{k} {roles.detail[k]}" for k in keys if k in roles.detail)


def _mark(found: bool | None) -> str:
    return "-" if found is None else "yes" if found else "NO"


def _one_voice_plan(plan: CallPlan) -> CallPlan:
    return dataclasses.replace(plan, utterances=tuple(u for u in plan.utterances if u.speaker == "agent"))


def _alike_plan(plan: CallPlan) -> CallPlan:
    """The customer's lines in the agent's voice and tempo, 15 pitch steps away: two voices the encoder cannot tell apart."""
    agent = next(u for u in plan.utterances if u.speaker == "agent")
    pitch = agent.pitch - 15 if agent.pitch > 50 else agent.pitch + 15
    return dataclasses.replace(
        plan,
        utterances=tuple(
            dataclasses.replace(u, voice=agent.voice, speed=agent.speed, pitch=pitch) if u.speaker == "customer" else u
            for u in plan.utterances
        ),
    )


def test_confidence_gate_both_ways(encoder: VoiceEncoder, capsys: pytest.CaptureFixture[str]) -> None:
    greetings = _phrases("greeting")
    seed, language, duration = CORPUS[1]  # en, an en-us woman and an en-us+m3 man
    call = mono_call(seed, language, duration)
    two = assign_roles(call.signal, call.speech, encoder, call.transcript(), greetings)
    assert two.confidence >= ROLE_CONFIDENCE_GATE, two.detail
    assert _agent_found(two, call)

    one = _decode(_one_voice_plan(call.plan))
    alone = assign_roles(one.signal, one.speech, encoder, one.transcript(), greetings)
    assert alone.confidence < ROLE_CONFIDENCE_GATE, alone.detail
    assert alone.method == "single_voice" and not alone.customer
    assert abs(total(alone.agent) - total(call.truth("agent"))) < 1.0  # all of the one voice's speech, as the agent's

    alike = _decode(_alike_plan(call.plan))
    same = assign_roles(alike.signal, alike.speech, encoder, alike.transcript(), greetings)
    with capsys.disabled():
        for label, r in (("two voices", two), ("agent alone", alone), ("one voice at two pitches", same)):
            print(f"\n{label}: confidence {r.confidence:.2f} ({r.method}, {_brief(r)})", end="")
        print()
    assert same.confidence < ROLE_CONFIDENCE_GATE, same.detail


def test_voiceprint_finds_the_agent_who_does_not_speak_first(encoder: VoiceEncoder, capsys: pytest.CaptureFixture[str]) -> None:
    call = mono_call(CUSTOMER_FIRST_SEED, "vi", CUSTOMER_FIRST_DURATION)
    segments = [s for s in call.plan.truth["segments"] if s["kind"] == "speech"]
    assert segments[0]["speaker"] == "customer"
    without = assign_roles(call.signal, call.speech, encoder)
    assert without.confidence < ROLE_CONFIDENCE_GATE, "the customer opened: speaking first must not make them the agent"
    # The same agent's voice on another call: other lines, same voice settings.
    agent = next(u for u in call.plan.utterances if u.speaker == "agent")
    lines = script.LINES["vi"]["agent"][-4:]
    other_call = np.concatenate([synth.synthesize(t, agent.voice, agent.speed, agent.pitch, 8000) for t in lines]) * agent.gain
    voiceprint = encoder.embed(_ulaw(other_call), 8000)
    known = assign_roles(call.signal, call.speech, encoder, agent_voiceprint=voiceprint)
    with capsys.disabled():
        print(f"\ncustomer first, audio only: confidence {without.confidence:.2f} ({_brief(without)})")
        print(f"customer first, with the agent's voiceprint: confidence {known.confidence:.2f} ({_brief(known)})")
    assert _agent_found(known, call), known.detail
    assert known.confidence >= ROLE_CONFIDENCE_GATE, known.detail


def test_encoder_shared_by_two_threads(encoder: VoiceEncoder) -> None:
    call = mono_call(*CORPUS[0])
    serial = split_voices(call.signal, call.speech, encoder)
    results: list[object] = [None, None]

    def run(i: int) -> None:
        results[i] = split_voices(call.signal, call.speech, encoder)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        assert isinstance(r, type(serial))
        assert r.clusters == serial.clusters and np.allclose(r.centroids, serial.centroids, atol=1e-6)
    assert shared_encoder(voice_encoder_weights()) is encoder
