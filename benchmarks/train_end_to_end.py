"""One full default poster-nano training, end to end: `python benchmarks/train_end_to_end.py --path fast`.

    python benchmarks/train_end_to_end.py --path faithful     # Recipe(fast=False): the float32 eager reference
    python benchmarks/train_end_to_end.py --path fast         # pl.train's default
    python benchmarks/train_end_to_end.py --path fast --compile

What `pl.trained_model("poster-nano", retrain=True)` runs (model_cache.RUN_SETTINGS["default"]:
early stopping with patience 4 under a cap of 30 epochs, batch 64, all 5,000 SynthFER training
faces, SAM, the nano lr, from the cached pretrained backbones), but into its own folder
(runs/bench/e2e-<path>/, replaced on each run): nothing cached or shipped is touched. Wall
time is the whole `pl.train` call (data preparation, compilation, training, the evaluations,
the final test). Writes runs/bench/train_e2e_<path>.json with the time, the test accuracy, how
the run ended and the machine's load.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import torch

import poster_lite as pl
from poster_lite.bench import machine, machine_line
from poster_lite.checkpoint import atomic_write
from poster_lite.data.subset import Subset
from poster_lite.model_cache import RUN_SETTINGS
from poster_lite.pretrain import ensure_pretrained_backbones, load_pretrained_backbones
from poster_lite.training.recipe import default_lr


def watch_epochs(out: Path, started: float, dest: Path, stop: threading.Event) -> None:
    """Record when each epoch's history row appears (a run stopped early still leaves its
    per-epoch times in `dest`)."""
    seen = 0
    while not stop.wait(2.0):
        try:
            rows = json.loads((out / "history.json").read_text())
        except (OSError, ValueError):
            continue
        if len(rows) > seen:
            seen = len(rows)
            found = json.loads(dest.read_text()) if dest.exists() else []
            found.append({"epoch": rows[-1]["epoch"], "elapsed_s": time.perf_counter() - started,
                          "val_acc": rows[-1].get("val_acc"), "images_per_s": rows[-1].get("images_per_s"),
                          "load_average": list(os.getloadavg())})
            dest.write_text(json.dumps(found, indent=1))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--path", choices=["fast", "faithful"], required=True)
    parser.add_argument("--compile", action="store_true", help="train through torch.compile (fast path)")
    parser.add_argument("--epochs", type=int, default=None, help="epoch cap (default: RUN_SETTINGS', 30)")
    parser.add_argument("--patience", type=int, default=None, help="default: RUN_SETTINGS' (4); 0: no early stopping")
    parser.add_argument("--model", default="poster-nano")
    parser.add_argument("--limit", type=int, default=None, help="a smoke check: this many faces per split")
    parser.add_argument("--data-root", default=None, help="a SynthFER folder (default: data/synthfer)")
    parser.add_argument("--out-root", default="runs/bench", help="where the run folder and the JSON go")
    args = parser.parse_args(argv)
    plan = RUN_SETTINGS["default"]
    label = args.path + ("-compile" if args.compile else "")
    root = Path(args.out_root)
    out = root / f"e2e-{label}"
    before = machine(peaks=False)
    print(machine_line(before), flush=True)
    train_set, val_set, test_set = (pl.data.load("synthfer", split=s, root=args.data_root) for s in ("train", "val", "test"))
    if args.limit:
        train_set, val_set, test_set = (Subset(d, args.limit) for d in (train_set, val_set, test_set))
    torch.manual_seed(0)
    model = pl.build_model(args.model, num_classes=len(train_set.classes))
    ensure_pretrained_backbones(args.model, progress=False)    # the shipped nano ones when none are cached
    loaded = load_pretrained_backbones(model)
    root.mkdir(parents=True, exist_ok=True)
    epochs_file = root / f"train_e2e_{label}.epochs.json"
    epochs_file.unlink(missing_ok=True)
    stop = threading.Event()
    started = time.perf_counter()
    threading.Thread(target=watch_epochs, args=(out, started, epochs_file, stop), daemon=True).start()
    patience = plan["patience"] if args.patience is None else (args.patience or None)
    history = pl.train(model, train_set, val_set, epochs=args.epochs or plan["epochs"], batch_size=plan["batch_size"],
                       patience=patience,
                       out_dir=out, test_set=test_set, lr=default_lr(args.model), sam=plan["sam"], overwrite=True,
                       fast=args.path == "fast", compile=args.compile)
    wall = time.perf_counter() - started
    stop.set()
    after = machine(peaks=False)
    result = {"path": label, "wall_s": wall, "test": history.attrs["test"], "val": history.attrs["val"],
              "best_epoch": history.attrs["best_epoch"], "train_s": history.attrs["seconds"],
              "epochs_trained": len(history), "stopped_by": history.attrs.get("stopped_by"), "patience": patience,
              "history": history.to_dict(orient="records"), "backbones": [str(p) for p in loaded],
              "machine_before": before, "machine_after": after, "threads": torch.get_num_threads(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    dest = root / f"train_e2e_{label}.json"
    atomic_write(dest, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1, default=str)))
    print(f"{label}: {wall / 60:.1f} min end to end, test accuracy {100 * history.attrs['test']['accuracy']:.2f}%; "
          f"saved {dest}; load after: {after['load_average']}")


if __name__ == "__main__":
    main()
