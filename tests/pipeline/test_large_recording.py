"""A 50 MB recording goes through download and scoring while the worker's memory stays flat (streamed, never held whole)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from datetime import datetime, timedelta

import psutil
import pytest

from tests.pipeline import e2e

pytestmark = pytest.mark.integration

LONG_SECONDS = 1600  # stereo PCM16 at 8 kHz: 32 000 bytes/s → 51.2 MB, under the scoring service's 30-minute cap
MAX_GROWTH_MB = 60


def test_50_mb_recording_with_flat_worker_memory(stack_env: dict[str, str]) -> None:
    seed = random.randrange(10_000, 99_999)
    # Calls minutes apart, so the search windows (whole seconds, inclusive) separate the warm-up calls from the large one.
    services = e2e.start_services(seed, 3, ["--stereo", "true", "--codec", "pcm16"], calls_per_minute=0.5)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    try:
        calls = sorted(services.recorder_calls(), key=lambda call: call["started_at"])
        warm, large = calls[:-1], calls[-1]
        services.configure_recorder({"long_inums": {large["inum"]: LONG_SECONDS}})
        bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
        group = f"ccas-pipeline-large-{uuid.uuid4().hex[:8]}"
        e2e.commit_group(bootstrap, group, "calls.raw", e2e.end_offsets(bootstrap, "calls.raw"))
        with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
            first = datetime.fromisoformat(warm[0]["started_at"]) - timedelta(seconds=30)
            split = datetime.fromisoformat(large["started_at"]).replace(microsecond=0) - timedelta(seconds=2)
            e2e.poll_once(services, url, first, split)
            pipeline = e2e.start_pipeline(services, url, group, "python", f"pipeline-{group}.log")
            try:
                e2e.wait_until(lambda: e2e.query(url, "SELECT count(*) FROM scoring_result")[0][0] >= len(warm), 240,
                               "the warm-up calls to be scored", [pipeline])
                assert e2e.query(url, "SELECT count(*) FROM call WHERE call_id = %s", (large["inum"],))[0][0] == 0
                worker = psutil.Process(pipeline.pid)

                def sample() -> None:
                    while not stop.is_set():
                        samples.append((time.monotonic(), worker.memory_info().rss / 2**20))
                        time.sleep(0.1)

                baseline = worker.memory_info().rss / 2**20
                sampler = threading.Thread(target=sample, daemon=True)
                sampler.start()
                e2e.poll_once(services, url, split, datetime.fromisoformat(large["ended_at"]) + timedelta(seconds=1))
                e2e.wait_until(lambda: e2e.query(url, "SELECT count(*) FROM scoring_result")[0][0] > len(warm), 600,
                               "the 50 MB recording to be scored", [pipeline])
                stop.set()
                sampler.join()
                size, duration, score = e2e.query(url, "SELECT a.size_bytes, a.duration_seconds, s.score FROM audio_asset a "
                                                       "JOIN scoring_result s USING (call_id) WHERE call_id = %s",
                                                  (large["inum"],))[0]
            finally:
                stop.set()
                pipeline.stop()
    finally:
        services.stop()
    peak = max(rss for _, rss in samples)
    print(f"\nlarge recording: {size / 2**20:.1f} MiB, {float(duration):.0f} s, score {score}; worker RSS baseline "
          f"{baseline:.0f} MiB, peak {peak:.0f} MiB, growth {peak - baseline:.1f} MiB over {len(samples)} samples")
    assert size >= 50 * 10**6 and float(duration) == pytest.approx(LONG_SECONDS, abs=1)
    assert len(samples) >= 20, "the sampler must have watched the download and the scoring"
    assert peak - baseline < MAX_GROWTH_MB
