"""`poster-lite train`: train a POSTER preset on a data set, into a run folder.

    poster-lite train --model poster-nano --data synthfer --epochs 10 --batch-size 32 --out runs/nano

The recipe flags (--lr, --no-sam, --rho, ...) are made from the fields of
`training.Recipe`, so their defaults are the Recipe's. Multi-GPU:
    python -m torch.distributed.run --nproc_per_node 2 -m poster_lite.cli train ...
"""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from ..errors import UserError, describe_range
from ..training.recipe import BATCH_SIZE, CHOICES, EPOCHS, HELP, LIMITS, Recipe
from .options import add_device, number, preset

# Older spellings kept working for the command line.
ALIASES = {"num_workers": ["--workers"]}


def add_recipe_flags(parser) -> None:
    """One flag per Recipe field: --no-FIELD for a True default, --FIELD for False, else a value."""
    group = parser.add_argument_group("recipe (poster_lite.training.Recipe; defaults: the paper's)")
    for f in fields(Recipe):
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            flag = flag.replace("--", "--no-") if f.default else flag
            group.add_argument(flag, dest=f.name, action="store_false" if f.default else "store_true",
                               help=("without " if f.default else "") + HELP[f.name])
            continue
        limits = {"integer": f.type in ("int", "int | None"), **LIMITS.get(f.name, {})}
        kind = {"choices": CHOICES[f.name]} if f.name in CHOICES else {"type": number(**limits)}
        allowed = "" if f.name in CHOICES else f"; {describe_range(**limits)}"
        default = None if f.name == "lr" else f.default          # lr: the preset's (default_lr)
        shown = "the preset's: 0.001 for nano presets, the paper's otherwise" if f.name == "lr" else \
            ("auto" if f.default is None else f.default)
        group.add_argument(flag, *ALIASES.get(f.name, []), dest=f.name, default=default, **kind,
                           help=f"{HELP[f.name]} (default {shown}{allowed})")


