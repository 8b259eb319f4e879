"""`python -m callgen --seed 7 --out x.wav --truth x.json`: dump one synthetic call and its ground truth."""

from __future__ import annotations

import argparse
import json
import sys

from audio.wav import write_wav
from callgen import plan_call, render_call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callgen", description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--duration", type=float, default=None, help="seconds (default: drawn from the seed)")
    parser.add_argument("--language", choices=["vi", "en"], default=None)
    parser.add_argument("--stereo", action="store_true", help="agent left, customer right (default: mono)")
    parser.add_argument("--codec", choices=["ulaw", "alaw", "pcm16"], default="ulaw")
    parser.add_argument("--rate", type=int, default=8000, help="sample rate in Hz")
    parser.add_argument("--out", required=True, help="WAV path")
    parser.add_argument("--truth", default=None, help="JSON path for the ground truth")
    args = parser.parse_args(argv)
    plan = plan_call(args.seed, duration_s=args.duration, language=args.language, stereo=args.stereo)
    pcm = render_call(plan, sample_rate=args.rate)
    with open(args.out, "wb") as handle:
        write_wav(handle, pcm, args.rate, args.codec)
    if args.truth:
        meta = {
            "seed": plan.seed,
            "language": plan.language,
            "stereo": plan.stereo,
            "agent_id": plan.agent_id,
            "agent_name": plan.agent_name,
            "truth": plan.truth,
        }
        with open(args.truth, "w", encoding="utf-8") as handle:
            json.dump(meta, handle, ensure_ascii=False, indent=2)
    print(f"{args.out}: {plan.duration_s:.2f} s {plan.language} {'stereo' if plan.stereo else 'mono'} {args.codec}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
