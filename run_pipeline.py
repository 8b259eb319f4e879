"""Start the CCAS streaming pipeline from the clone: `python run_pipeline.py --runner=DirectRunner [options]`.

The pipeline reads flags and `CCAS_*` variables only. `--local` fills every variable that is not set from this clone's local
stack (the values `ccas env` prints: Kafka, PostgreSQL, S3, recorder, scoring service, expansion service, the Prism binary,
the job service and worker pool) and says which ones it filled. Installed elsewhere, the same job is `ccas-pipeline`.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--local" in args:
        args.remove("--local")
        from ccas.stack.env import fill_from_local_stack

        filled = fill_from_local_stack(os.environ)
        print(f"run_pipeline: --local: {len(filled)} settings from the local stack ({', '.join(sorted(filled)) or 'none'})",
              file=sys.stderr)
    from pipeline.main import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())