def add_parsers(sub, parents) -> None:
    p = sub.add_parser("train", parents=parents, help="train a POSTER model (the paper's recipe by default)")
    p.add_argument("--model", type=preset, default="poster-nano", help="preset (default poster-nano)")
    p.add_argument("--data", default="synthfer",
                   help="data set name or folder (default synthfer; synthfer-224: 50,000 faces at 224 px for the "
                        "full-size presets on a GPU)")
    p.add_argument("--epochs", type=number(integer=True, low=1), default=EPOCHS, help=f"default {EPOCHS}")
    p.add_argument("--batch-size", type=number(integer=True, low=1), default=BATCH_SIZE,
                   help=f"global batch size (default {BATCH_SIZE})")
    p.add_argument("--out", default=None,
                   help="run folder for last, best, history.csv (default: a new runs/MODEL-DATA-DATE-TIME)")
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--resume", action="store_true",
                        help="continue the run in OUT (default OUT: the latest run of MODEL on DATA)")
    choice.add_argument("--overwrite", action="store_true", help="replace the run that OUT holds")
    p.add_argument("--backbones", default="auto",
                   help="pretrained backbones: auto (the cache under data/cache/backbones, or the shipped nano "
                        "ones), a folder with ir50.pth / mobilefacenet_model_best.pth.tar, or none (random "
                        "backbones on purpose: a frozen random landmark net is refused otherwise)")
    p.add_argument("--limit", type=number(integer=True, low=1), default=None,
                   help="use at most N training images (N/2 for val and test), every class included "
                        "(synthfer-224: a set of that size is drawn instead of the 60,000 faces)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    add_device(p)
    p.add_argument("--patience", type=number(integer=True, low=1), default=None,
                   help="early stopping: stop after N epochs without a better validation score "
                        "(default: train all --epochs, the cap)")
    p.add_argument("--time-budget", type=number(low=0, low_open=True), default=None, metavar="MINUTES",
                   help="stop after the last epoch that fits in MINUTES (the first steps' speed is printed "
                        "as an estimate of the total either way)")
    p.add_argument("--compile", action="store_true",
                   help="train through torch.compile (a slow first step, faster later ones; best on a GPU)")
    p.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    add_recipe_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from .. import distributed
    from ..config import make_config
    from ..training import train
    from ..training.recipe import default_lr
    from ..training.run import CLI_WORDS, RunFolder, default_out

    # Under torchrun, process 0 picks the run folder and opens the data first: SynthFER
    # may have to be generated, and two processes must not write the same folder.
    rank = distributed.setup()[0]
    say = print if rank == 0 else (lambda *a, **k: None)
    out = Path(args.out) if args.out else (default_out(args.model, args.data, args.resume) if rank == 0 else None)
    out = distributed.broadcast(out)
    made = not args.out and not args.resume          # default_out made a new folder for this run
    try:
        if not args.resume:         # before the run folder is claimed (--overwrite empties it)
            _check_backbone_files(args, rank)
        with RunFolder(out, args.resume, args.overwrite, rank == 0, CLI_WORDS, made) as folder:
            train_set, val_set, test_set = _open_splits(args, rank)
            torch.manual_seed(args.seed)
            model = _build(args, len(train_set.classes), say)
            recipe = {f.name: getattr(args, f.name) for f in fields(Recipe)}
            recipe["lr"] = recipe["lr"] or default_lr(make_config(args.model))
            history = train(model, train_set, val_set, epochs=args.epochs, batch_size=args.batch_size,
                            out_dir=folder, precision=args.precision, device=args.device, test_set=test_set,
                            progress=not args.quiet, tensorboard=args.tensorboard, patience=args.patience,
                            time_budget=args.time_budget, compile=args.compile,
                            allow_random_landmarks=args.backbones == "none", **recipe)
    except BaseException:
        if made and rank == 0 and out.is_dir() and not any(out.iterdir()):
            out.rmdir()                  # the folder default_out made for a run that never started
        raise
    finally:
        distributed.cleanup()
    _report(history.attrs, args.epochs, out, say)
    return 0


def _check_backbone_files(args, rank) -> None:
    """Refuse, before anything is written, a model whose frozen landmark backbone would stay random."""
    from ..config import make_config
    from ..pretrain import LANDMARK_FILE, backbone_folders
    from ..training.landmarks import refusal

    config = make_config(args.model)
    if args.backbones == "none" or getattr(config, "image_only", False):
        return
    if args.backbones != "auto":
        if not Path(args.backbones).is_dir():
            raise UserError(f"--backbones {args.backbones}: no such folder (give auto, none or a folder)")
        if not (Path(args.backbones) / LANDMARK_FILE).exists():
            raise UserError(f"--backbones {args.backbones}: no {LANDMARK_FILE} there, and the frozen landmark "
                            f"backbone would stay random.\n" + refusal(config, command_line=True))
        return
    from .. import distributed
    folders = backbone_folders(config)
    if not any((f / LANDMARK_FILE).exists() for f in folders) and rank == 0:
        from ..shipped import install_shipped_backbones
        install_shipped_backbones(config)           # the nano presets' ship with the package
    distributed.barrier()
    if not any((f / LANDMARK_FILE).exists() for f in folders):
        raise UserError(f"no pretrained landmark backbone for {args.model} (looked for {LANDMARK_FILE} in "
                        f"{', '.join(str(f) for f in folders)}).\n" + refusal(config, command_line=True))


def _open_splits(args, rank):
    from .. import distributed
    from ..data.subset import open_data

    few = args.limit and max(args.limit // 2, 1)
    for turn in ("first", "then"):
        if (rank == 0) == (turn == "first"):
            if args.limit and args.data.lower() == "synthfer-224":
                # Its 60,000 faces take minutes to draw on a laptop: a --limit run (a smoke test)
                # draws a small set of the same kind instead (data/synthfer-224/variants/).
                from ..data import load
                splits = [load("synthfer-224", split, n_train=args.limit, n_val=few, n_test=few,
                               progress=not args.quiet) for split in ("train", "val", "test")]
            else:
                splits = [open_data(args.data, split, limit=limit, seed=args.seed)
                          for split, limit in (("train", args.limit), ("val", few), ("test", few))]
        distributed.barrier()
    return splits


def _build(args, num_classes: int, say):
    from ..models import build_model
    from ..pretrain import backbone_folders, load_pretrained_backbones

    model = build_model(args.model, num_classes=num_classes)
    if args.backbones == "none":
        say("random backbones (--backbones none): a teaching experiment, not a trained POSTER")
        return model
    if args.backbones != "auto" and not Path(args.backbones).is_dir():
        raise UserError(f"--backbones {args.backbones}: no such folder (give auto, none or a folder)")
    loaded = load_pretrained_backbones(model, None if args.backbones == "auto" else args.backbones)
    if loaded:
        say("pretrained backbones: " + ", ".join(loaded))
    elif args.backbones != "auto":
        raise UserError(f"no backbone files in {args.backbones} (expected ir50.pth and/or "
                        "mobilefacenet_model_best.pth.tar)")
    else:
        say(f"no pretrained backbones in {backbone_folders(model.config)[0]}: training from scratch "
            f"(run `poster-lite pretrain-backbones --model {args.model}` to make them)")
    return model


def _report(attrs: dict, epochs: int, out: Path, say) -> None:
    val, test = attrs["val"] or {}, attrs["test"] or {}
    why = {"patience": f"stopped early: no better epoch for {attrs.get('patience')} epoch(s) (converged)",
           "time_budget": f"stopped by the time budget of {attrs.get('time_budget_min')} min (not converged)",
           "max_epochs": "reached --epochs" + (" without converging by patience" if attrs.get("patience") else "")}
    say(f"best epoch {attrs['best_epoch']} of {attrs.get('epochs_trained', epochs)} trained "
        f"({why.get(attrs.get('stopped_by'), 'done')}; chosen on {attrs['selection']}); "
        f"checkpoints in {out}/best and {out}/last")
    if val:
        say(f"final val accuracy: {val['accuracy']:.2%} (mean class accuracy {val['mean_class_accuracy']:.2%})")
    if test:
        note = " (chosen on the test set: optimistic)" if attrs["selection"] == "test" else ""
        say(f"final test accuracy: {test['accuracy']:.2%} (mean class accuracy {test['mean_class_accuracy']:.2%})"
            + note)
