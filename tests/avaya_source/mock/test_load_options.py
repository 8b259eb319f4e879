"""The mock's load-benchmark options: uniform arrivals, a recorder history that begins mid-stream, and replays served from a
pre-rendered audio pool (looped or cut to each call's length, mono/stereo mixed per inum)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from audio.wav import read_wav
from avaya_source.mock.audio import SAMPLE_RATE, AudioConfig, AudioStore
from avaya_source.mock.recorder import Faults, MockRecorder
from avaya_source.mock.responses import Rendering
from avaya_source.mock.schedule import Schedule, ScheduleConfig

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_uniform_arrivals_are_exactly_one_over_the_rate_apart() -> None:
    schedule = Schedule(ScheduleConfig(seed=3, start=NOW, calls_per_minute=120, count=50, multi_inum_ratio=0,
                                       arrivals="uniform"))
    starts = [segment.started_at for segment in schedule.all_until(NOW + timedelta(hours=1))]
    gaps = {round((later - earlier).total_seconds(), 6) for earlier, later in zip(starts, starts[1:], strict=False)}
    assert len(starts) == 50 and gaps == {0.5}


def test_recordings_that_ended_before_the_history_begins_are_never_listed_even_in_progress() -> None:
    history_from = NOW - timedelta(minutes=20)
    schedule = ScheduleConfig(seed=5, start=NOW - timedelta(hours=1), calls_per_minute=6, multi_inum_ratio=0.3,
                              duration_max_s=1800, history_from=history_from)
    recorder = MockRecorder(schedule, AudioConfig(), Rendering(tz=ZoneInfo("UTC")), Faults(list_in_progress=True))
    every = recorder.schedule.all_until(NOW)
    old = [s for s in every if s.ended_at < history_from]
    assert old and len(old) < len(every)
    listed = {call["inum"] for call in recorder.calls(NOW)}
    assert listed == {s.inum for s in every if s.ended_at >= history_from}
    # Ended long ago: not visible now, and not listed as in progress either.
    assert not any(recorder.schedule.visible(s, NOW) for s in old)
    xml = b"".join(recorder.search(_window(NOW - timedelta(hours=2), NOW), NOW).chunks).decode()
    assert not any(s.inum in xml for s in old)
    assert any(s.inum in xml for s in every if s.ended_at >= history_from)


def _window(lo: datetime, hi: datetime) -> dict[str, str]:
    return {"command": "search", "layout": "AvayaSegment", "operator_startedat": "9",
            "param1_startedat": lo.strftime("%d/%m/%y"), "param2_startedat": lo.strftime("%H:%M:%S"),
            "param3_startedat": hi.strftime("%d/%m/%y"), "param4_startedat": hi.strftime("%H:%M:%S")}


def test_a_pool_replay_is_the_calls_length_looped_from_a_pre_rendered_clip_in_its_channel_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for layout, channels in (("mono", 1), ("stereo", 2)):
        for index in range(2):
            np.save(tmp_path / f"{layout}-{index:02d}.npy", rng.integers(-8000, 8000, (SAMPLE_RATE * 3, channels), np.int16))
    store = AudioStore(AudioConfig(pool_dir=tmp_path, stereo_ratio=0.5))
    schedule = Schedule(ScheduleConfig(seed=9, start=NOW, calls_per_minute=60, count=40, multi_inum_ratio=0,
                                       duration_min_s=1, duration_median_s=5, duration_max_s=11))
    layouts = set()
    for segment in schedule.all_until(NOW + timedelta(hours=1)):
        size, chunks = store.wav_size_and_chunks(segment)
        body = b"".join(chunks)
        assert len(body) == size
        pcm, rate, codec = read_wav(io.BytesIO(body))
        frames = pcm.reshape(len(pcm), -1)
        assert (rate, codec) == (SAMPLE_RATE, "ulaw")
        assert len(frames) == round(segment.duration_s * SAMPLE_RATE)  # a 3 s clip looped or cut
        assert frames.shape[1] == (2 if store.stereo(segment) else 1)
        layouts.add(frames.shape[1])
    assert layouts == {1, 2}
