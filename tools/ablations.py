"""The supplement's ablations at nano scale on SynthFER: `make ablations`.

    python tools/ablations.py --rows image-only-nano poster-nano-d4 --seeds 0 1 2   # Table 4, 3 seeds
    python tools/ablations.py                          # every row, seeds 0 1 2 (resumes where it stopped)
    python tools/ablations.py --protocol paper --rows image-only-nano poster-nano-d4 --seeds 0
    python tools/ablations.py --budget-minutes 30      # start no new (row, seed) after 30 minutes

Two protocols, each in its own results file (package data, poster_lite/shipped/):
  frozen-features (ablations_nano_frozen.json): the teaching variant. Both pretrained nano
    backbones are frozen and their features cached once (about 2 minutes); each row trains the
    part it changes (image projection, pyramid fusion, SE gate, head) on them, SAM off.
  paper (ablations_nano_paper.json): the paper's protocol. Each row trains its whole model on
    the images, the pretrained landmark backbone frozen and the pretrained image backbone
    fine-tuned, with the shared nano models' recipe (SAM on). Measured 2026-11-30 on this 2-core
    CPU (load 4, other jobs running): pl.train's estimate after its first steps, 23.1 s per step
    x 78 steps = 30 min an epoch for poster-nano-d4, 15 h per (row, seed) at the 30-epoch cap.
    A 3-seed grid is a GPU job.
Both: early stopping on validation accuracy (--patience, within --max-epochs; stopped_by says
which ended each run), the best validation epoch tested once on the 1,500 test faces, and the
precision recorded (auto: bf16 where the CPU has it).
Rows (all poster-nano at depth 4 unless the row changes it):
  Table 4   image-only-nano (4 blocks) vs poster-nano (4 blocks)
  Table 2   swap_depth 0, 1, 2 (4 = every block swaps = the base row)
  Figure 1  depth 1, 2, 6 (4 = the base row)
  Table 1   pyramid_dims (128,), (128, 64), (128, 64, 32, 16) ((128, 64, 32) = the base row)

Resumable one (row, seed) at a time: each is merged into the results file (atomically) as it
finishes, and a rerun with the same settings skips the pairs the file has. A run killed at any
moment loses only the pair it was training. The file also holds, per row, the seeds done, mean,
spread and stopped_by, the paired difference to the full model (poster-nano-d4) with a 95 %
interval over seeds and test faces and its verdict (poster_lite/evidence.py), the measured time
per (row, seed) and what is missing from the full grid (every row x --target-seeds).
Other settings than the file's are refused (--fresh starts the file over). Seeds can run at the same
time in separate processes (or machines), each with its own --out, and be joined afterwards with
--merge FILE ... (same settings required; a (row, seed) in two files must be the same run).
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

from poster_lite.ablation import BASE_DEPTH, ROW_IDS, ROWS, find_row
from poster_lite.evidence import PATIENCE, paired_difference, seed_summary, unpack_correct, verdict

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "poster_lite" / "shipped"          # package data: 07 reads the files on Colab too
RESULTS = {"frozen-features": SHIPPED / "ablations_nano_frozen.json", "paper": SHIPPED / "ablations_nano_paper.json"}
BASE_ROW = "poster-nano-d4"
MAX_EPOCHS = {"frozen-features": 40, "paper": 30}

PROTOCOL_NOTES = {
    "frozen-features": (
        "Frozen-feature protocol (a teaching variant, not the paper's): both nano backbones were pretrained on "
        "SynthFER (identity for IR-50, 68 landmarks for MobileFaceNet) and frozen; their feature maps were computed "
        "once (training faces in four augmented views) and each row trained only what it changes: image projection, "
        "pyramid fusion, SE gate and head, with the recipe's loss (CE + LSCE), Adam and exponential schedule, SAM "
        "off, until its validation accuracy stopped improving (early stopping), its best validation epoch tested "
        "once. The paper fine-tunes IR-50 in every row: a trend that needs adapted image features cannot show here."),
    "paper": (
        "Paper protocol: each row trained its whole nano model on SynthFER's images, starting from the pretrained "
        "nano backbones, the landmark backbone (MobileFaceNet) frozen and the image backbone (IR-50) fine-tuned, "
        "with the shared nano models' recipe (CE + LSCE, Adam with SAM, exponential schedule) until its validation "
        "accuracy stopped improving (early stopping), its best validation epoch tested once."),
}


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


def plain(overrides: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}


def changed_settings(a: dict, b: dict) -> list:
    """The names of the settings two results files disagree on."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def summarise(payload: dict) -> None:
    """Per row: seeds, mean, spread, stopped_by; paired differences to the base row; what is missing."""
    runs, n_test = payload["runs"], payload["settings"]["n_test"]
    by_row = {}
    for run in runs:
        by_row.setdefault(run["row"], {})[run["seed"]] = run
    rows = {}
    for row_id in ROW_IDS:
        seeds = by_row.get(row_id, {})
        if not seeds:
            continue
        ordered = [seeds[s] for s in sorted(seeds)]
        stats = seed_summary([r["test_accuracy"] for r in ordered])
        rows[row_id] = {"seeds": sorted(seeds), "test_accuracy_mean": stats["mean"],
                        "test_accuracy_spread": stats["spread"], "stopped_by": [r["stopped_by"] for r in ordered],
                        "epochs_trained": [r["epochs_trained"] for r in ordered],
                        "best_epochs": [r["best_epoch"] for r in ordered]}
    payload["rows"] = rows
    differences = {}
    base = by_row.get(BASE_ROW, {})
    for row_id in ROW_IDS:
        if row_id == BASE_ROW or row_id not in by_row:
            continue
        shared = sorted(set(by_row[row_id]) & set(base))
        if not shared:
            continue
        d = paired_difference([unpack_correct(base[s]["test_correct"], n_test) for s in shared],
                              [unpack_correct(by_row[row_id][s]["test_correct"], n_test) for s in shared])
        stopped = [by_row[row_id][s]["stopped_by"] for s in shared] + [base[s]["stopped_by"] for s in shared]
        said = verdict(d["points"], d["low"], d["high"], protocol=payload["protocol"], seeds=len(shared),
                       stopped_by=stopped)
        differences[row_id] = {"what": f"{BASE_ROW} minus {row_id}", "seeds": shared, "points": d["points"],
                               "low": d["low"], "high": d["high"], "per_seed_points": d["per_seed_points"],
                               "interval": "95 %, bootstrap over seeds and test faces (paired)",
                               "verdict": said["kind"], "sentence": said["sentence"]}
    payload["differences_vs_full_model"] = differences
    target = payload["target_seeds"]
    missing = [{"row": r, "seeds": [s for s in target if s not in by_row.get(r, {})]} for r in ROW_IDS]
    payload["missing"] = [m for m in missing if m["seeds"]]
    payload["complete"] = not payload["missing"]
    walls = [r["wall_s"] for r in runs]
    n_missing = sum(len(m["seeds"]) for m in payload["missing"])
    payload["time"] = {"row_seeds_done": len(runs), "total_wall_s": round(sum(walls), 1),
                       "mean_wall_s_per_row_seed": round(sum(walls) / len(walls), 1) if walls else None,
                       "row_seeds_missing": n_missing,
                       "missing_estimate_h": round(n_missing * sum(walls) / len(walls) / 3600, 2) if walls else None,
                       "how": "measured per (row, seed) on the machine above; the missing estimate extrapolates "
                              "the mean (rows differ: depth 6 costs more than depth 1)"}


