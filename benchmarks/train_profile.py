"""Where a poster-nano SAM training step spends its time: `python benchmarks/train_profile.py`.

    python benchmarks/train_profile.py                    # the fast path and the faithful one, batch 64
    python benchmarks/train_profile.py --paths fast --steps 3 --quick

The step is pl.train's own (poster_lite/training/profile.py says how it is built and what
each table means): data loading from the real SynthFER training set with the training
augmentation, forward, backward, SAM's second pass, the optimiser; each part of the model;
each kind of operation; FLOP rates as a fraction of this machine's measured peak.
Prints the tables and writes runs/bench/train_profile.json. Numbers are reported, never asserted.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from poster_lite.bench import machine, machine_line
from poster_lite.checkpoint import atomic_write
from poster_lite.training.profile import profile_lines, profile_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="poster-nano")
    parser.add_argument("--paths", nargs="+", choices=["fast", "faithful"], default=["fast", "faithful"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per path (default 5)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--op-steps", type=int, default=2, help="steps under torch.profiler (0: none)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="short peak measurement")
    parser.add_argument("--out", default="runs/bench/train_profile.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine(seconds=0.5 if args.quick else 2.0)
    print(machine_line(info))
    result = {"machine": info, "profiles": []}
    for path in args.paths:
        r = profile_step(args.model, fast=path == "fast", batch=args.batch, steps=args.steps, warmup=args.warmup,
                         op_steps=args.op_steps, peaks=info["peaks"])
        result["profiles"].append(r)
        print("\n".join(profile_lines(r)), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1, default=str)))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
