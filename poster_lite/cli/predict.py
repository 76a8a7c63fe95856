"""`poster-lite predict`: the expression of every face in some photos.

    poster-lite predict photo.jpg --checkpoint runs/nano/best
"""
from __future__ import annotations

import json

from .options import add_device, number


def add_parsers(sub, parents) -> None:
    p = sub.add_parser("predict", parents=parents, help="the expression of every face in some photos")
    p.add_argument("images", nargs="+", help="image files")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--no-detect", action="store_true", help="classify each whole image as one face")
    p.add_argument("--margin", type=number(low=0, high=1), default=0.15,
                   help="widen each face box by this share of its size per side (default 0.15)")
    add_device(p, "the CPU")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..predict import predict

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
