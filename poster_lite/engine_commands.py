"""CLI: `poster-lite train | evaluate | predict | pretrain-backbones`.

    poster-lite train --model poster-nano --data synthfer --epochs 10 --batch-size 32 --out runs/nano
    poster-lite evaluate --checkpoint runs/nano/best --data synthfer --split test
    poster-lite predict photo.jpg --checkpoint runs/nano/best
    poster-lite pretrain-backbones --model poster-nano

Multi-GPU: python -m torch.distributed.run --nproc_per_node 2 -m poster_lite.cli train ...
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import UserError

from .engine import NANO_LR, PAPER_LR


def default_lr(model_name: str) -> float:
    return NANO_LR if model_name.endswith("nano") else PAPER_LR


class Subset:
    """The first `n` samples of `dataset` in a seeded order that takes the classes in
    turn, so even a few dozen images contain every class."""

    def __init__(self, dataset, n: int, seed: int = 0):
        targets = np.asarray(dataset.targets)
        rng = np.random.default_rng(seed)
        per_class = [list(rng.permutation(np.flatnonzero(targets == c))) for c in np.unique(targets)]
        order = [queue.pop(0) for depth in range(max(map(len, per_class))) for queue in per_class if queue]
        self.dataset, self.indices = dataset, [int(i) for i in order[:n]]
        self.classes = dataset.classes
        self.targets = [int(targets[i]) for i in self.indices]
        identities, landmarks = getattr(dataset, "identities", None), getattr(dataset, "landmarks", None)
        self.identities = None if identities is None else [identities[i] for i in self.indices]
        self.landmarks = None if landmarks is None else np.asarray(landmarks)[self.indices]
        self.root = getattr(dataset, "root", None)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]


def open_data(spec: str, split: str, num_classes: int = 7, limit: int | None = None, seed: int = 0):
    """A split of a data set given by name (synthfer, raf-db, ...) or by its folder."""
    from .data import DATASETS, load
    from .data.check import detect_layout

    if spec.lower() in DATASETS:
        name, root = spec.lower(), None
    elif Path(spec).exists():
        layout = detect_layout(spec)
        name, root = (f"affectnet-{num_classes}" if layout == "affectnet" else layout), spec
    else:
        raise UserError(f"--data {spec!r} is neither a known data set ({', '.join(DATASETS)}) nor an existing folder")
    dataset = load(name, split=split, root=root)
    return Subset(dataset, limit, seed) if limit else dataset


# ---- train ----------------------------------------------------------------------------
def _train(args) -> int:
    from . import distributed
    from .engine import TrainingDiverged, train
    from .models.poster import build_model
    from .pretrain import backbone_folders, load_pretrained_backbones
    import torch

    if args.model.lower() not in _presets():
        raise UserError(f"unknown model {args.model!r}; known presets: {', '.join(_presets())}")
    limit, few = args.limit, args.limit and max(args.limit // 2, 1)
    # Under torchrun, rank 0 opens the data first: SynthFER may have to be generated,
    # and two processes must not write the same folder.
    rank = distributed.setup()[0]
    for turn in ("first", "then"):
        if (rank == 0) == (turn == "first"):
            train_set = open_data(args.data, "train", limit=limit, seed=args.seed)
            val_set = open_data(args.data, "val", limit=few, seed=args.seed)
            test_set = open_data(args.data, "test", limit=few, seed=args.seed)
        distributed.barrier()
    torch.manual_seed(args.seed)
    model = build_model(args.model, num_classes=len(train_set.classes))
    say = print if distributed.is_main() else (lambda *a, **k: None)
    if args.backbones != "none":
        loaded = load_pretrained_backbones(model, None if args.backbones == "auto" else args.backbones)
        if loaded:
            say("pretrained backbones: " + ", ".join(loaded))
        elif args.backbones != "auto":
            raise UserError(f"no backbone files in {args.backbones} (expected ir50.pth and/or "
                            "mobilefacenet_model_best.pth.tar)")
        else:
            say(f"no pretrained backbones in {backbone_folders(model.config)[0]}: training from scratch "
                f"(run `poster-lite pretrain-backbones --model {args.model}` to make them)")
    out = Path(args.out or f"runs/{args.model}-{Path(args.data).name}")
    recipe = dict(lr=args.lr or default_lr(args.model), optimizer=args.optimizer, sam=not args.no_sam,
                  rho=args.rho, schedule=args.schedule, gamma=args.gamma, smoothing=args.smoothing,
                  smoothing_weight=args.smoothing_weight, selection=args.selection, seed=args.seed,
                  num_workers=args.workers)
    try:
        history = train(model, train_set, val_set, epochs=args.epochs, batch_size=args.batch_size, out_dir=out,
                        precision=args.precision, device=args.device, test_set=test_set, resume=args.resume,
                        progress=not args.quiet, tensorboard=args.tensorboard, **recipe)
    except TrainingDiverged as e:
        print(f"poster-lite train: {e}")
        return 1
    finally:
        distributed.cleanup()
    attrs = history.attrs
    val, test = attrs["val"] or {}, attrs["test"] or {}
    say(f"best epoch {attrs['best_epoch']} of {args.epochs} (chosen on {attrs['selection']}); "
        f"checkpoints in {out}/best and {out}/last")
    if val:
        say(f"final val accuracy: {val['accuracy']:.2%} (mean class accuracy {val['mean_class_accuracy']:.2%})")
    if test:
        note = " (chosen on the test set: optimistic)" if attrs["selection"] == "test" else ""
        say(f"final test accuracy: {test['accuracy']:.2%} (mean class accuracy {test['mean_class_accuracy']:.2%})"
            + note)
    return 0


def _presets():
    from .config import PRESETS
    return PRESETS


# ---- evaluate ----------------------------------------------------------------------------
def format_confusion(confusion, classes) -> str:
    width = max(7, *(len(c) for c in classes))
    lines = [" " * width + " " + " ".join(f"{c[:width]:>{width}}" for c in classes) + "   <- predicted"]
    for name, row in zip(classes, confusion):
        lines.append(f"{name:>{width}} " + " ".join(f"{int(v):>{width}}" for v in row))
    return "\n".join(lines)


def _evaluate(args) -> int:
    from .checkpoint import load_checkpoint
    from .evaluation import evaluate

    model = load_checkpoint(args.checkpoint, device=args.device)
    dataset = open_data(args.data, args.split, num_classes=model.config.num_classes, limit=args.limit)
    if list(dataset.classes) != list(model.meta["classes"]):
        raise UserError(f"{args.checkpoint} predicts {model.meta['classes']} but {args.data} ({args.split}) "
                        f"is labelled {list(dataset.classes)}")
    m = evaluate(model, dataset, batch_size=args.batch_size, progress=not args.json)
    if args.json:
        print(json.dumps({
            "checkpoint": str(args.checkpoint), "data": args.data, "split": args.split, "images": len(dataset),
            "accuracy": m["accuracy"], "mean_class_accuracy": m["mean_class_accuracy"], "macro_f1": m["macro_f1"],
            "per_class_accuracy": dict(zip(m["classes"], [None if np.isnan(v) else v
                                                          for v in m["per_class_accuracy"]])),
            "classes": m["classes"], "confusion": m["confusion"].tolist()}, indent=2))
        return 0
    print(f"{args.checkpoint} on {args.data} {args.split} ({len(dataset)} images)")
    print(f"accuracy            {m['accuracy']:.2%}")
    print(f"mean class accuracy {m['mean_class_accuracy']:.2%}")
    print(f"macro F1            {m['macro_f1']:.2%}")
    print("confusion matrix (rows: true class):")
    print(format_confusion(m["confusion"], m["classes"]))
    return 0


# ---- predict -------------------------------------------------------------------------------
def _predict(args) -> int:
    from .predict import predict

    results = predict(args.images, checkpoint=args.checkpoint, detect_faces=not args.no_detect,
                      margin=args.margin, device=args.device)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for result in results:
        if not result["faces"]:
            print(f"{result['source']}  -  {result['message']}")
        for face in result["faces"]:
            box = ",".join(str(v) for v in face["box"])
            print(f"{result['source']}  {box}  {face['label']}  {face['probability']:.3f}")
    return 0


# ---- pretrain-backbones ------------------------------------------------------------------
def _pretrain(args) -> int:
    from .pretrain import pretrain_backbones

    if args.model.lower() not in _presets():
        raise UserError(f"unknown model {args.model!r}; known presets: {', '.join(_presets())}")
    data = None if args.data == "synthfer" else args.data
    reports = pretrain_backbones(args.model, which=args.which, epochs=args.epochs, batch_size=args.batch_size,
                                 lr=args.lr, out_dir=args.out, limit=args.limit, device=args.device,
                                 progress=not args.quiet, data=data)
    if "image_backbone" in reports:
        r = reports["image_backbone"]
        print(f"image backbone: identity accuracy {r['identity_accuracy']:.1%} on {r['held_out_images']} held-out "
              f"images of {r['identities']} people (chance {r['chance']:.1%}) -> {r['file']}")
    if "landmark_backbone" in reports:
        r = reports["landmark_backbone"]
        print(f"landmark backbone: NME {r['nme']:.3f} on {r['val_images']} validation images -> {r['file']}")
    return 0


# ---- parsers ---------------------------------------------------------------------------------
def register(sub) -> None:
    p = sub.add_parser("train", help="train a POSTER model (the paper's recipe by default)")
    p.add_argument("--model", default="poster-nano", help="preset (default poster-nano)")
    p.add_argument("--data", default="synthfer", help="data set name or folder (default synthfer)")
    p.add_argument("--epochs", type=int, default=10, help="default 10")
    p.add_argument("--batch-size", type=int, default=32, help="global batch size (default 32)")
    p.add_argument("--out", default=None, help="run folder for last, best, history.csv (default runs/MODEL-DATA)")
    p.add_argument("--lr", type=float, default=None,
                   help=f"learning rate (default {PAPER_LR:g} as the paper; {NANO_LR:g} for the nano presets)")
    p.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), default="adam")
    p.add_argument("--no-sam", action="store_true", help="plain optimiser steps instead of SAM")
    p.add_argument("--rho", type=float, default=0.05, help="SAM neighbourhood radius (default 0.05)")
    p.add_argument("--schedule", choices=("exponential", "cosine", "constant"), default="exponential")
    p.add_argument("--gamma", type=float, default=0.98, help="exponential decay per epoch (default 0.98)")
    p.add_argument("--smoothing", type=float, default=0.2, help="label smoothing of the LSCE term (default 0.2)")
    p.add_argument("--smoothing-weight", type=float, default=2.0,
                   help="loss = CE + W x LSCE (default 2; 0 = plain cross-entropy)")
    p.add_argument("--selection", choices=("val", "test"), default="val",
                   help="choose the best epoch on val (default) or on test (the release's protocol: optimistic)")
    p.add_argument("--backbones", default="auto",
                   help="pretrained backbones: auto (the cache under data/cache/backbones, if present), "
                        "none (from scratch) or a folder with ir50.pth / mobilefacenet_model_best.pth.tar")
    p.add_argument("--limit", type=int, default=None,
                   help="use at most N training images (N/2 for val and test), every class included")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps (default: the best available)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="data loading processes (default 0)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last")
    p.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="accuracy, mean class accuracy, macro F1 and confusion matrix of a checkpoint")
    p.add_argument("--checkpoint", required=True, help="e.g. runs/nano/best, or the authors' released file")
    p.add_argument("--data", default="synthfer", help="data set name or folder (default synthfer)")
    p.add_argument("--split", default="test", help="train, val or test (default test)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, default=None, help="evaluate on at most N images")
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("predict", help="the expression of every face in some photos")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--no-detect", action="store_true", help="classify each whole image as one face")
    p.add_argument("--margin", type=float, default=0.15, help="widen each face box by this share per side")
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_predict)

    p = sub.add_parser("pretrain-backbones",
                       help="pretrain the IR-50 (identities) and MobileFaceNet (landmarks) on SynthFER")
    p.add_argument("--model", default="poster-nano", help="preset whose backbones to pretrain (default poster-nano)")
    p.add_argument("--which", choices=("both", "image", "landmark"), default="both")
    p.add_argument("--data", default="synthfer", help="synthfer (the built-in set) or another SynthFER folder")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--out", default=None, help="folder (default data/cache/backbones/MODEL)")
    p.add_argument("--limit", type=int, default=None, help="use at most N training images")
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_pretrain)
