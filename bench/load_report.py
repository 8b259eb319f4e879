"""`bench/e2e_load.py --report`: the saved runs as Markdown tables (printed, for docs/performance.md) and plots
(docs/images/performance-*.png and .svg)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.load_probes import slope_per_min

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
SLA_S, GOAL_P95_S = 120.0, 60.0
PIPELINE_GROUP = "pipeline"


def _load(folder: Path) -> list[dict[str, Any]]:
    runs = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    return [run for run in runs if not run["name"].startswith("smoke")]


def as_shipped(run: dict[str, Any]) -> bool:
    """A run of the current code with its default settings: not a before-* run kept for a comparison, and no extra pipeline
    flag (a run with one, e.g. an export switched off, attributes a cost and is shown in the tables only)."""
    return not run["name"].startswith("before") and not run["settings"].get("pipeline_args")


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def sweep_table(runs: list[dict[str, Any]]) -> str:
    lines = ["| run | offered calls/s | scored calls/s | e2e p50 / p95 / p99 s | pipeline own p95 s | lag slope msg/min "
             "| dead letters | unscored | e2e ÷ isolated scoring |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        e2e = r["stages"]["end_to_scored"]
        offered = r.get("offered_calls_per_s")
        slope = r.get("lag_slope_per_min")
        lines.append(
            f"| {r['name']} | {'burst of ' + str(r['burst']) if r['burst'] else f'{offered:.2f}'} "
            f"| {r['throughput_calls_per_s']:.2f} | {_seconds(e2e['p50'])} / {_seconds(e2e['p95'])} / {_seconds(e2e['p99'])} "
            f"| {_seconds(r['stages']['pipeline_own']['p95'])} | {'–' if slope is None else f'{slope:+.1f}'} "
            f"| {sum(r['dead_letters'].values())} | {len(r['calls_unscored'])} | {r['e2e_over_isolated'] or 0:.2f} |")
    return "\n".join(lines)


def stage_table(runs: list[dict[str, Any]]) -> str:
    stages = ("end_to_raw", "raw_to_enriched", "enriched_to_stored", "stored_to_scored", "scoring_request", "pipeline_own",
              "end_to_scored")
    lines = ["| run | " + " | ".join(stages) + " |", "|---|" + "---|" * len(stages)]
    for r in runs:
        cells = [f"{_seconds(r['stages'][s]['p50'])} / {_seconds(r['stages'][s]['p95'])}" for s in stages]
        lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n(p50 / p95 seconds per stage)"


def process_table(runs: list[dict[str, Any]]) -> str:
    lines = ["| run | process group | cores | CPU-s per call | peak RSS MB | RSS first → last minute MB |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        for group, u in sorted(r["processes"].items(), key=lambda kv: -kv[1]["cores"]):
            if u["cores"] < 0.02 or group == "bench" or ("/" in group and not group.startswith(PIPELINE_GROUP + "/")):
                continue  # a group's parts (programs) only for the pipeline: Prism, the SDK worker, the Java harness
            lines.append(f"| {r['name']} | {group} | {u['cores']:.2f} | {u['cpu_s_per_call']:.3f} | {u['rss_peak_mb']:.0f} "
                         f"| {u['rss_first_min_mb']:.0f} → {u['rss_last_min_mb']:.0f} |")
    return "\n".join(lines)


def memory_table(run: dict[str, Any]) -> str:
    """RSS of each process group over a run's measured window: the least-squares slope, and the band (min–max) over its
    second half, when the processes have reached their working set."""
    start = run["moments"]["warm_end"] - run["moments"]["began"]
    end = start + run["window_s"]
    lines = [f"{run['name']}, window {start / 60:.0f}–{end / 60:.0f} min:", "",
             "| process group | RSS at window start MB | RSS at window end MB | slope MB/min | band over the second half MB |",
             "|---|---|---|---|---|"]
    groups = sorted({g for _, rss in run["rss"] for g in rss if g not in ("bench", "other")})
    for group in groups:
        series = [(t, rss[group]) for t, rss in run["rss"] if group in rss and start <= t <= end]
        if len(series) < 3 or max(v for _, v in series) < 1:
            continue
        late = [v for t, v in series if t >= (start + end) / 2]
        slope = slope_per_min(series, start, end) or 0.0
        lines.append(f"| {group} | {series[0][1]:.0f} | {series[-1][1]:.0f} | {slope:+.1f} | {min(late):.0f}–{max(late):.0f} "
                     f"(±{(max(late) - min(late)) / 2:.0f}) |")
    return "\n".join(lines)


def isolated_table(runs: list[dict[str, Any]]) -> str:
    lines = ["| run | isolated calls | calls/s | audio-s per s | scoring cores | CPU-s per call |", "|---|---|---|---|---|---|"]
    for r in runs:
        i = r["isolated_scoring"]
        lines.append(f"| {r['name']} | {i['calls']} | {i['calls_per_s']:.2f} | {i['audio_s_per_s']:.0f} "
                     f"| {i['scoring_cores'] or 0:.2f} | {i['cpu_s_per_call']:.2f} |")
    return "\n".join(lines)


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares intercept and slope of (x, y) points (slope only through the origin when there is one point)."""
    if len(points) == 1:
        return 0.0, points[0][1] / points[0][0]
    n = len(points)
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return my - slope * mx, slope


