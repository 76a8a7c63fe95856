"""`poster-lite bench`: the speed benchmark of poster_lite.bench from the command line."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="one small batch per model, 2 repeats (< 1 minute)")
    p.add_argument("--models", nargs="+", default=["poster-nano", "poster-l"], help="presets to measure")
    p.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: all present)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--checkpoint", default=None, help="a trained poster-nano checkpoint for the accuracy check")
    p.add_argument("--compile", action="store_true", help="also torch.compile the fast path (reports compile time)")
    p.add_argument("--out", default="runs/bench/speed.json", help="where to save the JSON results")


def _bench(args) -> int:
    from .bench import run
    run(models=args.models, devices=args.devices, quick=args.quick, repeats=args.repeats,
        checkpoint=args.checkpoint, compile=args.compile, out=args.out)
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="speed: faithful float32 vs the fast path, side by side")
    add_arguments(p)
    p.set_defaults(func=_bench)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    add_arguments(p)
    return _bench(p.parse_args(argv))
