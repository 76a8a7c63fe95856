"""`poster-lite synthfer` writes a SynthFER set; `poster-lite data check PATH` inspects a data set.

    poster-lite synthfer --out data/my-synthfer --n-train 2000
    poster-lite synthfer --size 224 --train 50000 --workers 8   # = --set synthfer-224: data/synthfer-224/
    poster-lite data check data/raf-basic
"""
from __future__ import annotations

import argparse
import json
import time

from .options import number


def add_parsers(sub, parents) -> None:
    p = sub.add_parser("synthfer", parents=parents, help="generate a SynthFER set (RAF-DB layout) into a folder")
    p.add_argument("--set", choices=("synthfer", "synthfer-224"), default=None,
                   help="start from a built-in set's settings (default: synthfer-224's for --size 224, else "
                        "synthfer's); the flags below change them")
    p.add_argument("--out", default=None,
                   help="a new or empty folder, or a SynthFER set made by this command (EmoLabel/, Image/aligned/, "
                        "synthfer.json); default: where pl.data.load(SET, ...) looks for these settings "
                        "(data/synthfer-224/ for synthfer-224's own)")
    count = number(integer=True, low=0)
    p.add_argument("--n-train", type=count, default=None, help="default 5000 (synthfer-224: 50000); or --train")
    p.add_argument("--n-val", type=count, default=None, help="default 1000 (synthfer-224: 5000); or --val")
    p.add_argument("--n-test", type=count, default=None, help="default 1500 (synthfer-224: 5000); or --test")
    for split in ("train", "val", "test"):             # short spellings (errors name the flag as typed)
        p.add_argument(f"--{split}", dest=f"n_{split}", type=count, default=None, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=number(integer=True, low=0), default=None, help="default 0")
    # SynthFER's own settings check the ranges (data.synthfer.Knobs) and say what is allowed.
    p.add_argument("--size", type=number(integer=True), default=None,
                   help="image side in pixels (default 112; synthfer-224: 224)")
    p.add_argument("--difficulty", type=number(), default=1.0,
                   help="0 clean and easy ... 2 very hard (class overlap and nuisances; default 1)")
    p.add_argument("--balance", choices=("uniform", "raf-db"), default="uniform",
                   help="class shares: uniform, or RAF-DB's skew")
    p.add_argument("--label-noise", type=number(), default=0.0, help="fraction of labels replaced by another class")
    p.add_argument("--n-identities", type=number(integer=True, low=1), default=None,
                   help="people over all splits (default 300; synthfer-224: 2000; other sizes: one per 25 images)")
    p.add_argument("--workers", type=number(integer=True, low=1), default=None,
                   help="processes (default: one per usable CPU core); the files are the same for any number")
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


def synthfer_settings(args) -> tuple:
    """(set name, settings): the named set's settings with the flags given on top. A built-in
    set's people count only carries over with its split sizes (else: one per 25 images)."""
    from ..data import SYNTHFER_SETS

    name = args.set or ("synthfer-224" if args.size == 224 else "synthfer")
    settings = dict(SYNTHFER_SETS[name])
    given = {k: getattr(args, k) for k in ("n_train", "n_val", "n_test", "seed", "size", "n_identities")
             if getattr(args, k) is not None}
    if any(k.startswith("n_") and given[k] != settings[k] for k in given if k != "n_identities"):
        settings["n_identities"] = None
    settings.update(given, difficulty=args.difficulty, balance=args.balance, label_noise=args.label_noise)
    return name, settings


def synthfer(args) -> int:
    from ..data import synthfer_folder
    from ..data.synthfer import is_current, make_synthfer
    from ..device import usable_cpus

    name, settings = synthfer_settings(args)
    sizes = [settings.pop(k) for k in ("n_train", "n_val", "n_test")]
    out = args.out or synthfer_folder(name, **dict(zip(("n_train", "n_val", "n_test"), sizes)), **settings)
    if not args.out and is_current(out, *sizes, **settings):
        print(f"{out} already holds this SynthFER set (pl.data.load({name!r}, ...) reads it); nothing to do")
        return 0
    workers = args.workers or usable_cpus()
    started = time.perf_counter()
    root = make_synthfer(out, *sizes, workers=workers, progress=not args.quiet, **settings)
    seconds = time.perf_counter() - started
    print(f"wrote {sum(sizes)} SynthFER images of {settings.get('size', 112)} px ({sizes[0]} train / {sizes[1]} val / "
          f"{sizes[2]} test) to {root} in {seconds:.1f} s with {workers} process(es) "
          f"({sum(sizes) / seconds:.0f} images/s)")
    return 0


def check_data(args) -> int:
    from ..data.check import check_dataset, format_report

    report = check_dataset(args.path, layout=args.layout, decode=not args.quick, progress=not args.json)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 2 if report["problems"] else 0
