"""Synthetic call generator: deterministic calls with ground truth and real espeak-ng speech (WAV and DSP primitives: `audio`).

Shared by the Avaya mock (what it replays) and the scoring service's accuracy tests (what it is checked against).
"""

from callgen.plan import GENERATOR_VERSION, CallPlan, Hold, Utterance, plan_call, sample_duration
from callgen.render import render_call

__all__ = ["GENERATOR_VERSION", "CallPlan", "Hold", "Utterance", "plan_call", "render_call", "sample_duration"]
