"""The ASR engine alone, in process: CPU-seconds per second of speech heard and WER, per beam (bench/score_service.py)."""

from __future__ import annotations

import time
from pathlib import Path

from audio.wav import read_wav, wav_bytes
from callgen import CallPlan, render_call
from callgen.asr_truth import reference_words, word_error_rate, words_of
from scoring_service.asr import make_transcriber, speech_tracks
from scoring_service.features import extract


def report(plans: list[CallPlan], engine: str, beams: list[int], model_dir: Path) -> int:
    features = []
    for plan in plans:
        pcm, rate, _ = read_wav(wav_bytes(render_call(plan), 8000, "ulaw"))
        features.append((plan, extract(pcm, rate, "agent_left" if plan.stereo else "mono")))
    print(f"{'engine':>15} {'beam':>4} {'lang':>4} {'speech s':>9} {'CPU s/speech s':>15} {'CPU s/audio min':>16} {'WER':>6}")
    for beam in beams if engine == "faster-whisper" else [1]:
        transcriber = make_transcriber(engine, model_dir, beam_size=beam)
        assert transcriber is not None
        by_language: dict[str, list] = {}
        for plan, f in features:
            speech_s = sum(t.seconds for t in speech_tracks(f.signals, f.speech))
            cpu0 = time.process_time()
            heard = transcriber.transcribe(f.signals, f.speech, plan.language)
            cpu = time.process_time() - cpu0
            speakers = ("agent", "customer") if plan.stereo else (None,)
            pairs = [
                (reference_words(plan, who), [w for s in heard.segments if who in (None, s.speaker) for w in words_of(s.text)])
                for who in speakers
            ]
            by_language.setdefault(plan.language, []).append((speech_s, cpu, f.duration_s, pairs))
        for language, rows in sorted(by_language.items()):
            speech, cpu, audio = (sum(r[i] for r in rows) for i in range(3))
            wer = word_error_rate(p for r in rows for p in r[3])
            print(
                f"{engine:>15} {beam:>4} {language:>4} {speech:>9.1f} {cpu / speech:>15.3f} {cpu / (audio / 60):>16.2f}"
                f" {wer:>6.1%}"
            )
    return 0
