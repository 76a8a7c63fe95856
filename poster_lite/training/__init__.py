"""Training POSTER: `pl.train`, the paper's recipe by default.

    history = train(model, train_set, val_set, epochs=20, batch_size=32, out_dir="runs/nano")

The pieces, each in its own file:
- recipe.py: `Recipe` (the optimiser, SAM, loss and schedule settings), `default_lr`;
- loop.py: `training_step`, `train_one_epoch` and `fit`, the loop itself;
- run.py: `RunFolder`, the run's files (last, best, history, results, lock, resume).

`train` joins them: it checks its arguments, prepares the data, sets up several
processes under torchrun, runs `fit` with a RunFolder writing after every epoch,
and at the end evaluates the best epoch's weights once on the test set.

Choosing the best epoch on the test set, as the authors' release does, makes the
reported test accuracy the maximum of many noisy measurements, i.e. optimistic.
It is available as `selection="test"` so that the notebooks can show the gap.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, replace

import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from .. import distributed
from ..data.in_memory import EpochBatchSampler, InMemoryFaces
from ..data.labels import class_names
from ..device import explicit_attention_for_training, fast_path_enabled, loader_options, pick_device, resolve_precision
from ..errors import UserError, check_number
from ..evaluation import as_tensors, evaluate, summary
from ..losses import PosterLoss
from ..sam import SAM
from .landmarks import landmark_source, require_pretrained_landmarks
from .loop import History, RunClock, TrainingDiverged, fit
from .recipe import BATCH_SIZE, EPOCHS, make_optimizer, make_recipe, make_schedule
from .run import HISTORY_COLUMNS, RunFolder, describe_data, describe_model, row_metrics, seed_everything

__all__ = ["train", "TrainingDiverged", "HISTORY_COLUMNS"]


def train(model: nn.Module, train_set, val_set, epochs: int = EPOCHS, batch_size: int = BATCH_SIZE, out_dir=None,
          precision: str = "auto", device=None, *, test_set=None, resume: bool = False, overwrite: bool = False,
          channel_order: str = "rgb", criterion=None, progress: bool = True, tensorboard: bool = False,
          patience: int | None = None, time_budget: float | None = None, compile: bool = False,
          allow_random_landmarks: bool = False, **recipe) -> pd.DataFrame:
    """Train `model`; returns the per-epoch history (a DataFrame).

    Datasets may yield PIL images (the release's augmentation / the eval transform
    are applied at the model's input size, in `channel_order`) or ready tensors.
    `batch_size` is the global batch: under torchrun each of N processes takes 1/N.
    `**recipe` overrides fields of `Recipe` (lr, optimizer, sam, rho, schedule,
    gamma, smoothing, smoothing_weight, selection, seed, num_workers, weight_decay, fast).
    `fast` (default True) trains the fast path: precision "auto" resolves to bf16 where the
    hardware has bf16 units, SAM's second pass reuses the frozen landmark stream, and image
    sets that fit in memory are decoded once and augmented a batch at a time (the same
    batches, bit for bit). fast=False is the faithful float32 eager step (docs/training.md, "Speed").

    `out_dir` receives `last`, `best`, history.csv/json and results.json (see run.py);
    a folder that holds a run needs `resume=True` (continue from `out_dir/last`, with the
    same model, data and recipe) or `overwrite=True`. On return the model holds the best
    epoch's weights and `model.meta` (classes, channel_order, config, metrics).
    `history.attrs` holds best_epoch, selection, val and test (the scalar metrics), and how
    the run ended: epochs_trained, max_epochs (= epochs), patience, stopped_by ("patience",
    "max_epochs" or "time_budget"), converged (stopped by patience), time_budget_min,
    estimated_s (the total predicted from the first steps) and seconds (the training's wall time).

    `patience`: early stopping, after that many epochs without a better validation score
    (None: train all `epochs`). `time_budget` (minutes): stop after the last epoch that
    fits. `compile`: train through torch.compile (a slow first step, faster later ones).
    A frozen landmark backbone must have been loaded (load_pretrained_backbones,
    load_official_weights, load_checkpoint): `allow_random_landmarks=True` trains from a
    random one on purpose (training/landmarks.py says why it is refused otherwise).
    On CUDA the loader uses worker processes and pinned memory (device.loader_options) and the
    model trains in channels-last memory.
    """
    recipe = make_recipe(recipe)
    if recipe.fast and not fast_path_enabled():       # POSTER_LITE_FAST=0: the suite-wide switch
        recipe = replace(recipe, fast=False)
    _check_arguments(recipe, epochs, batch_size, train_set, val_set, test_set, out_dir, resume, channel_order)
    if patience is not None:
        check_number("patience", patience, low=1, integer=True)
    if time_budget is not None:
        check_number("time_budget", time_budget, low=0, low_open=True)
    resuming = out_dir.resume if isinstance(out_dir, RunFolder) else resume
    if not resuming:
        # Before any file is touched (overwrite=True empties the run folder); a resume checks
        # once `last` has restored the backbone.
        require_pretrained_landmarks(model, allow_random_landmarks)
    rank, world, local_rank = distributed.setup()
    device = pick_device(device, local_rank)
    # The switch off (fast=False) is the faithful float32 eager step, unless a precision is named.
    precision = resolve_precision(precision if recipe.fast or precision != "auto" else "fp32", device)
    if batch_size % world:
        raise UserError(f"the global batch size {batch_size} does not split over {world} processes")
    seed_everything(recipe.seed + rank)      # each process augments differently
    train_data, val_data, test_data, classes = _prepare_data(model, train_set, val_set, test_set, channel_order,
                                                             in_memory=recipe.fast)
    loader = _make_loader(train_data, batch_size, world, rank, recipe, device)
    # The worker count as resolved: what a resume must match (None means "the device's own").
    recipe_record = dict(asdict(recipe), num_workers=loader.num_workers)
    landmarks = landmark_source(model)

    channels_last = device.type == "cuda"    # cuDNN's convolutions run fastest on NHWC tensors
    net, optimizer, schedule, sam, scaler, criterion = _training_parts(
        model, recipe, epochs, device, precision, world, channels_last, compile, criterion)
    meta = {"classes": classes, "channel_order": channel_order, "recipe": recipe_record,
            "precision": precision, "batch_size": batch_size, "landmark_backbone": landmarks}
    # What a resume must match (and `last` records).
    # The speed path changes how a step computes, not what the run trains: a run may resume with the other.
    identity = {"recipe": {k: v for k, v in recipe_record.items() if k != "fast"}, "batch_size": batch_size, "model": describe_model(model),
                "data": describe_data(train_data, val_data, test_data, classes)}
    run = out_dir if isinstance(out_dir, RunFolder) or out_dir is None else \
        RunFolder(out_dir, resume, overwrite, main=rank == 0)
    evaluated = {"val": val_data} if val_data is not None else {}
    if recipe.selection == "test":
        evaluated["test"] = test_data
    with run or nullcontext():
        history = (run.restore(model, optimizer, schedule, scaler, identity, rank) if run else None) \
            or History(recipe.selection)
        if run and run.resume:
            require_pretrained_landmarks(model, allow_random_landmarks)     # `last` restored the backbone
            meta["landmark_backbone"] = landmark_source(model)
        if run and tensorboard:
            run.open_tensorboard()
        if progress and rank == 0:
            _announce(model, device, precision, train_data, val_data, batch_size, len(loader), world, history.rows, run)
        save = (lambda h, better: run.save_epoch(model, h, better, meta, identity, optimizer, schedule, scaler)) \
            if run else None
        say = tqdm.write if progress and rank == 0 else None
        clock = RunClock(len(loader), epochs - history.epochs_done, time_budget and time_budget * 60, say)
        try:
            with explicit_attention_for_training(model, device, precision, enabled=recipe.fast), \
                    _eager_if_compiling_fails(compile):
                history = fit(model, loader, optimizer, schedule, criterion, epochs, evaluated, net=net, sam=sam,
                              scaler=scaler, device=device, precision=precision,
                              eval_batch_size=max(batch_size // world, 64), history=history, on_epoch=save,
                              progress=progress, patience=patience, clock=clock, channels_last=channels_last,
                              reuse_frozen=recipe.fast and not compile)
        except TrainingDiverged as e:
            kept = (f"The last good checkpoint is {run.out / 'last'} (epoch {e.epoch - 1})."
                    if run and e.epoch > 1 else "No checkpoint of this run was written.")
            raise TrainingDiverged(f"{e} {kept} Lower the learning rate or use precision='fp32'.",
                                   e.epoch, e.step) from None
        ending = {"epochs_trained": history.epochs_done, "max_epochs": epochs, "patience": patience,
                  "stopped_by": history.stopped_by, "converged": history.stopped_by == "patience",
                  "time_budget_min": time_budget, "estimated_s": clock.estimate_s,
                  "seconds": round(clock.elapsed(), 2)}
        results, best_metrics = _test_best_epoch(model, history, test_data, run, meta,
                                                 max(batch_size // world, 64), device, precision, ending)
    return _finish(model, meta, history, results, best_metrics)


def _training_parts(model, recipe, epochs, device, precision, world, channels_last, compile, criterion):
    """The model on its device, what trains it (itself, its DDP wrapper, compiled or not), and
    the recipe's optimiser, schedule, SAM, fp16 gradient scaler and loss."""
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, recipe)
    schedule = make_schedule(optimizer, recipe, epochs)
    sam = SAM(optimizer, recipe.rho) if recipe.sam else None
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    criterion = criterion or PosterLoss(recipe.smoothing, recipe.smoothing_weight)
    # POSTER holds parameters its forward never uses (the IR-50 embedding head, the
    # release's unused class token): DDP must be told not to wait for their gradients.
    net = model if world == 1 else nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=True)
    if compile:
        net = torch.compile(net)
    return net, optimizer, schedule, sam, scaler, criterion