def capacity_model(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Per-call CPU costs from the runs: the scoring service's from its isolated runs (CPU-s per call and per audio-second),
    the pipeline's as a line through (calls/s scored, cores used) of the rate runs: cores = idle + per_call × calls/s.
    Only runs `as_shipped`."""
    runs = [r for r in runs if as_shipped(r)]
    isolated = [r["isolated_scoring"] for r in runs if r["isolated_scoring"].get("scoring_cores")]
    scoring_cpu_per_call = sum(i["cpu_s_per_call"] for i in isolated) / len(isolated)
    scoring_cpu_per_audio_s = sum(i["scoring_cores"] / i["audio_s_per_s"] for i in isolated) / len(isolated)
    rated = [r for r in runs if not r["burst"] and PIPELINE_GROUP in r["processes"]]
    idle, per_call = _fit([(r["throughput_calls_per_s"], r["processes"][PIPELINE_GROUP]["cores"]) for r in rated])
    audio_per_call = sum(r["throughput_audio_s_per_s"] / r["throughput_calls_per_s"] for r in rated) / len(rated)
    return {"scoring_cpu_s_per_call": scoring_cpu_per_call, "scoring_cpu_s_per_audio_s": scoring_cpu_per_audio_s,
            "pipeline_idle_cores": idle, "pipeline_cpu_s_per_call": per_call, "audio_s_per_call": audio_per_call}


def capacity_table(model: dict[str, float], utilisation: float = 0.7) -> str:
    lines = [f"Measured: a call is {model['audio_s_per_call']:.0f} s of audio on average; the scoring service spends "
             f"{model['scoring_cpu_s_per_call']:.2f} CPU-s on it ({model['scoring_cpu_s_per_audio_s'] * 60:.3f} CPU-s per audio "
             f"minute, ASR off); the pipeline worker (Prism + SDK harness) {model['pipeline_cpu_s_per_call']:.2f} CPU-s per call "
             f"on top of {model['pipeline_idle_cores']:.2f} cores idle. Cores at {utilisation:.0%} utilisation:", "",
             "| calls/s | scoring cores | pipeline worker cores |", "|---|---|---|"]
    for rate in (1, 10, 50, 200):
        scoring = rate * model["scoring_cpu_s_per_call"] / utilisation
        pipeline = rate * model["pipeline_cpu_s_per_call"] / utilisation
        lines.append(f"| {rate} | {scoring:.1f} | {pipeline:.1f} |")
    return "\n".join(lines)


def _save(figure: Any, stem: str) -> list[Path]:
    IMAGES.mkdir(parents=True, exist_ok=True)
    paths = [IMAGES / f"{stem}.png", IMAGES / f"{stem}.svg"]
    figure.savefig(paths[0], dpi=110, bbox_inches="tight")
    figure.savefig(paths[1], bbox_inches="tight", metadata={"Date": None})  # no timestamp: a re-run changes only data
    return paths


def plots(runs: list[dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "ccas-performance"  # stable element ids: a re-run changes only what the data changes
    import matplotlib.pyplot as plt

    written: list[Path] = []
    rated = sorted((r for r in runs if not r["burst"]), key=lambda r: r["offered_calls_per_s"] or 0)
    for reader in sorted({r["reader"] for r in rated}):
        emitting = [r for r in rated if r["reader"] == reader and as_shipped(r) and r["name"].startswith("emit")]
        current = [r for r in rated if r["reader"] == reader and as_shipped(r) and r not in emitting]
        before = [r for r in rated if r["reader"] == reader and r["name"].startswith("before")]
        figure, axis = plt.subplots(figsize=(7, 4))
        x = [r["offered_calls_per_s"] for r in current]
        for stage, label in (("end_to_scored", "call end → scored"), ("pipeline_own", "pipeline's own share"),
                             ("stored_to_scored", "stored → scored")):
            axis.plot(x, [r["stages"][stage]["p95"] for r in current], marker="o", label=f"p95 {label}")
        axis.plot(x, [r["stages"]["end_to_scored"]["p50"] for r in current], marker=".", linestyle=":",
                  label="p50 call end → scored")
        if emitting:
            for stage, label, colour in (("end_to_scored", "call end → scored", "C0"),
                                         ("pipeline_own", "pipeline's own share", "C1")):
                axis.plot([r["offered_calls_per_s"] for r in emitting], [r["stages"][stage]["p95"] for r in emitting],
                          marker="*", markersize=12, linestyle="none", color=colour,
                          label=f"p95 {label}, stages passing each call on (emit-*)")
        if before:
            axis.plot([r["offered_calls_per_s"] for r in before], [r["stages"]["end_to_scored"]["p95"] for r in before],
                      marker="x", linestyle="--", color="grey", label="p95 call end → scored, before the scoring change")
        axis.axhline(SLA_S, color="red", linestyle="--", linewidth=1, label="SLA 120 s")
        axis.axhline(GOAL_P95_S, color="orange", linestyle="--", linewidth=1, label="goal p95 60 s at 1 call/s")
        axis.set_xlabel("offered load (calls ending per second)")
        axis.set_ylabel("seconds (log scale)")
        axis.set_yscale("log")
        axis.set_title(f"Latency vs load, 2 cores, {reader} Kafka reader (ASR off)")
        axis.legend(fontsize=7, loc="lower right")
        axis.grid(True, alpha=0.3)
        written += _save(figure, f"performance-p95-vs-load-{reader}")
        plt.close(figure)
    figure, axis = plt.subplots(figsize=(7, 4))
    for r in runs:
        if r["lag"]:
            axis.plot([t / 60 for t, _ in r["lag"]], [v for _, v in r["lag"]], label=r["name"])
    axis.set_xlabel("minutes since the run began")
    axis.set_ylabel("consumer lag on calls.raw (messages)")
    axis.set_title("Consumer lag over time per run")
    axis.legend(fontsize=8)
    axis.grid(True, alpha=0.3)
    written += _save(figure, "performance-lag")
    plt.close(figure)
    longest = max(runs, key=lambda r: r["window_s"])
    figure, axis = plt.subplots(figsize=(7, 4))
    groups = sorted({g for _, rss in longest["rss"] for g in rss if not g.startswith("stack:") and g not in ("bench", "other")})
    for group in groups:
        axis.plot([t / 60 for t, _ in longest["rss"]], [rss.get(group, 0) for _, rss in longest["rss"]], label=group)
    axis.set_xlabel("minutes since the run began")
    axis.set_ylabel("RSS (MB, process group)")
    axis.set_title(f"Memory over the longest run ({longest['name']})")
    axis.legend(fontsize=8)
    axis.grid(True, alpha=0.3)
    written += _save(figure, "performance-rss")
    plt.close(figure)
    return written


def main(folder: Path) -> int:
    runs = _load(folder)
    if not runs:
        print(f"no runs saved in {folder}: run bench/e2e_load.py first")
        return 1
    for title, table in (("Runs", sweep_table(runs)), ("Stages", stage_table(runs)), ("Processes", process_table(runs)),
                         ("Isolated scoring in the same run", isolated_table(runs)),
                         ("Memory over the longest run", memory_table(max(runs, key=lambda r: r["window_s"]))),
                         ("Capacity model", capacity_table(capacity_model(runs)))):
        print(f"### {title}\n\n{table}\n")
    for path in plots(runs):
        print(f"wrote {path.relative_to(REPO)}")
    return 0
