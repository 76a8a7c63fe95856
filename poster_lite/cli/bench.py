"""`poster-lite bench`: the faithful float32 model against the fast path, side by side (poster_lite.bench).

    poster-lite bench --quick
"""
from __future__ import annotations

from .options import device, number, preset


def add_parsers(sub, parents) -> None:
    p = sub.add_parser("bench", parents=parents, help="speed: faithful float32 vs the fast path, side by side")
    p.add_argument("--quick", action="store_true", help="one small batch per model, 2 repeats (< 1 minute)")
    p.add_argument("--models", nargs="+", type=preset, default=["poster-nano", "poster-l"], help="presets to measure")
    p.add_argument("--devices", nargs="+", type=device, default=None,
                   help="cpu and/or cuda (default: all present); checked against this machine")
    p.add_argument("--repeats", type=number(integer=True, low=1), default=5, help="default 5")
    p.add_argument("--checkpoint", default="auto",
                   help="a trained poster-nano checkpoint for the accuracy check (default: the suite's cached "
                        "data/cache/models/poster-nano/best when present; 'none' to skip)")
    p.add_argument("--compile", action="store_true", help="also torch.compile the fast path (reports compile time)")
    p.add_argument("--out", default="runs/bench/speed.json", help="where to save the JSON results")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import bench, model_cache

    checkpoint = args.checkpoint
    if checkpoint == "auto":
        cached = model_cache.model_dir("poster-nano") / "best"
        checkpoint = str(cached) if cached.exists() else None
        print(f"accuracy check with {cached}" if cached.exists() else
              "no trained poster-nano cached (pl.trained_model makes one): agreement only, no accuracy check")
    elif checkpoint == "none":
        checkpoint = None
    bench.run(models=args.models, devices=args.devices, quick=args.quick, repeats=args.repeats,
              checkpoint=checkpoint, compile=args.compile, out=args.out)
    return 0
