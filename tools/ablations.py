"""The supplement's ablations at nano scale on SynthFER: `make ablations`.

    python tools/ablations.py                       # the whole grid, seed 0 (about 45 min on 2 CPU cores)
    python tools/ablations.py --seeds 0 1 2         # every row three times: mean and spread
    python tools/ablations.py --rows swap0 depth6   # some rows (merged into the shipped file)
    python tools/ablations.py --budget-minutes 30   # stop starting rows after 30 minutes

Protocol (poster_lite/ablation.py): both pretrained nano backbones are frozen and
their features cached once; each row trains the part it changes (image projection,
pyramid fusion, SE gate, head) with the full recipe on all of SynthFER's training
faces, picks its epoch on validation and is tested once on the 1,500 test faces.
The features are computed once (about 2 minutes) and cached in data/cache/features/.
Rows (all poster-nano at depth 4 unless the row changes it):
  Table 4   image-only-nano (4 blocks) vs poster-nano (4 blocks)
  Table 2   swap_depth 0, 1, 2 (4 = every block swaps = the base row)
  Figure 1  depth 1, 2, 6 (4 = the base row)
  Table 1   pyramid_dims (128,), (128, 64), (128, 64, 32, 16) ((128, 64, 32) = the base row)
Every row runs once per seed before any row repeats, so a run cut short by the
budget still has every row. Results go to poster_lite/shipped/ablations_nano.json
(rewritten atomically after every row) with the settings, date, machine and commit.
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

from poster_lite.ablation import BASE_DEPTH, ROW_IDS, ROWS, cached_features, run_row
from poster_lite.training.recipe import default_lr

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "poster_lite" / "shipped" / "ablations_nano.json"     # package data: 07 reads it on Colab too

PROTOCOL_NOTE = (
    "Frozen-backbone protocol: both nano backbones were pretrained on SynthFER (identity for IR-50, "
    "68 landmarks for MobileFaceNet) and frozen; their feature maps were computed once (training faces "
    "in four augmented views) and each row trained only what it changes: image projection, pyramid "
    "fusion, SE gate and head, with the recipe's loss (CE + LSCE), Adam and exponential schedule, on all "
    "training faces, its epoch picked on validation and tested once; SAM is off unless the settings say "
    "sam=true (it doubles the cost). The paper fine-tunes IR-50 with SAM for hundreds of epochs in every "
    "row; freezing the backbones and a short schedule are what made the grid fit about 45 minutes of a "
    "2-core CPU, so the models are not converged (their validation accuracy was still rising).")


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=default_lr("poster-nano"), help="default: the preset's")
    parser.add_argument("--sam", action="store_true", help="SAM around Adam, as the paper (twice the cost per step)")
    parser.add_argument("--train-views", type=int, default=4, help="augmented views of each training face")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rows", nargs="+", help=f"only these rows: {', '.join(ROW_IDS)}")
    parser.add_argument("--budget-minutes", type=float, default=0, help="start no new row after this (0: no limit)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    unknown = sorted(set(args.rows or []) - set(ROW_IDS))
    if unknown:
        parser.error(f"unknown row(s) {unknown}; known: {', '.join(ROW_IDS)}")
    rows = [r for r in ROWS if not args.rows or r[0] in args.rows]
    features = cached_features("poster-nano", train_views=args.train_views)
    settings = {"data": "synthfer", "n_train": len(features["train"]), "n_val": len(features["val"]),
                "n_test": len(features["test"]), "train_views": args.train_views, "epochs": args.epochs,
                "batch_size": args.batch_size, "lr": args.lr, "sam": args.sam, "precision": args.precision,
                "seeds": args.seeds, "backbones": "pretrained nano backbones, frozen (features cached)",
                "trained": "image projection, pyramid fusion, SE gate, head",
                "selection": "best validation epoch, test evaluated once", "base": f"poster-nano, depth {BASE_DEPTH}"}
    payload = {"what": "POSTER ablations (supplement Tables 1, 2, 4 and Figure 1) at nano scale on SynthFER",
               "regenerate": "make ablations", "protocol_note": PROTOCOL_NOTE, "settings": settings,
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "git_commit": git_commit(), "complete": False, "runs": [], "not_run": []}
    # --rows adds to (or replaces rows of) an existing file with the same settings.
    earlier_s = 0.0
    if args.rows and args.out.exists():
        previous = json.loads(args.out.read_text())
        same = {k: v for k, v in previous.get("settings", {}).items() if k != "seeds"} == \
            {k: v for k, v in settings.items() if k != "seeds"}
        if not same:
            parser.error(f"{args.out} was made with other settings; rerun the whole grid or pass --out")
        redo = {(r[0], s) for r in rows for s in args.seeds}
        payload["runs"] = [r for r in previous["runs"] if (r["row"], r["seed"]) not in redo]
        settings["seeds"] = sorted({r["seed"] for r in payload["runs"]} | set(args.seeds))
        # the file's first date and the training time of the rows it keeps stay; this run adds to them
        payload.update(date=previous.get("date", payload["date"]), updated=payload["date"])
        earlier_s = sum(r["wall_s"] for r in payload["runs"])

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
            result = run_row(row_id, features, seed=seed, epochs=args.epochs, batch_size=args.batch_size,
                             lr=args.lr, sam=args.sam, precision=args.precision, progress=False)
            result.pop("model")
            payload["runs"].append({"row": row_id, "model": preset,
                                    "overrides": {k: list(v) if isinstance(v, tuple) else v
                                                  for k, v in overrides.items()},
                                    "ablations": stands_for, **result})
            print(f"    test acc {result['test_accuracy']:.3f}, mAcc {result['test_mean_class_accuracy']:.3f}, "
                  f"best epoch {result['best_epoch']}, {result['trained_params']:,} trained params, "
                  f"{result['wall_s']:.0f} s", flush=True)
            payload["total_wall_s"] = round(earlier_s + time.perf_counter() - started, 1)
            write_json_atomically(args.out, payload)
    except KeyboardInterrupt:
        done = {(r["row"], r["seed"]) for r in payload["runs"]} | {(r["row"], r["seed"]) for r in payload["not_run"]}
        payload["not_run"] += [{"row": row[0], "seed": seed, "why": "run stopped before this row finished"}
                               for row, seed in todo if (row[0], seed) not in done]
    payload["complete"] = not payload["not_run"]
    payload["total_wall_s"] = round(earlier_s + time.perf_counter() - started, 1)
    write_json_atomically(args.out, payload)
    print(f"wrote {args.out} ({len(payload['runs'])} runs, {payload['total_wall_s'] / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