def load_data(args, protocol: str):
    """What the rows train on: cached features (frozen-features) or the image splits (paper)."""
    from poster_lite import ablation, data

    if protocol == "frozen-features":
        if args.features:
            return ablation.load_features(args.features)
        return ablation.cached_features("poster-nano", train_views=args.train_views)
    return {split: data.load("synthfer", split=split, root=args.data_root) for split in ("train", "val", "test")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--protocol", choices=list(RESULTS), default="frozen-features")
    parser.add_argument("--max-epochs", type=int, default=None, help="epoch cap (default: 40 frozen, 30 paper)")
    parser.add_argument("--patience", type=int, default=PATIENCE, help="early stopping (epochs without a better one)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=None, help="default: the preset's")
    parser.add_argument("--sam", choices=["on", "off"], default=None, help="default: off (frozen), on (paper)")
    parser.add_argument("--train-views", type=int, default=4, help="augmented views of each training face (frozen)")
    parser.add_argument("--precision", default="auto", help="auto: bf16 where the CPU has it, else fp32")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target-seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="the seeds of the full grid (what the file reports as missing)")
    parser.add_argument("--rows", nargs="+", help=f"only these rows: {', '.join(ROW_IDS)}")
    parser.add_argument("--budget-minutes", type=float, default=0, help="start no new row after this (0: no limit)")
    parser.add_argument("--out", type=Path, default=None, help="default: the protocol's file in poster_lite/shipped/")
    parser.add_argument("--fresh", action="store_true", help="start the file over when its settings differ")
    parser.add_argument("--features", type=Path, default=None, help="a features file instead of the cache (tests)")
    parser.add_argument("--data-root", default=None, help="a SynthFER folder for the paper protocol (tests)")
    parser.add_argument("--merge", type=Path, nargs="+", default=None, metavar="FILE",
                        help="add the (row, seed) pairs of these results files (same protocol and settings, e.g. "
                             "other seeds run at the same time with --out) to the protocol's file, then stop")
    args = parser.parse_args(argv)
    if args.merge:
        return merge_files(args.out or RESULTS[args.protocol], args.merge, parser)

    from poster_lite.device import pick_device, resolve_precision
    from poster_lite.training.recipe import default_lr

    unknown = sorted(set(args.rows or []) - set(ROW_IDS))
    if unknown:
        parser.error(f"unknown row(s) {unknown}; known: {', '.join(ROW_IDS)}")
    protocol, out = args.protocol, args.out or RESULTS[args.protocol]
    rows = [r for r in ROWS if not args.rows or r[0] in args.rows]
    precision = resolve_precision(args.precision, pick_device(None))       # auto: bf16 where the CPU has it
    sam = (args.sam == "on") if args.sam else protocol == "paper"
    data = load_data(args, protocol)
    settings = {"protocol": protocol, "data": "synthfer" if args.data_root is None else str(args.data_root),
                "n_train": len(data["train"]), "n_val": len(data["val"]), "n_test": len(data["test"]),
                "max_epochs": args.max_epochs or MAX_EPOCHS[protocol], "patience": args.patience,
                "batch_size": args.batch_size, "lr": args.lr or default_lr("poster-nano"), "sam": sam,
                "precision": precision, "base": f"poster-nano, depth {BASE_DEPTH}",
                "selection": "best validation epoch, test evaluated once"}
    if protocol == "frozen-features":
        settings.update(train_views=args.train_views, backbones="pretrained nano backbones, frozen (features cached)",
                        trained="image projection, pyramid fusion, SE gate, head")
    else:
        settings.update(backbones="pretrained nano backbones: landmark frozen, image fine-tuned",
                        trained="everything but the landmark backbone")
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    payload = {"what": "POSTER ablations (supplement Tables 1, 2, 4 and Figure 1) at nano scale on SynthFER",
               "protocol": protocol, "protocol_note": PROTOCOL_NOTES[protocol],
               "regenerate": f"make ablations ABLATION_ARGS=\"--protocol {protocol}\" (resumes per row and seed)",
               "settings": settings, "date": now, "machine": machine(), "git_commit": git_commit(),
               "target_seeds": sorted(set(args.target_seeds) | set(args.seeds)), "runs": []}
    if out.exists():
        previous = json.loads(out.read_text())
        if previous.get("settings") != settings and not args.fresh:
            changed = changed_settings(settings, previous.get("settings", {}))
            parser.error(f"{out} was made with other settings ({', '.join(changed)}); pass the same ones to resume, "
                         "--fresh to start it over, or --out for another file")
        if previous.get("settings") == settings:
            payload["runs"] = previous["runs"]
            payload["date"] = previous.get("date", now)
            payload["target_seeds"] = sorted(set(payload["target_seeds"]) | set(previous.get("target_seeds", [])))
    done = {(r["row"], r["seed"]) for r in payload["runs"]}
    todo = [(row, seed) for seed in args.seeds for row in rows if (row[0], seed) not in done]
    print(f"{protocol}: {len(done)} (row, seed) pairs in {out}; {len(todo)} to train, {precision}, SAM {sam}",
          flush=True)
    signal.signal(signal.SIGTERM, stop_like_ctrl_c)      # `kill` at a deadline: what finished is in the file
    started = time.perf_counter()
    try:
        for (row_id, preset, overrides, stands_for), seed in todo:
            minutes = (time.perf_counter() - started) / 60
            if args.budget_minutes and minutes > args.budget_minutes:
                print(f"budget of {args.budget_minutes} min spent; {row_id} seed {seed} and later not started")
                break
            print(f"[{minutes:5.1f} min] {row_id} seed {seed}: {preset} {overrides}", flush=True)
            result = train_row(protocol, row_id, data, seed, settings)
            result.pop("model")
            payload["runs"].append({"row": row_id, "model": preset, "overrides": plain(overrides),
                                    "ablations": stands_for, "finished": datetime.datetime.now(
                                        datetime.timezone.utc).isoformat(timespec="seconds"), **result})
            print(f"    test acc {result['test_accuracy']:.3f}, best epoch {result['best_epoch']} of "
                  f"{result['epochs_trained']} (stopped by {result['stopped_by']}), {result['wall_s']:.0f} s",
                  flush=True)
            payload.update(updated=payload["runs"][-1]["finished"], git_commit=git_commit())
            summarise(payload)
            write_json_atomically(out, payload)
    except KeyboardInterrupt:
        print("stopped; every finished (row, seed) is in the file")
    summarise(payload)
    write_json_atomically(out, payload)
    t = payload["time"]
    print(f"wrote {out}: {t['row_seeds_done']} (row, seed) pairs, {t['row_seeds_missing']} missing of the full grid")
    return 0


def merge_files(out: Path, others: list, parser) -> int:
    """Merge the runs of `others` into `out` (made if absent): the same protocol and settings are
    required, a (row, seed) present in both must be the same run (same test answers), and `out`
    is rewritten atomically only when everything fits, so a refused merge changes nothing."""
    files = ([out] if out.exists() else []) + list(others)
    for path in files:
        if not Path(path).is_file():
            parser.error(f"no results file {path}")
    payloads = [json.loads(Path(path).read_text()) for path in files]
    merged = payloads[0]
    for path, payload in zip(files[1:], payloads[1:]):
        if payload.get("settings") != merged.get("settings"):
            changed = changed_settings(payload.get("settings", {}), merged.get("settings", {}))
            parser.error(f"{path} was made with other settings than {files[0]} ({', '.join(changed)}); "
                         "only grids of the same protocol and settings can be merged")
        have = {(r["row"], r["seed"]): r for r in merged["runs"]}
        added = 0
        for run in payload["runs"]:
            key = (run["row"], run["seed"])
            if key in have:
                if have[key]["test_correct"] != run["test_correct"]:
                    parser.error(f"{key[0]} seed {key[1]} is in both {files[0]} and {path} with different results; "
                                 "keep one of them")
                continue
            merged["runs"].append(run)
            added += 1
        merged["target_seeds"] = sorted(set(merged.get("target_seeds", [])) | set(payload.get("target_seeds", [])))
        merged.setdefault("merged_from", []).append({"file": Path(path).name, "machine": payload.get("machine"),
                                                     "git_commit": payload.get("git_commit"), "runs_added": added})
        print(f"{path}: {added} (row, seed) pair(s) added, {len(payload['runs']) - added} already in {files[0]}")
    order = {row_id: i for i, row_id in enumerate(ROW_IDS)}
    merged["runs"].sort(key=lambda r: (r["seed"], order.get(r["row"], len(order))))
    summarise(merged)
    write_json_atomically(out, merged)
    t = merged["time"]
    print(f"wrote {out}: {t['row_seeds_done']} (row, seed) pairs, {t['row_seeds_missing']} missing of the full grid")
    return 0


def train_row(protocol: str, row_id: str, data: dict, seed: int, settings: dict) -> dict:
    from poster_lite import ablation

    find_row(row_id)
    common = dict(seed=seed, epochs=settings["max_epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
                  sam=settings["sam"], precision=settings["precision"], patience=settings["patience"], progress=False)
    if protocol == "frozen-features":
        return ablation.run_row(row_id, data, **common)
    return ablation.run_row_end_to_end(row_id, data, **common)


if __name__ == "__main__":
    raise SystemExit(main())
