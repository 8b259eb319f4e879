"""Plan a synthetic call from a seed: who says what when, where the holds and dead air fall, and the ground truth.

The timeline is laid out from the real length of each espeak-ng utterance, so the truth is exact for what `render_call` plays.
Everything random comes from `numpy.random.default_rng(seed)`: the same seed gives the same plan on every machine. How each hold
sounds (music, beeps, tones) comes from a second generator seeded with (seed, HOLD_KIND_STREAM), so adding hold patterns left the
timeline of every existing seed unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from callgen import script, synth
from callgen.truth import derive_truth

GENERATOR_VERSION = "1.1.0"
PLAN_RATE = 8000  # timeline resolution; render at other rates keeps the same sample-accurate times at 8 kHz

# Real call lengths (product brief): median ≈ 106 s, 0.7–520 s. A log-normal truncated to that range (redrawn, not clipped, so no
# pile-up at the bounds); its scale of 110 s puts the truncated median at ≈ 106 s.
DURATION_SCALE_S = 110.0
DURATION_SIGMA = 0.9
DURATION_MIN_S = 0.7
DURATION_MAX_S = 520.0


def sample_duration(
    rng: np.random.Generator,
    scale_s: float = DURATION_SCALE_S,
    sigma: float = DURATION_SIGMA,
    min_s: float = DURATION_MIN_S,
    max_s: float = DURATION_MAX_S,
) -> float:
    """One call length in seconds from a truncated log-normal (rounded to 10 ms)."""
    for _ in range(1000):
        value = float(rng.lognormal(np.log(scale_s), sigma))
        if min_s <= value <= max_s:
            return round(value, 2)
    return round(min(max(value, min_s), max_s), 2)  # only for parameters that put almost no mass in the range


@dataclass(frozen=True)
class Utterance:
    speaker: str  # agent | customer
    role: str  # greeting, opening, agent, customer, empathy, hold, after_hold, prohibited, closing, bye
    text: str
    voice: str
    speed: int
    pitch: int
    gain: float
    start_s: float
    duration_s: float
    truncated: bool = False

    @property
    def end_s(self) -> float:
        return round(self.start_s + self.duration_s, 4)


HOLD_KINDS = ("music", "beep", "tone")
HOLD_KIND_STREAM = 0x401D


@dataclass(frozen=True)
class Hold:
    """A hold from start to end. `music` plays throughout; `beep` and `tone` play a burst every `period_s` with silence between.

    A burst is `on_s` long (a double beep: two beeps and a DOUBLE_BEEP_GAP_S pause); the first starts at `start_s` and the last
    ends at `end_s`, so the truth span is exactly what a listener hears as hold.
    """

    start_s: float
    end_s: float
    kind: str = "music"
    period_s: float = 0.0
    on_s: float = 0.0
    tone_hz: float = 0.0
    beeps: int = 1

    def burst_onsets(self) -> list[float]:
        """Start times of the bursts of a beep or tone hold (none for music)."""
        if self.kind == "music" or self.period_s <= 0:
            return []
        count = int(round((self.end_s - self.start_s - self.on_s) / self.period_s)) + 1
        return [self.start_s + k * self.period_s for k in range(count)]


@dataclass(frozen=True)
class CallPlan:
    seed: int
    duration_s: float
    language: str
    stereo: bool
    agent_id: str
    agent_name: str
    utterances: tuple[Utterance, ...]
    holds: tuple[Hold, ...]
    noise_dbfs: float
    music_dbfs: float
    truth: dict[str, Any] = field(compare=False)
    generator_version: str = GENERATOR_VERSION


class _Speaker:
    def __init__(self, rng: np.random.Generator, language: str, role: str) -> None:
        self.voice = str(rng.choice(script.VOICES[language][role]))
        self.speed = int(rng.integers(145, 176))
        self.pitch = int(rng.integers(35, 66))
        # Agent headsets run hotter than customer lines; levels stay low enough that the mono mix never clips...
        self.gain = float(rng.uniform(0.45, 0.7) if role == "agent" else rng.uniform(0.3, 0.55))
        self.level = "normal"
        if role == "agent":
            # ...except on the few calls with a badly set headset: far too quiet, or so hot that it clips.
            draw = rng.random()
            if draw < 0.07:
                self.gain, self.level = float(rng.uniform(0.08, 0.1)), "quiet"
            elif draw < 0.12:
                self.gain, self.level = float(rng.uniform(2.0, 2.6)), "hot"


class _Builder:
    """Lays utterances end to end with human gaps, inserting holds, dead air and overtalk as the dice say."""

    def __init__(self, rng: np.random.Generator, language: str, duration_s: float) -> None:
        self.rng, self.language, self.duration_s = rng, language, duration_s
        self.speakers = {"agent": _Speaker(rng, language, "agent"), "customer": _Speaker(rng, language, "customer")}
        self.utterances: list[Utterance] = []
        self.holds: list[Hold] = []
        self.force_hold = False
        self.t = round(float(rng.uniform(0.2, 0.8)), 3)

    def length(self, speaker: str, text: str) -> float:
        s = self.speakers[speaker]
        return len(synth.synthesize(text, s.voice, s.speed, s.pitch, PLAN_RATE)) / PLAN_RATE

    def line(self, role: str) -> str:
        return str(self.rng.choice(script.LINES[self.language][role]))

    def say(self, speaker: str, role: str, text: str, start_s: float, max_s: float | None = None) -> Utterance:
        s = self.speakers[speaker]
        full = self.length(speaker, text)
        duration = full if max_s is None else min(full, max_s)
        utterance = Utterance(
            speaker, role, text, s.voice, s.speed, s.pitch, s.gain, round(start_s, 3), round(duration, 4), duration < full
        )
        self.utterances.append(utterance)
        self.t = max(self.t, utterance.end_s)
        return utterance

    def gap(self) -> float:
        # Turn gaps in conversation cluster around a few hundred ms with a long tail; kept < 2.5 s so they are never dead air.
        return round(float(np.clip(self.rng.lognormal(np.log(0.6), 0.45), 0.4, 2.4)), 3)


def plan_call(
    seed: int,
    *,
    duration_s: float | None = None,
    language: str | None = None,
    stereo: bool = False,
    hold_kind: str | None = None,
    force_hold: bool = False,
) -> CallPlan:
    """A deterministic call plan with ground truth. `duration_s` and `language` are drawn from the seed when not given.

    `hold_kind` makes every hold music, beeps or tones (else drawn once per call); `force_hold` puts a hold at the first place
    with room for one (≥ 30 s of call left after the first line) when the dice placed none — for tests that need a hold.
    """
    if hold_kind is not None and hold_kind not in HOLD_KINDS:
        raise ValueError(f"hold_kind must be one of {HOLD_KINDS}")
    rng = np.random.default_rng(seed)
    duration = sample_duration(rng) if duration_s is None else round(float(duration_s), 3)
    if duration <= 0:
        raise ValueError("duration_s must be positive")
    lang = language or str(rng.choice(["vi", "en"]))
    if lang not in script.LINES:
        raise ValueError(f"language must be one of {sorted(script.LINES)}")
    agent_number = int(rng.integers(1000, 10000))
    b = _Builder(rng, lang, duration)
    b.force_hold = force_hold
    _lay_out(b)
    _fill_awkward_gaps(b)
    noise_dbfs = round(float(rng.uniform(-66, -56)), 1)
    music_dbfs = round(float(rng.uniform(-28, -22)), 1)
    # One PBX per call, so one hold sound per call; drawn from its own stream (see the module docstring).
    sound = _hold_sound(np.random.default_rng([seed, HOLD_KIND_STREAM]), hold_kind)
    utterances = tuple(sorted(b.utterances, key=lambda u: u.start_s))
    holds = tuple(_with_sound(h, sound) for h in b.holds)
    truth = derive_truth(utterances, holds, duration)
    truth.update(
        {
            "noise_dbfs": noise_dbfs,
            "music_dbfs": music_dbfs,
            "agent_level": b.speakers["agent"].level,
            "generator_version": GENERATOR_VERSION,
        }
    )
    return CallPlan(
        seed=seed,
        duration_s=duration,
        language=lang,
        stereo=stereo,
        agent_id=str(agent_number),
        agent_name=f"agent{agent_number}.{int(rng.integers(100, 1000))}",
        utterances=utterances,
        holds=holds,
        noise_dbfs=noise_dbfs,
        music_dbfs=music_dbfs,
        truth=truth,
    )


def _lay_out(b: _Builder) -> None:
    rng, end = b.rng, b.duration_s - float(b.rng.uniform(0.3, 1.0))
    if end - b.t < 1.0:
        return  # a hang-up before anyone spoke: silence only (the scorer's "skip scoring" case)
    closing = b.line("closing") if rng.random() < 0.8 else None
    closing_len = b.length("agent", closing) if closing else 0.0
    has_closing_room = closing is not None and end - b.t > closing_len + 12
    body_end = end - closing_len - b.gap() if has_closing_room else end
    if rng.random() < 0.85 and body_end - b.t > 6:
        b.say("agent", "greeting", b.line("greeting"), b.t)
        b.t += b.gap()
    speaker = "customer"
    flags = {"empathy": rng.random() < 0.6, "prohibited": rng.random() < 0.12, "holds": 0}
    first = True
    while body_end - b.t > 2.5:
        free = body_end - b.t
        forced = b.force_hold and not flags["holds"]  # tested after the dice roll, so unforced plans draw exactly as before
        if flags["holds"] < 2 and free > 30 and not first and (rng.random() < 0.07 or forced):
            _hold(b, min(free - 8, float(rng.uniform(10.5, 45))))
            flags["holds"] += 1
            speaker = "customer"
            continue
        paused = free > 8 and not first and rng.random() < 0.1
        if paused:
            b.t += round(float(rng.uniform(3.2, min(12.0, free - 4))), 3)  # dead air: nobody says anything
        role = "opening" if first and speaker == "customer" else speaker
        if speaker == "agent" and flags["empathy"] and rng.random() < 0.3:
            role, flags["empathy"] = "empathy", False
        elif speaker == "agent" and flags["prohibited"] and rng.random() < 0.2:
            role, flags["prohibited"] = "prohibited", False
        text = b.line(role)
        start = b.t
        if not paused and b.utterances and b.utterances[-1].speaker != speaker and rng.random() < 0.15:
            prev = b.utterances[-1]
            # Overtalk: start before the other party finished, but after they got going.
            overlap = min(float(rng.uniform(0.4, 1.5)), prev.duration_s - 0.3)
            start = max(prev.start_s + 0.3, prev.end_s - overlap)
            # ...and never over their own previous line (a speaker's lines follow one another).
            own_end = max((u.end_s for u in b.utterances if u.speaker == speaker), default=0.0)
            start = max(start, own_end + 0.5)
        full = b.length(speaker, text)
        free = body_end - start
        if full > free - 0.2:
            if role not in ("agent", "customer", "opening"):
                text, role = b.line(speaker), speaker  # phrase-bearing lines are never cut off: truth must be what was heard
            b.say(speaker, role, text, start, max_s=max(0.3, free - 0.2))
        else:
            b.say(speaker, role, text, start)
        first = False
        b.t += b.gap()
        speaker = "agent" if speaker == "customer" else "customer"
    if has_closing_room and closing is not None:
        b.say("agent", "closing", closing, max(b.t, body_end + 0.12))
        if end - b.t > 3.5 and rng.random() < 0.7:
            bye = b.line("bye")
            b.say("customer", "bye", bye, b.t + b.gap(), max_s=max(0.3, end - b.t - 0.7))


def _hold(b: _Builder, music_s: float) -> None:
    """Agent asks the customer to hold (most do), music plays, agent thanks them for waiting (most do)."""
    rng = b.rng
    etiquette = rng.random() < 0.75
    if etiquette:
        b.say("agent", "hold", b.line("hold"), b.t)
    start = round(b.t + float(rng.uniform(0.4, 1.2)), 3)
    b.holds.append(Hold(start, round(start + music_s, 3)))
    b.t = round(start + music_s + float(rng.uniform(0.4, 1.2)), 3)
    if etiquette:
        b.say("agent", "after_hold", b.line("after_hold"), b.t)
    else:
        b.say("agent", "agent", b.line("agent"), b.t)
    b.t += b.gap()


DOUBLE_BEEP_GAP_S = 0.12


def _hold_sound(rng: np.random.Generator, kind: str | None) -> Hold:
    """How this call's PBX plays hold (a template: its span is filled in per hold): about half music, the rest a beep (some a
    double beep) or a longer tone every few seconds."""
    draw = rng.random()
    kind = kind or ("music" if draw < 0.5 else "beep" if draw < 0.8 else "tone")
    if kind == "music":
        return Hold(0.0, 0.0)
    tone_hz = round(float(rng.uniform(400, 1400)), 1)
    beeps = 1
    if kind == "beep":
        beeps = 2 if rng.random() < 0.35 else 1
        on_s = 2 * float(rng.uniform(0.12, 0.2)) + DOUBLE_BEEP_GAP_S if beeps == 2 else float(rng.uniform(0.2, 0.5))
        period_s = float(rng.uniform(2.0, 15.0))
    else:
        on_s = float(rng.uniform(0.8, 1.5))
        period_s = on_s + float(rng.uniform(2.0, 7.0))
    return Hold(0.0, 0.0, kind, period_s, round(on_s, 3), tone_hz, beeps)


def _with_sound(hold: Hold, sound: Hold) -> Hold:
    """The hold played with the call's sound; the period is snapped so that ≥ 3 bursts fit exactly from hold start to end."""
    if sound.kind == "music":
        return hold
    span = hold.end_s - hold.start_s - sound.on_s
    periods = max(2, int(round(span / sound.period_s)))
    return replace(sound, start_s=hold.start_s, end_s=hold.end_s, period_s=round(span / periods, 6))


