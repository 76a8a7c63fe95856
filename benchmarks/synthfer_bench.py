"""SynthFER: generation speed on one core, and how hard the default set is.

    .venv/bin/python benchmarks/synthfer_bench.py              # speed + calibration
    .venv/bin/python benchmarks/synthfer_bench.py --parts speed
    .venv/bin/python benchmarks/synthfer_bench.py --difficulty 1.2 --root /tmp/sf12   # try a setting

Speed: images per CPU-second of one process (drawing + JPEG encoding) at 112 px; CPU
time rather than wall time, so other jobs on a shared machine do not distort it much.

Calibration, on the set `load("synthfer")` uses (5,000 / 1,000 / 1,500, disjoint people):
  - linear: a softmax classifier on standardised raw pixels (the weight decay picked on val);
  - landmarks: a small MLP on the true 68 landmarks, normalised for position, size and
    roll (how much of the expression lives in geometry, given perfect landmarks);
  - cnn: a 6-layer CNN (0.14M parameters) trained from scratch for --epochs (12) on the
    CPU with flips, AdamW and a one-cycle schedule; test accuracy at the epoch best on val.
The figures are recorded in poster_lite/data/synthfer.py and data/README.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from poster_lite.data import load  # noqa: E402
from poster_lite.data import synthfer as sf  # noqa: E402


def generation_speed(n: int = 1000, size: int = 112) -> dict:
    cv2.setNumThreads(1)
    knobs = sf.Knobs(size=size)
    labels, people = sf.plan_split("train", n, max(1, n // 25))
    sf.render_sample("train", 0, int(labels[0]), int(people[0]), 0, knobs)    # warm caches
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        s = sf.render_sample("train", i, int(labels[i]), int(people[i]), 0, knobs)
        cv2.imencode(".jpg", s["image"][:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, knobs.jpeg_quality])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"images": n, "size": size, "images_per_cpu_second": round(n / cpu), "images_per_wall_second": round(n / wall)}


def as_arrays(ds):
    images = np.stack([np.asarray(ds[i][0]) for i in range(len(ds))])
    return images, np.asarray(ds.targets), ds.landmarks


def linear_probe(train, val, test) -> dict:
    (xtr, ytr, _), (xva, yva, _), (xte, yte, _) = train, val, test
    flat = lambda x: torch.tensor(x.reshape(len(x), -1), dtype=torch.float32) / 255
    xtr, xva, xte = flat(xtr), flat(xva), flat(xte)
    mean, std = xtr.mean(0), xtr.std(0) + 1e-3
    xtr, xva, xte = [(x - mean) / std for x in (xtr, xva, xte)]
    ytr_t = torch.tensor(ytr)
    best = None
    for decay in (1e-4, 1e-3, 1e-2):
        torch.manual_seed(0)
        layer = nn.Linear(xtr.shape[1], 7)
        opt = torch.optim.Adam(layer.parameters(), lr=3e-4, weight_decay=decay)
        for _ in range(12):
            for idx in torch.randperm(len(xtr)).split(128):
                opt.zero_grad()
                F.cross_entropy(layer(xtr[idx]), ytr_t[idx]).backward()
                opt.step()
        with torch.no_grad():
            val_acc = (layer(xva).argmax(1).numpy() == yva).mean()
            test_acc = (layer(xte).argmax(1).numpy() == yte).mean()
            train_acc = (layer(xtr).argmax(1).numpy() == ytr).mean()
        if best is None or val_acc > best["val"]:
            best = {"weight_decay": decay, "train": float(train_acc), "val": float(val_acc), "test": float(test_acc)}
    return best


def normalised_landmarks(lm: np.ndarray) -> torch.Tensor:
    # Remove position, size and roll: centre on the mean, scale by the eye distance,
    # rotate the eye line level.
    lm = lm.astype(np.float64)
    eyes_l, eyes_r = lm[:, 36:42].mean(1), lm[:, 42:48].mean(1)
    d = eyes_r - eyes_l
    angle = np.arctan2(d[:, 1], d[:, 0])
    c, s = np.cos(-angle), np.sin(-angle)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    centred = (lm - lm.mean(1, keepdims=True)) / np.linalg.norm(d, axis=1)[:, None, None]
    return torch.tensor(np.einsum("nij,nkj->nki", rot, centred).reshape(len(lm), -1), dtype=torch.float32)


def landmark_mlp(train, val, test, epochs: int = 40) -> dict:
    (_, ytr, ltr), (_, yva, lva), (_, yte, lte) = train, val, test
    xtr, xva, xte = normalised_landmarks(ltr), normalised_landmarks(lva), normalised_landmarks(lte)
    mean, std = xtr.mean(0), xtr.std(0) + 1e-6
    xtr, xva, xte = [(x - mean) / std for x in (xtr, xva, xte)]
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(136, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 256), nn.ReLU(),
                        nn.Dropout(0.2), nn.Linear(256, 7))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    ytr_t = torch.tensor(ytr)
    best = {"val": -1}
    for epoch in range(epochs):
        net.train()
        for idx in torch.randperm(len(xtr)).split(128):
            opt.zero_grad()
            F.cross_entropy(net(xtr[idx]), ytr_t[idx]).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            val_acc = float((net(xva).argmax(1).numpy() == yva).mean())
            if val_acc > best["val"]:
                best = {"epoch": epoch + 1, "val": val_acc, "test": float((net(xte).argmax(1).numpy() == yte).mean())}
    return best


class SmallCNN(nn.Sequential):
    """Six 3x3 convolutions (16 -> 128 channels, four stride-2), BatchNorm, ReLU, global pooling: 0.14M parameters."""

    def __init__(self, classes: int = 7):
        def conv(cin, cout, stride):
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        super().__init__(*conv(3, 16, 2), *conv(16, 32, 2), *conv(32, 32, 1), *conv(32, 64, 2), *conv(64, 64, 1),
                         *conv(64, 128, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
                         nn.Linear(128, classes))


def small_cnn(train, val, test, epochs: int = 12, minutes: float = 60.0, batch: int = 64) -> dict:
    to_t = lambda x: torch.tensor(x).permute(0, 3, 1, 2).contiguous()
    (xtr, ytr, _), (xva, yva, _), (xte, yte, _) = train, val, test
    xtr, xva, xte = to_t(xtr), to_t(xva), to_t(xte)
    mean = xtr.float().mean((0, 2, 3), keepdim=True) / 255
    std = xtr.float().std((0, 2, 3), keepdim=True) / 255
    prep = lambda x: (x.float() / 255 - mean) / std
    ytr_t = torch.tensor(ytr)
    torch.manual_seed(0)
    net = SmallCNN()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * -(-len(xtr) // batch))

    def accuracy(x, y):
        net.eval()
        with torch.no_grad():
            pred = torch.cat([net(prep(x[i:i + 256])).argmax(1) for i in range(0, len(x), 256)])
        return float((pred.numpy() == y).mean())

    started, history, epoch = time.perf_counter(), [], 0
    while epoch < epochs and time.perf_counter() - started < minutes * 60:
        net.train()
        correct = 0
        for idx in torch.randperm(len(xtr)).split(batch):
            x = prep(xtr[idx])
            flip = torch.rand(len(x)) < 0.5
            x[flip] = x[flip].flip(-1)
            opt.zero_grad()
            logits = net(x)
            F.cross_entropy(logits, ytr_t[idx]).backward()
            opt.step()
            schedule.step()
            correct += int((logits.argmax(1) == ytr_t[idx]).sum())
        epoch += 1
        history.append({"epoch": epoch, "train": correct / len(xtr), "val": accuracy(xva, yva),
                        "test": accuracy(xte, yte), "seconds": round(time.perf_counter() - started)})
        print(f"  cnn epoch {epoch}: {history[-1]}", flush=True)
    best = max(history, key=lambda h: h["val"])
    return {"epochs": epoch, "minutes": round((time.perf_counter() - started) / 60, 1), "best_epoch": best["epoch"], "train": best["train"],
            "val": best["val"], "test": best["test"], "last_test": history[-1]["test"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=12, help="training epochs of the small CNN")
    p.add_argument("--minutes", type=float, default=60.0, help="wall-clock cap on the small CNN's training")
    p.add_argument("--parts", default="speed,linear,landmarks,cnn", help="which measurements to run")
    p.add_argument("--root", default=None, help="set folder (default: the one load('synthfer') uses)")
    p.add_argument("--difficulty", type=float, default=None, help="try another difficulty (needs --root)")
    p.add_argument("--threads", type=int, default=2, help="torch threads for the calibration models")
    p.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    parts = set(args.parts.split(","))
    results = {}
    if "speed" in parts:
        results["speed"] = generation_speed()
        print("generation:", results["speed"], flush=True)
    if parts & {"linear", "landmarks", "cnn"}:
        torch.set_num_threads(args.threads)
        knobs = {} if args.difficulty is None else {"difficulty": args.difficulty}
        started = time.perf_counter()
        splits = [as_arrays(load("synthfer", split=s, root=args.root, progress=False, **knobs))
                  for s in ("train", "val", "test")]
        results["load_seconds"] = round(time.perf_counter() - started, 1)
    if "linear" in parts:
        results["linear"] = linear_probe(*splits)
        print("linear on pixels:", results["linear"], flush=True)
    if "landmarks" in parts:
        results["landmarks"] = landmark_mlp(*splits)
        print("MLP on true landmarks:", results["landmarks"], flush=True)
    if "cnn" in parts:
        results["cnn"] = small_cnn(*splits, epochs=args.epochs, minutes=args.minutes)
        print("small CNN:", results["cnn"], flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