def _eager_if_compiling_fails(compile: bool):
    """Inside, a graph that torch.compile cannot build (no C++ compiler, an unsupported operator)
    runs eagerly with a warning instead of ending the run: compiling is a speed-up, not a need."""
    if not compile:
        return nullcontext()
    return torch._dynamo.config.patch(suppress_errors=True)


def _finish(model, meta, history, results, best_metrics) -> pd.DataFrame:
    """The model back in plain memory layout and eval mode with its metadata; the history as a frame."""
    model.to(memory_format=torch.contiguous_format)
    model.meta = dict(meta, epoch=history.best_epoch, metrics=dict(best_metrics, test=results["test"]))
    if getattr(model, "config", None) is not None:
        model.meta["config"] = model.config.to_dict()
    model.eval()
    frame = pd.DataFrame(history.rows)
    frame = frame[[c for c in HISTORY_COLUMNS if c in frame] + [c for c in frame if c not in HISTORY_COLUMNS]]
    frame.attrs.update(results)
    return frame


def _check_arguments(recipe, epochs, batch_size, train_set, val_set, test_set, out_dir, resume, channel_order):
    check_number("epochs", epochs, low=1, integer=True)
    check_number("batch_size", batch_size, low=1, integer=True)
    if recipe.selection == "test" and test_set is None:
        raise UserError('selection="test" (the release\'s protocol) needs a test_set')
    if val_set is None and recipe.selection == "val":
        raise UserError("model selection needs a validation set held out from the training data")
    if resume and out_dir is None:
        raise UserError("resume=True needs the out_dir of the interrupted run")
    if channel_order not in ("rgb", "bgr"):
        raise UserError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    for split, data in (("training", train_set), ("validation", val_set), ("test", test_set)):
        if data is not None and len(data) == 0:
            raise UserError(f"the {split} set is empty")


