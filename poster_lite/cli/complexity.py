"""`poster-lite complexity`: parameters and FLOPs of a preset, or the paper's size table.

    poster-lite complexity --model poster-l
    poster-lite complexity --model poster-nano --input-size 224
"""
from __future__ import annotations

import json

from .options import number, preset

# Both backbones resize every input to their own 112 px at once, so a larger input changes
# neither the parameters nor the FLOPs; past this it would only cost memory to count.
MAX_INPUT_SIZE = 2048


def add_parsers(sub, parents) -> None:
    p = sub.add_parser("complexity", parents=parents,
                       help="parameters and FLOPs of a model (the paper's Tables 3 and 4)")
    p.add_argument("--model", type=preset, default="poster-l", help="preset name (default poster-l)")
    p.add_argument("--input-size", type=number(integer=True, low=1, high=MAX_INPUT_SIZE), default=None,
                   help="the model is built for this input side in pixels (default: the preset's)")
    p.add_argument("--table", action="store_true", help="print the supplement's size table, ours beside the paper's")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..complexity import complexity, size_table
    from ..errors import UserError
    from ..models import build_model

    if args.table:
        size_table()
        return 0
    sized = {} if args.input_size is None else {"input_size": args.input_size}
    try:
        model = build_model(args.model, **sized)
    except (ValueError, TypeError) as e:
        raise UserError(f"{args.model} cannot be built for --input-size {args.input_size}: {e}") from None
    c = complexity(model)
    if args.json:
        print(json.dumps(c, indent=2))
        return 0
    print(f"{args.model}: {c['params']:,} parameters ({c['trainable_params']:,} trainable), "
          f"{c['flops'] / 1e9:.2f} GFLOPs at {c['input_size']}x{c['input_size']}")
    for part, v in c["parts"].items():
        print(f"  {part:18s} {v['params'] / 1e6:8.2f} M params {v['flops'] / 1e9:8.2f} GFLOPs")
    backbone = getattr(model.config, "backbone_size", None)
    if backbone and c["input_size"] != backbone:
        print(f"(the backbones resize every input to {backbone} px first, so the FLOPs hardly depend "
              "on the input size)")
    return 0
