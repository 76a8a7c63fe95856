"""Faithful float32 path vs the fast path, side by side: `python benchmarks/speed.py [--quick]`.

Same as `poster-lite bench`. Results are printed and saved to runs/bench/speed.json;
the figures we measured are in benchmarks/README.md.
"""
import sys

from poster_lite.speed_commands import main

if __name__ == "__main__":
    sys.exit(main())