def _prepare_data(model, train_set, val_set, test_set, channel_order, in_memory: bool = False):
    """The three sets as tensors at the model's input size, and the class names.

    in_memory (the fast path): sets of images that fit in memory are decoded once
    (data/in_memory.py); the training set is then augmented a batch at a time."""
    config = getattr(model, "config", None)
    size = config.input_size if config is not None else None

    def tensors(data, train=False):
        if data is None:
            return None
        if in_memory and size is not None and not isinstance(data[0][0], torch.Tensor) \
                and InMemoryFaces.fits(data, size):
            return InMemoryFaces.decode(data, size, channel_order)
        return as_tensors(data, size, channel_order, train=train)
    train_data, val_data, test_data = tensors(train_set, train=True), tensors(val_set), tensors(test_set)
    num_classes = config.num_classes if config is not None else None
    # The training set names the classes (else the model's metadata); a count that differs
    # from the model's is refused below rather than silently relabelled.
    classes = class_names(train_set, model, fallback="index") or [str(i) for i in range(num_classes or 0)]
    if num_classes is not None and len(classes) != num_classes:
        raise UserError(f"the training set has {len(classes)} classes ({', '.join(classes)}) but the model "
                        f"was built for {num_classes}; build it with num_classes={len(classes)}")
    return train_data, val_data, test_data, classes


