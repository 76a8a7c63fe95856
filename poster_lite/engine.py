"""Training POSTER: one plain PyTorch loop, the paper's recipe by default.

    history = train(model, train_set, val_set, epochs=20, batch_size=32, out_dir="runs/nano")

Each epoch: one pass over the shuffled training set (with SAM, two forward and
backward passes per batch), one step of the learning-rate schedule, evaluation on
the validation set, and two checkpoints in `out_dir`: `last` (everything needed
to resume) and `best` (the weights of the best epoch so far). After the last epoch
the best weights are evaluated once on the test set.

Choosing the best epoch on the test set, as the authors' release does, makes the
reported test accuracy the maximum of many noisy measurements, i.e. optimistic.
It is available as `selection="test"` so that the notebooks can show the gap.
"""
from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import atomic_write, read_checkpoint_file, save_checkpoint
from .errors import UserError
from .evaluation import as_tensors, autocast_for, evaluate, summary
from .fast import cpu_has_bf16, explicit_attention_for_training, pick_device, resolve_precision  # noqa: F401 (cpu_has_bf16: re-exported)
from .losses import PosterLoss
from .sam import SAM

# The release's lr 4e-5 suits the full model with pretrained backbones on real faces.
# The nano presets are far smaller and start (by default) from scratch: at 4e-5 they
# barely move in the few epochs a CPU affords (docs/training.md: why, and what it gives).
PAPER_LR = 4e-5
NANO_LR = 1e-3
HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_macc", "lr", "images_per_s"]


