"""Faithful float32 path vs the fast path, side by side: `python benchmarks/speed.py [--quick]`.

The command `poster-lite bench` itself (same options). Results are printed and saved to
runs/bench/speed.json; the figures we measured are in benchmarks/README.md.
"""
import sys

from poster_lite.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