def _make_loader(train_data, batch_size, world, rank, recipe, device) -> DataLoader:
    # One sampler for one or many processes: the order depends only on (seed, epoch),
    # so a resumed run and a single-process run see the same global batches.
    sampler = DistributedSampler(train_data, num_replicas=world, rank=rank, shuffle=True, seed=recipe.seed)
    options = loader_options(device, recipe.num_workers, processes=world)
    # drop_last: a final batch of one image would break BatchNorm's batch statistics.
    if isinstance(train_data, InMemoryFaces):       # asked for a whole batch at a time (augmented as one)
        batches = EpochBatchSampler(sampler, batch_size // world, drop_last=True)
        loader = DataLoader(train_data, batch_size=None, sampler=batches, **options)
    else:
        loader = DataLoader(train_data, batch_size=batch_size // world, sampler=sampler, drop_last=True, **options)
    if len(loader) == 0:
        raise UserError(f"the training set has {len(train_data)} images, fewer than one batch of "
                        f"{batch_size}; lower the batch size")
    return loader


def _announce(model, device, precision, train_data, val_data, batch_size, steps, world, rows, run) -> None:
    if rows:
        tqdm.write(f"resuming {run.out} after epoch {rows[-1]['epoch']}")
    config = getattr(model, "config", None)
    if getattr(config, "family", None) == "poster-v2":
        name = f"a POSTER V2 ({len(config.scales)} scales, a {config.depth}-block ViT)"
    else:
        name = f"a {config.depth}-block POSTER" if hasattr(config, "depth") else type(model).__name__
    tqdm.write(f"training {name} on {device} in {precision}: {len(train_data)} train / "
               f"{len(val_data) if val_data is not None else 0} val images, batch {batch_size}, "
               f"{steps} steps per epoch" + (f", {world} processes" if world > 1 else ""))


def _test_best_epoch(model, history, test_data, run, meta, batch_size, device, precision, ending):
    """Put the best epoch's weights back, test them once, write results.json (with `ending`:
    how the run stopped). Returns (results, the best epoch's metrics)."""
    if history.best_state is not None:
        model.load_state_dict(history.best_state)
    best = next((r for r in history.rows if r["epoch"] == history.best_epoch), history.rows[-1])
    results = {"best_epoch": history.best_epoch, "selection": history.selection, "val": None, "test": None,
               **ending}
    if distributed.is_main():
        if "val_acc" in best:
            results["val"] = {"accuracy": best["val_acc"], "mean_class_accuracy": best["val_macc"],
                              "loss": best["val_loss"]}
        if history.selection == "test":
            results["test"] = {"accuracy": best["test_acc"], "mean_class_accuracy": best["test_macc"],
                               "loss": best["test_loss"]}
        elif test_data is not None:
            results["test"] = summary(evaluate(model, test_data, batch_size=batch_size, device=device,
                                               precision=precision))
        if run:
            metrics = dict(row_metrics(best), **{f"test_{k}": v for k, v in (results["test"] or {}).items()})
            run.save_results(model, results, meta, metrics)
    return distributed.broadcast(results), row_metrics(best)