@dataclass(frozen=True)
class Recipe:
    """How to train. The defaults are the authors' RAF-DB recipe; each field switches one piece."""
    optimizer: str = "adam"          # "adam", "adamw" or "sgd" (momentum 0.9)
    lr: float = PAPER_LR             # NANO_LR suits the nano presets (docs/training.md)
    weight_decay: float = 0.0
    sam: bool = True                 # SAM around the optimiser: two passes per batch
    rho: float = 0.05                # SAM's neighbourhood radius
    schedule: str = "exponential"    # "exponential" (lr x gamma per epoch), "cosine" or "constant"
    gamma: float = 0.98
    smoothing: float = 0.2           # label smoothing of the LSCE term
    smoothing_weight: float = 2.0    # loss = CE + smoothing_weight x LSCE; 0 means plain CE
    selection: str = "val"           # pick the best epoch on "val", or on "test" (the release's protocol)
    seed: int = 0
    num_workers: int = 0

    def __post_init__(self):
        choices = {"optimizer": ("adam", "adamw", "sgd"), "schedule": ("exponential", "cosine", "constant"),
                   "selection": ("val", "test")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")


def make_recipe(overrides: dict) -> Recipe:
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"unknown training option(s) {unknown}; known: {', '.join(sorted(known))}")
    return Recipe(**overrides)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and the step."""

    def __init__(self, message: str, epoch: int, step: int):
        super().__init__(message)
        self.epoch, self.step = epoch, step


class _NonFiniteLoss(Exception):
    def __init__(self, step: int, value: float):
        self.step, self.value = step, value


# ---- device and precision: one definition for training and inference, in fast.py ----------
pick_precision = resolve_precision


# ---- the pieces of the recipe -------------------------------------------------------
def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]     # the landmark net is frozen
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=0.9, weight_decay=recipe.weight_decay)


def make_schedule(optimizer, recipe: Recipe, epochs: int):
    if recipe.schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=recipe.gamma)
    if recipe.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


# ---- random state (a resumed run must draw the same numbers as an uninterrupted one) --
def rng_state() -> dict:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": random.getstate(),
            "numpy": [name, keys.tolist(), pos, has_gauss, cached]}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


# ---- one epoch --------------------------------------------------------------------------
def train_one_epoch(net, loader, criterion, optimizer, sam, scaler, device, precision, bar) -> dict:
    """One pass over `loader`; returns train_loss, train_acc and images_per_s (all ranks)."""
    net.train()
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    for step, (images, labels) in enumerate(loader, 1):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)

        def forward_backward():
            with autocast_for(device, precision):
                logits = net(images)
            loss = criterion(logits.float(), labels)
            if not torch.isfinite(loss):
                raise _NonFiniteLoss(step, loss.item())
            (scaler.scale(loss) if scaler else loss).backward()
            return loss.detach(), logits.detach()

        optimizer.zero_grad(set_to_none=True)
        loss, logits = forward_backward()                # gradient at w
        if sam:
            sam.ascend()                                 # to w + e
            try:
                forward_backward()                       # gradient at w + e
            finally:
                sam.restore()                            # back to w
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()

        loss_sum += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.1%}")
    elapsed = time.perf_counter() - start
    loss_sum, correct, seen = distributed.sum_across([loss_sum, correct, seen], device)
    return {"train_loss": loss_sum / seen, "train_acc": correct / seen, "images_per_s": seen / elapsed}


# ---- files of a run ----------------------------------------------------------------------
def _write_history(out: Path, rows: list) -> None:
    frame = pd.DataFrame(rows)
    atomic_write(out / "history.csv", lambda tmp: frame.to_csv(tmp, index=False))
    atomic_write(out / "history.json", lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=1)))


def _log_line(row: dict, epochs: int, improved: bool) -> str:
    line = f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.3f} acc {row['train_acc']:.1%}"
    for split in ("val", "test"):
        if f"{split}_acc" in row:
            line += (f"  {split} loss {row[f'{split}_loss']:.3f} acc {row[f'{split}_acc']:.1%}"
                     f" mAcc {row[f'{split}_macc']:.1%}")
    return line + f"  lr {row['lr']:.2g}  {row['images_per_s']:.0f} img/s" + ("  *best" if improved else "")


def _cpu_copy(model: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


# ---- the loop ------------------------------------------------------------------------------
def train(model: nn.Module, train_set, val_set, epochs: int = 10, batch_size: int = 32, out_dir=None,
          precision: str = "auto", device=None, *, test_set=None, resume: bool = False,
          channel_order: str = "rgb", criterion=None, progress: bool = True, tensorboard: bool = False,
          **recipe) -> pd.DataFrame:
    """Train `model`; returns the per-epoch history (a DataFrame).

    Datasets may yield PIL images (the release's augmentation / the eval transform
    are applied at the model's input size, in `channel_order`) or ready tensors.
    `batch_size` is the global batch: under torchrun each of N processes takes 1/N.
    `**recipe` overrides fields of `Recipe` (lr, optimizer, sam, rho, schedule,
    gamma, smoothing, smoothing_weight, selection, seed, num_workers).

    `out_dir` receives `last`, `best`, history.csv/json and results.json;
    `resume=True` continues from `out_dir/last`. On return the model holds the best
    epoch's weights and `model.meta` (classes, channel_order, config, metrics).
    `history.attrs` holds best_epoch, selection, val and test (the scalar metrics).
    """
    recipe = make_recipe(recipe)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if recipe.selection == "test" and test_set is None:
        raise ValueError('selection="test" (the release\'s protocol) needs a test_set')
    if val_set is None and recipe.selection == "val":
        raise ValueError("model selection needs a validation set held out from the training data")
    if resume and out_dir is None:
        raise ValueError("resume=True needs the out_dir of the interrupted run")
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")

    rank, world, local_rank = distributed.setup()
    main = rank == 0
    device = pick_device(device, local_rank)
    precision = pick_precision(precision, device)
    if batch_size % world:
        raise UserError(f"the global batch size {batch_size} does not split over {world} processes")
    out = Path(out_dir) if out_dir is not None else None
    seed_everything(recipe.seed + rank)      # each process augments differently

    # -- data -----------------------------------------------------------------------------
    config = getattr(model, "config", None)
    size = config.input_size if config is not None else None
    train_data = as_tensors(train_set, size, channel_order, train=True)
    val_data = as_tensors(val_set, size, channel_order) if val_set is not None else None
    test_data = as_tensors(test_set, size, channel_order) if test_set is not None else None
    num_classes = config.num_classes if config is not None else None
    classes = list(getattr(train_set, "classes", None) or (getattr(model, "meta", None) or {}).get("classes")
                   or [str(i) for i in range(num_classes or 0)])
    if num_classes is not None and len(classes) != num_classes:
        raise UserError(f"the training set has {len(classes)} classes ({', '.join(classes)}) but the model "
                        f"was built for {num_classes}; build it with num_classes={len(classes)}")
    # One sampler for one or many processes: the order depends only on (seed, epoch),
    # so a resumed run and a single-process run see the same global batches.
    sampler = DistributedSampler(train_data, num_replicas=world, rank=rank, shuffle=True, seed=recipe.seed)
    # drop_last: a final batch of one image would break BatchNorm's batch statistics.
    loader = DataLoader(train_data, batch_size=batch_size // world, sampler=sampler, drop_last=True,
                        num_workers=recipe.num_workers, pin_memory=device.type == "cuda")
    if len(loader) == 0:
        raise UserError(f"the training set has {len(train_data)} images, fewer than one batch of "
                        f"{batch_size}; lower --batch-size")

    # -- model and recipe -------------------------------------------------------------
    model.to(device)
    optimizer = make_optimizer(model, recipe)
    schedule = make_schedule(optimizer, recipe, epochs)
    sam = SAM(optimizer, recipe.rho) if recipe.sam else None
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    criterion = criterion or PosterLoss(recipe.smoothing, recipe.smoothing_weight)
    net = model
    if world > 1:
        # POSTER holds parameters its forward never uses (the IR-50 embedding head, the
        # release's unused class token): DDP must be told not to wait for their gradients.
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=True)
    meta = {"classes": classes, "channel_order": channel_order, "recipe": asdict(recipe),
            "precision": precision, "batch_size": batch_size}

    # -- state, fresh or resumed -------------------------------------------------------
    rows, best_epoch, best_score, best_state, start = [], None, [-math.inf, -math.inf], None, 1
    if resume and (out / "last").exists():
        saved = read_checkpoint_file(out / "last")
        state = saved.get("training")
        if state is None:
            raise UserError(f"{out / 'last'} holds no training state to resume from")
        if state["recipe"] != asdict(recipe) or state["batch_size"] != batch_size:
            raise UserError(f"{out / 'last'} was trained with another recipe or batch size; resume with "
                            f"the same settings (saved: {state['recipe']}, batch {state['batch_size']})")
        model.load_state_dict(saved["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if scaler and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
        rows, best_epoch, best_score = list(state["history"]), state["best_epoch"], state["best_score"]
        start = state["epoch"] + 1
        if (out / "best").exists():
            best_state = read_checkpoint_file(out / "best")["state_dict"]
        if main and progress:
            tqdm.write(f"resuming {out} after epoch {state['epoch']}")

    if main and progress:
        name = type(model).__name__ if config is None else f"a {config.depth}-block POSTER"
        tqdm.write(f"training {name} on {device} in {precision}: {len(train_data)} train / "
                   f"{len(val_data) if val_data is not None else 0} val images, batch {batch_size}, "
                   f"{len(loader)} steps per epoch" + (f", {world} processes" if world > 1 else ""))
    writer = None
    if tensorboard and main and out is not None:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(out / "tensorboard"))

    def evaluate_on(dataset):
        return evaluate(model, dataset, batch_size=max(batch_size // world, 64), device=device, precision=precision)

    switched = explicit_attention_for_training(model, device, precision)

    # -- epochs -----------------------------------------------------------------------------
    for epoch in range(start, epochs + 1):
        sampler.set_epoch(epoch)
        lr = optimizer.param_groups[0]["lr"]
        with tqdm(total=len(loader), desc=f"epoch {epoch}/{epochs}", leave=False,
                  disable=not (progress and main)) as bar:
            try:
                row = train_one_epoch(net, loader, criterion, optimizer, sam, scaler, device, precision, bar)
            except _NonFiniteLoss as e:
                kept = (f"The last good checkpoint is {out / 'last'} (epoch {epoch - 1})."
                        if out is not None and epoch > 1 else "No checkpoint of this run was written.")
                raise TrainingDiverged(f"the training loss became {e.value} at epoch {epoch}, step {e.step} "
                                       f"(of {len(loader)}); training stopped. {kept} Lower the learning rate "
                                       f"or use precision='fp32'.", epoch, e.step) from None
        schedule.step()
        random_states = distributed.gather(rng_state())
        row = {"epoch": epoch, **row, "lr": lr}

        improved = False
        if main:
            if val_data is not None:
                val = evaluate_on(val_data)
                row.update(val_loss=val["loss"], val_acc=val["accuracy"], val_macc=val["mean_class_accuracy"])
            if recipe.selection == "test":
                test = evaluate_on(test_data)
                row.update(test_loss=test["loss"], test_acc=test["accuracy"], test_macc=test["mean_class_accuracy"])
            # Accuracy decides; on a tie (common on small sets) the lower loss wins.
            on = "test" if recipe.selection == "test" else "val"
            score = [row[f"{on}_acc"], -row[f"{on}_loss"]]
            improved = score > best_score
            if improved:
                best_epoch, best_score, best_state = epoch, score, _cpu_copy(model)
            rows.append(row)
            if out is not None:
                if improved:
                    save_checkpoint(model, out / "best", dict(meta, epoch=epoch, metrics=_row_metrics(row)))
                training = {"epoch": epoch, "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                            "scaler": scaler.state_dict() if scaler else None, "rng": random_states,
                            "history": rows, "best_epoch": best_epoch, "best_score": best_score,
                            "recipe": asdict(recipe), "batch_size": batch_size}
                save_checkpoint(model, out / "last", dict(meta, epoch=epoch, metrics=_row_metrics(row)), training)
                _write_history(out, rows)
            if writer is not None:
                for key, value in row.items():
                    if key != "epoch":
                        writer.add_scalar(key, value, epoch)
            if progress:
                tqdm.write(_log_line(row, epochs, improved))
        # Every rank keeps the same history; the broadcast also waits for rank 0's files.
        rows = distributed.broadcast(rows)

    for m in switched:
        m.fused = True

    # -- the best epoch, tested once ---------------------------------------------------------
    if writer is not None:
        writer.close()
    best_epoch = distributed.broadcast(best_epoch)
    if best_state is not None:
        model.load_state_dict(best_state)
    best_row = next((r for r in rows if r["epoch"] == best_epoch), rows[-1])
    results = {"best_epoch": best_epoch, "selection": recipe.selection, "val": None, "test": None}
    if main:
        if "val_acc" in best_row:
            results["val"] = {"accuracy": best_row["val_acc"], "mean_class_accuracy": best_row["val_macc"],
                              "loss": best_row["val_loss"]}
        if recipe.selection == "test":
            results["test"] = {"accuracy": best_row["test_acc"], "mean_class_accuracy": best_row["test_macc"],
                               "loss": best_row["test_loss"]}
        elif test_data is not None:
            results["test"] = summary(evaluate_on(test_data))
        if out is not None:
            metrics = dict(_row_metrics(best_row), **{f"test_{k}": v for k, v in (results["test"] or {}).items()})
            save_checkpoint(model, out / "best", dict(meta, epoch=best_epoch, metrics=metrics))
            atomic_write(out / "results.json", lambda tmp: Path(tmp).write_text(json.dumps(results, indent=1)))
    results = distributed.broadcast(results)
    model.meta = dict(meta, epoch=best_epoch, metrics=dict(_row_metrics(best_row), test=results["test"]))
    if config is not None:
        model.meta["config"] = config.to_dict()
    model.eval()

    history = pd.DataFrame(rows)
    ordered = [c for c in HISTORY_COLUMNS if c in history] + [c for c in history if c not in HISTORY_COLUMNS]
    history = history[ordered]
    history.attrs.update(results)
    return history


def _row_metrics(row: dict) -> dict:
    return {k: v for k, v in row.items() if k.startswith(("val_", "test_", "train_"))}
