"""Start the CCAS streaming pipeline: `python run_pipeline.py --runner=DirectRunner [options]`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    try:
        from pipeline.main import run
    except ImportError:
        print("run_pipeline: the streaming pipeline (pipeline/main.py) is not part of this checkout yet; "
              "see README 'Status'", file=sys.stderr)
        return 2
    return run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
