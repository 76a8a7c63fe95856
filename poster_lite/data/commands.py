"""CLI: `poster-lite synthfer ...` writes a SynthFER set; `poster-lite data check PATH` inspects one."""
from __future__ import annotations

import json
import time


def _synthfer(args) -> int:
    from .synthfer import make_synthfer

    started = time.perf_counter()
    root = make_synthfer(args.out, args.n_train, args.n_val, args.n_test, seed=args.seed, workers=args.workers,
                         progress=not args.quiet, size=args.size, difficulty=args.difficulty, balance=args.balance,
                         label_noise=args.label_noise, n_identities=args.n_identities)
    total = args.n_train + args.n_val + args.n_test
    print(f"wrote {total} SynthFER images ({args.n_train} train / {args.n_val} val / {args.n_test} test) "
          f"to {root} in {time.perf_counter() - started:.1f} s")
    return 0


def _check(args) -> int:
    from .check import check_dataset, format_report

    report = check_dataset(args.path, layout=args.layout, decode=not args.quick, progress=not args.json)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 2 if report["problems"] else 0


def register(sub) -> None:
    p = sub.add_parser("synthfer", help="generate a SynthFER set (RAF-DB layout) into a folder")
    p.add_argument("--out", required=True, help="folder to write (EmoLabel/, Image/aligned/, synthfer.json)")
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--n-val", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=112, help="image side in pixels (default 112)")
    p.add_argument("--difficulty", type=float, default=1.0,
                   help="0 clean and easy ... 2 very hard (class overlap and nuisances; default 1)")
    p.add_argument("--balance", choices=("uniform", "raf-db"), default="uniform",
                   help="class shares: uniform, or RAF-DB's skew")
    p.add_argument("--label-noise", type=float, default=0.0, help="fraction of labels replaced by another class")
    p.add_argument("--n-identities", type=int, default=None, help="people over all splits (default: one per 25 images)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: up to 4); output is the same")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_synthfer)

    data = sub.add_parser("data", help="data set tools (check)")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(func=lambda args: data.print_help() or 2)
    check = actions.add_parser("check", help="counts per split and class of a data folder, or what is wrong with it")
    check.add_argument("path", help="e.g. data/raf-basic, data/affectnet, data/fer2013, a folder of class folders")
    check.add_argument("--layout", default="auto", choices=("auto", "raf-db", "affectnet", "fer2013", "folder"))
    check.add_argument("--quick", action="store_true", help="check lists and files only, do not decode every image")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=_check)
