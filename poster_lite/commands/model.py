"""`poster-lite complexity`: parameters and FLOPs of a preset, or the paper's size table."""
from __future__ import annotations

import json


def _complexity(args) -> int:
    from ..complexity import complexity, size_table
    from ..config import PRESETS
    from ..errors import UserError
    from ..models.poster import build_model

    if args.table:
        size_table()
        return 0
    if args.model not in PRESETS:
        raise UserError(f"unknown model {args.model!r}; known presets: {', '.join(PRESETS)}")
    c = complexity(build_model(args.model), input_size=args.input_size)
    if args.json:
        print(json.dumps(c, indent=2))
        return 0
    print(f"{args.model}: {c['params']:,} parameters ({c['trainable_params']:,} trainable), "
          f"{c['flops'] / 1e9:.2f} GFLOPs at {c['input_size']}x{c['input_size']}")
    for part, v in c["parts"].items():
        print(f"  {part:18s} {v['params'] / 1e6:8.2f} M params {v['flops'] / 1e9:8.2f} GFLOPs")
    return 0


def register(sub) -> None:
    p = sub.add_parser("complexity", help="parameters and FLOPs of a model (the paper's Tables 3 and 4)")
    p.add_argument("--model", default="poster-l", help="preset name (default poster-l)")
    p.add_argument("--input-size", type=int, default=None, help="input side in pixels (default: the preset's)")
    p.add_argument("--table", action="store_true", help="print the supplement's size table, ours beside the paper's")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=_complexity)