AWKWARD_GAP_S = (2.4, 3.4)  # silences near the 3 s dead-air threshold happen only by accident of layout


def _fill_awkward_gaps(b: _Builder) -> None:
    """Put a short listener line into any silence of 2.4–3.4 s.

    Deliberate dead air is ≥ 3.2 s plus turn gaps; a conversational gap is < 2.4 s. Silences in between only arise where the
    layout meets the fixed call length, and they would make the dead-air truth hinge on a few ms around the threshold.
    """
    spans = sorted([(u.start_s, u.end_s) for u in b.utterances] + [(h.start_s, h.end_s) for h in b.holds])
    t, gaps = 0.0, []
    for start, end in spans + [(b.duration_s, b.duration_s)]:
        if AWKWARD_GAP_S[0] < start - t < AWKWARD_GAP_S[1] and t > 0:
            gaps.append((t, start))
        t = max(t, end)
    for g0, g1 in gaps:
        before = [u for u in b.utterances if u.end_s <= g0 + 1e-6]
        speaker = "agent" if before and before[-1].speaker == "customer" else "customer"
        text = b.line("filler") if speaker == "customer" else b.line("agent")
        length = min(b.length(speaker, text), g1 - g0 - 0.8)
        b.say(speaker, speaker, text, g0 + (g1 - g0 - length) / 2, max_s=length)
