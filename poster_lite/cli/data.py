"""`poster-lite synthfer` writes a SynthFER set; `poster-lite data check PATH` inspects a data set.

    poster-lite synthfer --out data/my-synthfer --n-train 2000
    poster-lite data check data/raf-basic
"""
from __future__ import annotations

import json
import time

from .options import number


def add_parsers(sub, parents) -> None:
    p = sub.add_parser("synthfer", parents=parents, help="generate a SynthFER set (RAF-DB layout) into a folder")
    p.add_argument("--out", required=True, help="a new or empty folder, or a SynthFER set made by this command "
                                                "(EmoLabel/, Image/aligned/, synthfer.json)")
    count = number(integer=True, low=0)
    p.add_argument("--n-train", type=count, default=5000)
    p.add_argument("--n-val", type=count, default=1000)
    p.add_argument("--n-test", type=count, default=1500)
    p.add_argument("--seed", type=number(integer=True, low=0), default=0)
    # SynthFER's own settings check the ranges (data.synthfer.Knobs) and say what is allowed.
    p.add_argument("--size", type=number(integer=True), default=112, help="image side in pixels (default 112)")
    p.add_argument("--difficulty", type=number(), default=1.0,
                   help="0 clean and easy ... 2 very hard (class overlap and nuisances; default 1)")
    p.add_argument("--balance", choices=("uniform", "raf-db"), default="uniform",
                   help="class shares: uniform, or RAF-DB's skew")
    p.add_argument("--label-noise", type=number(), default=0.0, help="fraction of labels replaced by another class")
    p.add_argument("--n-identities", type=number(integer=True, low=1), default=None,
                   help="people over all splits (default: one per 25 images)")
    p.add_argument("--workers", type=number(integer=True, low=1), default=None,
                   help="processes (default: up to 4); output is the same")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=synthfer)

    data = sub.add_parser("data", parents=parents, help="data set tools (check)")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(func=lambda args: data.print_help() or 2)
    check = actions.add_parser("check", parents=parents,
                               help="counts per split and class of a data folder, or what is wrong with it")
    check.add_argument("path", help="e.g. data/raf-basic, data/affectnet, data/fer2013, a folder of class folders")
    check.add_argument("--layout", default="auto", choices=("auto", "raf-db", "affectnet", "fer2013", "folder"))
    check.add_argument("--quick", action="store_true", help="check lists and files only, do not decode every image")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=check_data)


def synthfer(args) -> int:
    from ..data.synthfer import make_synthfer

    started = time.perf_counter()
    root = make_synthfer(args.out, args.n_train, args.n_val, args.n_test, seed=args.seed, workers=args.workers,
                         progress=not args.quiet, size=args.size, difficulty=args.difficulty, balance=args.balance,
                         label_noise=args.label_noise, n_identities=args.n_identities)
    total = args.n_train + args.n_val + args.n_test
    print(f"wrote {total} SynthFER images ({args.n_train} train / {args.n_val} val / {args.n_test} test) "
          f"to {root} in {time.perf_counter() - started:.1f} s")
    return 0


def check_data(args) -> int:
    from ..data.check import check_dataset, format_report

    report = check_dataset(args.path, layout=args.layout, decode=not args.quick, progress=not args.json)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 2 if report["problems"] else 0
