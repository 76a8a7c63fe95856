"""The supplement's ablations at nano scale on SynthFER: `make ablations`.

    python tools/ablations.py                       # the whole grid, one seed
    python tools/ablations.py --seeds 0 1           # every row twice: mean and spread
    python tools/ablations.py --budget-minutes 30   # stop starting rows after 30 minutes

Rows (all poster-nano at depth 4 unless the row changes it, so that swap depths
0/1/2/4 mean something):
  Table 4   image-only-nano (4 blocks) vs poster-nano (4 blocks)
  Table 2   swap_depth 0, 1, 2 (4 = every block swaps = the base row)
  Figure 1  depth 1, 2, 6 (4 = the base row)
  Table 1   pyramid_dims (128,), (128, 64), (128, 64, 32, 16) ((128, 64, 32) = the base row)
They run in that order (most important first), so a run cut short by the budget
still answers Tables 4 and 2. Every row: same seed, same data, same epochs, the
best epoch chosen on validation, the test set evaluated once.

Results go to notebooks/results/ablations_nano.json (rewritten atomically after
every row) with the settings, the date, the machine and the git commit.
Notebook 07 reads that file.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import torch

import poster_lite as pl
from poster_lite.engine import NANO_LR
from poster_lite.engine_commands import Subset

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "notebooks" / "results" / "ablations_nano.json"
BASE_DEPTH = 4

# (row id, preset, config overrides, {ablation: the value this row stands for}).
# The base row (poster-nano at depth 4) belongs to every ablation at once.
BASE = {"streams": "poster-nano (4 blocks)", "swap_depth": 4, "depth": 4, "pyramid": [128, 64, 32]}
ROWS = [
    ("image-only-nano", "image-only-nano", {"depth": BASE_DEPTH}, {"streams": "image-only-nano (4 blocks)"}),
    ("poster-nano-d4", "poster-nano", {"depth": BASE_DEPTH}, BASE),
    ("swap0", "poster-nano", {"depth": BASE_DEPTH, "swap_depth": 0}, {"swap_depth": 0}),
    ("swap1", "poster-nano", {"depth": BASE_DEPTH, "swap_depth": 1}, {"swap_depth": 1}),
    ("swap2", "poster-nano", {"depth": BASE_DEPTH, "swap_depth": 2}, {"swap_depth": 2}),
    ("depth1", "poster-nano", {"depth": 1}, {"depth": 1}),
    ("depth2", "poster-nano", {"depth": 2}, {"depth": 2, "streams": "poster-nano (2 blocks)"}),
    ("depth6", "poster-nano", {"depth": 6}, {"depth": 6}),
    ("pyramid1", "poster-nano", {"depth": BASE_DEPTH, "pyramid_dims": (128,)}, {"pyramid": [128]}),
    ("pyramid2", "poster-nano", {"depth": BASE_DEPTH, "pyramid_dims": (128, 64)}, {"pyramid": [128, 64]}),
    ("pyramid4", "poster-nano", {"depth": BASE_DEPTH, "pyramid_dims": (128, 64, 32, 16)},
     {"pyramid": [128, 64, 32, 16]}),
]

BUDGET_NOTE = (
    "Budget run: the whole grid had to fit in about 25 minutes of a shared (and, when it ran, heavily loaded) 2-core CPU, so every row "
    "trains on a fixed class-balanced subset of SynthFER for a few epochs (settings below), in bf16 "
    "where the CPU has it, from random weights (no backbone pretraining). The numbers are far from "
    "converged and carry noise of a few points; read the trends, and only those larger than the "
    "seed-to-seed spread.")


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "tools/ablations.py", "poster_lite"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        return commit + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    return {"host": platform.node(), "platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def write_json_atomically(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as f:
        json.dump(payload, f, indent=1)
    os.chmod(tmp, 0o644)            # mkstemp makes it private; this is a shared results file
    os.replace(tmp, path)


def stop_like_ctrl_c(signum, frame):
    raise KeyboardInterrupt


def open_subsets(settings: dict) -> tuple:
    """The same three subsets for every row (Subset's order depends only on its seed)."""
    splits = {}
    for split, n in (("train", settings["n_train"]), ("val", settings["n_val"]), ("test", settings["n_test"])):
        full = pl.data.load("synthfer", split=split)
        splits[split] = Subset(full, n, seed=0) if n and n < len(full) else full
    return splits["train"], splits["val"], splits["test"]


def run_row(preset: str, overrides: dict, seed: int, settings: dict, data: tuple, progress: bool = True) -> dict:
    """Train one row from scratch and test its validation-selected epoch once."""
    train_set, val_set, test_set = data
    torch.manual_seed(seed)
    model = pl.build_model(preset, num_classes=len(train_set.classes), **overrides)
    params = sum(p.numel() for p in model.parameters())
    started = time.perf_counter()
    history = pl.train(model, train_set, val_set, epochs=settings["epochs"], batch_size=settings["batch_size"],
                       test_set=test_set, precision=settings["precision"], progress=progress, seed=seed,
                       lr=settings["lr"], sam=settings["sam"])
    wall = time.perf_counter() - started
    test, val = history.attrs["test"], history.attrs["val"]
    return {"seed": seed, "test_accuracy": test["accuracy"], "test_mean_class_accuracy": test["mean_class_accuracy"],
            "val_accuracy": val["accuracy"], "best_epoch": history.attrs["best_epoch"],
            "params": params, "transformer_params": sum(p.numel() for p in model.fusion.parameters()),
            "wall_s": round(wall, 1), "history": history.to_dict("records")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-train", type=int, default=224, help="training images (class-balanced subset)")
    parser.add_argument("--n-val", type=int, default=70, help="validation images (0: all)")
    parser.add_argument("--n-test", type=int, default=210, help="test images (0: all)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=NANO_LR)
    parser.add_argument("--sam", action="store_true", help="use SAM (twice the cost per step)")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rows", nargs="+", help=f"only these rows: {', '.join(r[0] for r in ROWS)}")
    parser.add_argument("--budget-minutes", type=float, default=0, help="start no new row after this (0: no limit)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    known = [r[0] for r in ROWS]
    unknown = sorted(set(args.rows or []) - set(known))
    if unknown:
        parser.error(f"unknown row(s) {unknown}; known: {', '.join(known)}")
    rows = [r for r in ROWS if not args.rows or r[0] in args.rows]
    settings = {"data": "synthfer", "n_train": args.n_train, "n_val": args.n_val, "n_test": args.n_test,
                "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "sam": args.sam,
                "precision": args.precision, "seeds": args.seeds, "backbones": "random init (no pretraining)",
                "selection": "best validation epoch, test evaluated once", "base": f"poster-nano, depth {BASE_DEPTH}"}
    data = open_subsets(settings)
    settings.update(n_train=len(data[0]), n_val=len(data[1]), n_test=len(data[2]))
    payload = {"what": "POSTER ablations (supplement Tables 1, 2, 4 and Figure 1) at nano scale on SynthFER",
               "regenerate": "make ablations", "budget_note": BUDGET_NOTE, "settings": settings,
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "git_commit": git_commit(), "complete": False, "runs": [], "not_run": []}

    todo = [(row, seed) for seed in args.seeds for row in rows]     # every row once before any repeat
    payload["planned"] = [{"row": row[0], "seed": seed} for row, seed in todo]
    # A stopped run (Ctrl-C, or `kill` at a deadline) still records what ran and what did not.
    signal.signal(signal.SIGTERM, stop_like_ctrl_c)
    started = time.perf_counter()
    try:
        for (row_id, preset, overrides, stands_for), seed in todo:
            minutes = (time.perf_counter() - started) / 60
            if args.budget_minutes and minutes > args.budget_minutes:
                payload["not_run"].append({"row": row_id, "seed": seed,
                                           "why": f"budget of {args.budget_minutes} min spent"})
                continue
            print(f"[{minutes:5.1f} min] {row_id} seed {seed}: {preset} {overrides}", flush=True)
            result = run_row(preset, overrides, seed, settings, data)
            payload["runs"].append({"row": row_id, "model": preset,
                                    "overrides": {k: list(v) if isinstance(v, tuple) else v
                                                  for k, v in overrides.items()},
                                    "ablations": stands_for, **result})
            print(f"    test acc {result['test_accuracy']:.3f}, mAcc {result['test_mean_class_accuracy']:.3f}, "
                  f"{result['params']:,} params, {result['wall_s']:.0f} s", flush=True)
            payload["total_wall_s"] = round(time.perf_counter() - started, 1)
            write_json_atomically(args.out, payload)
    except KeyboardInterrupt:
        done = {(r["row"], r["seed"]) for r in payload["runs"]} | {(r["row"], r["seed"]) for r in payload["not_run"]}
        payload["not_run"] += [{"row": row[0], "seed": seed, "why": "run stopped before this row finished"}
                               for row, seed in todo if (row[0], seed) not in done]
    payload["complete"] = not payload["not_run"]
    payload["total_wall_s"] = round(time.perf_counter() - started, 1)
    write_json_atomically(args.out, payload)
    print(f"wrote {args.out} ({len(payload['runs'])} runs, {payload['total_wall_s'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
