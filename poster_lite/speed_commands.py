"""`poster-lite bench`: the speed benchmark of poster_lite.bench from the command line."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="one small batch per model, 2 repeats (< 1 minute)")
    p.add_argument("--models", nargs="+", default=["poster-nano", "poster-l"], help="presets to measure")
    p.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: all present)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--checkpoint", default="auto",
                   help="a trained poster-nano checkpoint for the accuracy check (default: the suite's cached "
                        "data/cache/models/poster-nano/best when present; 'none' to skip)")
    p.add_argument("--compile", action="store_true", help="also torch.compile the fast path (reports compile time)")
    p.add_argument("--out", default="runs/bench/speed.json", help="where to save the JSON results")


def _bench(args) -> int:
    from .bench import run
    if args.checkpoint == "auto":
        from .zoo import model_dir
        cached = model_dir("poster-nano") / "best"
        args.checkpoint = str(cached) if cached.exists() else None
        print(f"accuracy check with {cached}" if cached.exists() else
              "no trained poster-nano cached (pl.trained_model makes one): agreement only, no accuracy check")
    elif args.checkpoint == "none":
        args.checkpoint = None
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
