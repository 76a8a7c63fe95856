"""`poster-lite pretrain-backbones`: the IR-50 (identities) and MobileFaceNet (landmarks) on SynthFER.

    poster-lite pretrain-backbones --model poster-nano
"""
from __future__ import annotations

from .options import add_device, number, preset


def add_parsers(sub, parents) -> None:
    p = sub.add_parser("pretrain-backbones", parents=parents,
                       help="pretrain the IR-50 (identities) and MobileFaceNet (landmarks) on SynthFER")
    p.add_argument("--model", type=preset, default="poster-nano",
                   help="preset whose backbones to pretrain (default poster-nano)")
    p.add_argument("--which", choices=("both", "image", "landmark"), default="both")
    p.add_argument("--data", default="synthfer",
                   help="synthfer or synthfer-224 (built-in sets: 112 / 224 px; the backbones see 112 px either "
                        "way) or the folder of another SynthFER set")
    p.add_argument("--epochs", type=number(integer=True, low=1), default=4, help="default 4")
    p.add_argument("--batch-size", type=number(integer=True, low=1), default=64, help="default 64")
    p.add_argument("--lr", type=number(low=0, low_open=True), default=2e-3, help="default 0.002")
    p.add_argument("--out", default=None, help="folder (default data/cache/backbones/MODEL)")
    p.add_argument("--limit", type=number(integer=True, low=1), default=None, help="use at most N training images")
    add_device(p)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..data import SYNTHFER_SETS
    from ..errors import UserError
    from ..pretrain import pretrain_backbones

    if args.data not in SYNTHFER_SETS and not Path(args.data).is_dir():
        raise UserError(f"--data {args.data}: give synthfer or the folder of a SynthFER set "
                        f"(or synthfer-224, the 224 px set)")
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
