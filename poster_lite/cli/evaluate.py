"""`poster-lite evaluate`: accuracy, mean class accuracy, macro F1 and the confusion matrix of a checkpoint.

    poster-lite evaluate --checkpoint runs/nano/best --data synthfer --split test
"""
from __future__ import annotations

import json

from ..errors import UserError
from .options import add_device, number


def add_parsers(sub, parents) -> None:
    p = sub.add_parser("evaluate", parents=parents,
                       help="accuracy, mean class accuracy, macro F1 and confusion matrix of a checkpoint")
    p.add_argument("--checkpoint", required=True, help="e.g. runs/nano/best, or the authors' released file")
    p.add_argument("--data", default="synthfer", help="data set name or folder (default synthfer)")
    p.add_argument("--split", choices=("train", "val", "test"), default="test", help="default test")
    p.add_argument("--batch-size", type=number(integer=True, low=1), default=64, help="default 64")
    p.add_argument("--limit", type=number(integer=True, low=1), default=None, help="evaluate on at most N images")
    add_device(p, "the CPU")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from ..checkpoint import load_checkpoint
    from ..data.subset import open_data
    from ..evaluation import evaluate

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


def format_confusion(confusion, classes) -> str:
    width = max(7, *(len(c) for c in classes))
    lines = [" " * width + " " + " ".join(f"{c[:width]:>{width}}" for c in classes) + "   <- predicted"]
    for name, row in zip(classes, confusion):
        lines.append(f"{name:>{width}} " + " ".join(f"{int(v):>{width}}" for v in row))
    return "\n".join(lines)
