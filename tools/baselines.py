"""Plain baselines on SynthFER, as rows beside POSTER: `make baselines`.

    python tools/baselines.py                          # every baseline, seeds 0 1 2 (resumes)
    python tools/baselines.py --models mlp-true-landmarks --seeds 0 1 2
    python tools/baselines.py --data-root /tmp/tiny --out /tmp/b.json --max-epochs 2   # a quick try

The models are SynthFER's calibration models (benchmarks/synthfer_bench.py, data/README):
  cnn                       the 6-layer CNN from scratch (0.14M parameters) on the images;
  mlp-true-landmarks        the MLP on the true 68 landmarks, normalised for pose;
  mlp-predicted-landmarks   the same MLP on the 68 landmarks that the frozen, pretrained nano
                            MobileFaceNet (the one shipped with poster-nano) predicts.
Each trains under the evidence tables' budget rule (poster_lite/evidence.py): early stopping
after PATIENCE epochs without a better validation accuracy, within a cap of epochs
(--max-epochs, per model by default), the best validation epoch tested once. Differences to
the calibration run, which trained a fixed number of epochs: the CNN's one-cycle schedule
needs the number of epochs in advance, so a constant start and an exponential decay per epoch
replace it (CNN_DECAY says why 1e-3); seeds vary the initial weights and the data order.

Resumable: every (model, seed) is written to the JSON as it finishes
(poster_lite/shipped/baselines_nano.json, atomically), and a rerun skips those already there
with the same settings. --redo trains them again.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks import synthfer_bench as calibration  # noqa: E402  (the calibration's models and features)
from poster_lite.evidence import PATIENCE, pack_correct, seed_summary  # noqa: E402
from tools.ablations import git_commit, machine, write_json_atomically  # noqa: E402

RESULTS = REPO / "poster_lite" / "shipped" / "baselines_nano.json"

# name: (what it is, epoch cap, batch size, learning rate). The caps leave room: an early-stopped
# run ends well before them; one that reaches its cap is recorded as not converged.
MODELS = {
    "cnn": ("small CNN from scratch on the images (calibration model, 0.14M parameters)", 30, 64, 1e-3),
    "mlp-true-landmarks": ("MLP on the true 68 landmarks, normalised for pose", 150, 128, 1e-3),
    "mlp-predicted-landmarks": ("MLP on the 68 landmarks predicted by the frozen pretrained nano "
                                "MobileFaceNet (shipped with poster-nano), normalised for pose", 150, 128, 1e-3),
}
# The calibration's one-cycle schedule peaks at 3e-3 after a warm-up from 1.2e-4 over 12 known
# epochs. Early stopping does not know the run's length, so the CNN starts at 1e-3 and decays by
# CNN_DECAY after every epoch. (3e-3 from the first step, measured: still at chance after 10
# epochs, 14.9 % test, stopped by patience; 1e-3 leaves chance within 2 epochs on 1,500 faces.)
CNN_DECAY = 0.9


class Pairs(torch.utils.data.Dataset):
    """(input, label) from tensors; `prepare` makes a float input of a stored row, `flip` mirrors
    half of the training images (the calibration's only augmentation)."""

    def __init__(self, inputs: torch.Tensor, labels, prepare=None, flip: bool = False, classes=None):
        self.inputs, self.labels = inputs, torch.as_tensor(np.asarray(labels), dtype=torch.long)
        self.prepare, self.flip = prepare or (lambda x: x), flip
        self.classes = classes

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        x = self.prepare(self.inputs[i])
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, self.labels[i]


def landmark_mlp() -> nn.Module:
    """The calibration's landmark MLP (benchmarks/synthfer_bench.py, landmark_mlp): 136 -> 256 -> 256 -> 7."""
    return nn.Sequential(nn.Linear(136, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 256), nn.ReLU(),
                         nn.Dropout(0.2), nn.Linear(256, 7))


def load_splits(root=None) -> dict:
    """{"train", "val", "test"}: (images N x S x S x 3 uint8, labels, true landmarks) and the classes."""
    from poster_lite.data import load

    splits = {}
    for split in ("train", "val", "test"):
        ds = load("synthfer", split=split, root=root, progress=False)
        splits[split] = calibration.as_arrays(ds)
        splits["classes"] = list(ds.classes)
    return splits


@torch.no_grad()
def predicted_landmarks(images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """68 landmarks (pixels) per image from the shipped, pretrained nano MobileFaceNet."""
    from PIL import Image

    from poster_lite import build_model
    from poster_lite.data.transforms import eval_transform
    from poster_lite.errors import UserError
    from poster_lite.pretrain import LANDMARK_FILE, load_pretrained_backbones
    from poster_lite.shipped import install_shipped_backbones

    model = build_model("poster-nano")
    install_shipped_backbones(model.config)
    if not any(Path(f).name == LANDMARK_FILE for f in load_pretrained_backbones(model)):
        raise UserError("no pretrained nano landmark backbone found: `poster-lite pretrain-backbones poster-nano`")
    net = model.landmark_backbone.eval()
    side = images.shape[1]
    prepare = eval_transform(size=model.config.input_size)
    out = []
    for start in range(0, len(images), batch_size):
        batch = torch.stack([prepare(Image.fromarray(im)) for im in images[start:start + batch_size]])
        out.append(net.landmarks(net(batch)).float().view(-1, 68, 2))       # B x 136 -> B x 68 x 2, image units
    return (torch.cat(out) * side).numpy()


def datasets_for(name: str, splits: dict, landmarks: dict) -> dict:
    """Train/val/test Pairs of one model's inputs."""
    classes = splits["classes"]
    if name == "cnn":
        as_chw = {s: torch.from_numpy(splits[s][0]).permute(0, 3, 1, 2).contiguous() for s in ("train", "val", "test")}
        # the calibration's normalisation: per-channel mean and std of the training images
        mean = as_chw["train"].float().mean((0, 2, 3)).view(3, 1, 1) / 255
        std = as_chw["train"].float().std((0, 2, 3)).view(3, 1, 1) / 255
        prepare = lambda x: (x.float() / 255 - mean) / std                    # noqa: E731
        return {s: Pairs(as_chw[s], splits[s][1], prepare, flip=(s == "train"), classes=classes)
                for s in ("train", "val", "test")}
    features = {s: calibration.normalised_landmarks(landmarks[s]) for s in ("train", "val", "test")}
    mean, std = features["train"].mean(0), features["train"].std(0) + 1e-6
    return {s: Pairs((features[s] - mean) / std, splits[s][1], classes=classes) for s in ("train", "val", "test")}


def train_one(name: str, data: dict, seed: int, max_epochs: int, patience: int, precision: str,
              progress: bool = False) -> dict:
    """Train one baseline with early stopping; its best validation epoch tested once."""
    from poster_lite.evaluation import evaluate
    from poster_lite.training.loop import fit

    _, _, batch_size, lr = MODELS[name]
    torch.manual_seed(seed)
    model = calibration.SmallCNN(len(data["train"].classes)) if name == "cnn" else landmark_mlp()
    if name == "cnn":
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
        schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, CNN_DECAY)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)      # constant, as calibrated
    loader = torch.utils.data.DataLoader(data["train"], batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    started = time.perf_counter()
    history = fit(model, loader, optimizer, schedule, nn.CrossEntropyLoss(), epochs=max_epochs,
                  evaluated={"val": data["val"]}, precision=precision, eval_batch_size=256, patience=patience,
                  progress=progress)
    wall = time.perf_counter() - started
    model.load_state_dict(history.best_state)
    test = evaluate(model, data["test"], batch_size=256, precision=precision)
    best = next(r for r in history.rows if r["epoch"] == history.best_epoch)
    return {"seed": seed, "test_accuracy": float(test["accuracy"]),
            "test_mean_class_accuracy": float(test["mean_class_accuracy"]),
            "val_accuracy": best["val_acc"], "train_accuracy": best["train_acc"], "best_epoch": history.best_epoch,
            "epochs": history.epochs_done, "max_epochs": max_epochs, "patience": patience,
            "stopped_by": history.stopped_by, "wall_s": round(wall, 1),
            "params": sum(p.numel() for p in model.parameters()),
            "test_correct": pack_correct(test["predictions"] == test["targets"]),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "history": [{k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()} for r in history.rows]}


def summarise(entry: dict) -> dict:
    runs = sorted(entry["runs"], key=lambda r: r["seed"])
    summary = seed_summary([r["test_accuracy"] for r in runs])
    return {"seeds": [r["seed"] for r in runs], "test_accuracy_mean": summary["mean"],
            "test_accuracy_spread": summary["spread"], "stopped_by": [r["stopped_by"] for r in runs],
            "epochs": [r["epochs"] for r in runs], "best_epochs": [r["best_epoch"] for r in runs]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-epochs", type=int, default=None, help="epoch cap (default: each model's own)")
    parser.add_argument("--patience", type=int, default=PATIENCE)
    parser.add_argument("--precision", default="fp32", help="fp32 (default) or bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root", default=None, help="a SynthFER folder (default: the one load('synthfer') uses)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--redo", action="store_true", help="train (model, seed) pairs the file already has again")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    payload = json.loads(args.out.read_text()) if args.out.exists() else {}
    if payload and payload.get("what", "").split(":")[0] != "SynthFER baselines":
        parser.error(f"{args.out} is not a baselines file; pass another --out")
    payload.update({"what": "SynthFER baselines: the calibration models of data/README trained with early stopping",
                    "regenerate": "make baselines (python tools/baselines.py; resumes per model and seed)",
                    "data": "synthfer" if args.data_root is None else str(args.data_root),
                    "rule": f"early stopping on validation accuracy, patience {args.patience}; epoch cap per model; "
                            "best validation epoch tested once",
                    "machine": machine(), "git_commit": git_commit()})
    payload.setdefault("models", {})
    todo = []
    for name in args.models:
        cap = args.max_epochs or MODELS[name][1]
        settings = {"max_epochs": cap, "patience": args.patience, "batch_size": MODELS[name][2], "lr": MODELS[name][3],
                    "precision": args.precision, "data": payload["data"]}
        entry = payload["models"].get(name)
        if entry is None or entry.get("settings") != settings:
            if entry is not None and entry.get("runs"):
                print(f"{name}: settings changed ({entry.get('settings')} -> {settings}); its runs start over")
            entry = payload["models"][name] = {"what": MODELS[name][0], "settings": settings, "runs": []}
        entry["command"] = f"python tools/baselines.py --models {name} --seeds SEED" + \
            (f" --max-epochs {cap}" if args.max_epochs else "") + (f" --patience {args.patience}" if args.patience != PATIENCE else "")
        done = {r["seed"] for r in entry["runs"]}
        todo += [(name, seed) for seed in args.seeds if args.redo or seed not in done]
    if not todo:
        print("every requested (model, seed) is in", args.out)
        return 0

    started = time.perf_counter()
    splits = load_splits(args.data_root)
    landmarks = {s: splits[s][2] for s in ("train", "val", "test")}
    print(f"data loaded in {time.perf_counter() - started:.0f} s", flush=True)
    predicted = None
    for name, seed in todo:
        entry = payload["models"][name]
        if name == "mlp-predicted-landmarks" and predicted is None:
            from poster_lite.data.face_geometry import normalised_mean_error
            t = time.perf_counter()
            predicted = {s: predicted_landmarks(splits[s][0]) for s in ("train", "val", "test")}
            nme = float(normalised_mean_error(torch.from_numpy(predicted["test"]),
                                              torch.from_numpy(landmarks["test"].astype(np.float32))).mean())
            entry["landmark_nme_test"] = round(nme, 4)
            print(f"predicted landmarks in {time.perf_counter() - t:.0f} s; test NME {nme:.3f}", flush=True)
        data = datasets_for(name, splits, predicted if name == "mlp-predicted-landmarks" else landmarks)
        print(f"{name} seed {seed} ...", flush=True)
        result = train_one(name, data, seed, entry["settings"]["max_epochs"], args.patience, args.precision)
        entry["runs"] = [r for r in entry["runs"] if r["seed"] != seed] + [result]
        entry["summary"] = summarise(entry)
        entry["params"] = result["params"]
        payload["updated"] = result["date"]
        write_json_atomically(args.out, payload)
        print(f"  test {result['test_accuracy']:.1%} (best epoch {result['best_epoch']} of {result['epochs']}, "
              f"stopped by {result['stopped_by']}), {result['wall_s']:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
