"""The training loop: one step, one epoch, and `fit`, which runs the epochs.

    history = fit(model, loader, optimizer, schedule, criterion, epochs=10, evaluated={"val": val_data})

`fit` is the whole of training that a reader needs: every epoch one pass over the
shuffled training set (with SAM, two forward and backward passes per batch), one step
of the learning-rate schedule, an evaluation, and the best epoch so far remembered.
Files, resuming and several processes are `pl.train`'s business (training/__init__.py).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .. import distributed
from ..device import autocast
from ..evaluation import evaluate


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and the step."""

    def __init__(self, message: str, epoch: int, step: int):
        super().__init__(message)
        self.epoch, self.step = epoch, step


class NonFiniteLoss(Exception):
    """Raised by a training step whose loss is NaN or infinite (before any weight moved)."""

    def __init__(self, value: float, step: int = 0):
        self.value, self.step = value, step


def training_step(net, images, labels, criterion, optimizer, sam=None, scaler=None, precision: str = "fp32"):
    """One update of `net` on a batch; returns (loss, logits), both detached.

    The gradient at the weights w; with SAM, a climb to w + e, the gradient there, and back
    to w; then the optimiser's step with the last gradient. `scaler` is fp16's GradScaler.
    """
    def forward_backward():
        with autocast(images.device, precision):
            logits = net(images)
        loss = criterion(logits.float(), labels)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(loss.item())
        (scaler.scale(loss) if scaler else loss).backward()
        return loss.detach(), logits.detach()

    optimizer.zero_grad(set_to_none=True)
    loss, logits = forward_backward()                # gradient at w
    if sam is not None:
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
    return loss, logits


def train_one_epoch(net, loader, criterion, optimizer, sam, scaler, device, precision, bar) -> dict:
    """One pass over `loader`; returns train_loss, train_acc and images_per_s (all processes)."""
    net.train()
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    for step, (images, labels) in enumerate(loader, 1):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        try:
            loss, logits = training_step(net, images, labels, criterion, optimizer, sam, scaler, precision)
        except NonFiniteLoss as e:
            raise NonFiniteLoss(e.value, step) from None
        loss_sum += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.1%}")
    elapsed = time.perf_counter() - start
    loss_sum, correct, seen = distributed.sum_across([loss_sum, correct, seen], device)
    return {"train_loss": loss_sum / seen, "train_acc": correct / seen, "images_per_s": seen / elapsed}


@dataclass
class History:
    """The epochs trained so far (one dict each) and the best of them."""
    selection: str = "val"          # the split whose accuracy picks the best epoch
    rows: list = field(default_factory=list)
    best_epoch: int | None = None
    best_score: list = field(default_factory=lambda: [-math.inf, -math.inf])
    best_state: dict | None = None  # the best epoch's weights, copied to the CPU

    @property
    def epochs_done(self) -> int:
        return self.rows[-1]["epoch"] if self.rows else 0

    def add(self, row: dict, model) -> bool:
        """Record an epoch; True when it is the best so far."""
        self.rows.append(row)
        # Accuracy decides; on a tie (common on small sets) the lower loss wins.
        score = [row[f"{self.selection}_acc"], -row[f"{self.selection}_loss"]]
        if score <= self.best_score:
            return False
        self.best_epoch, self.best_score = row["epoch"], score
        self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        return True


def evaluate_splits(model, splits: dict, batch_size: int, device, precision: str) -> dict:
    """{split_loss, split_acc, split_macc} for each named data set (evaluated by process 0 only)."""
    row = {}
    if distributed.is_main():
        for split, data in splits.items():
            m = evaluate(model, data, batch_size=batch_size, device=device, precision=precision)
            row.update({f"{split}_loss": m["loss"], f"{split}_acc": m["accuracy"],
                        f"{split}_macc": m["mean_class_accuracy"]})
    return row


def fit(model, loader, optimizer, schedule, criterion, epochs: int, evaluated: dict, *, net=None, sam=None,
        scaler=None, device="cpu", precision: str = "fp32", eval_batch_size: int = 64, selection: str = "val",
        history=None, on_epoch=None, progress: bool = True) -> History:
    """Train `model` until `epochs` (from the epoch after `history`'s last); returns the History.

    `evaluated` names the data sets scored after every epoch ({"val": ...}, and "test" when
    the best epoch is chosen on it: `selection`). `net` is what trains: `model` itself, or
    its DDP wrapper. A `history` (of a resumed run) is continued.
    `on_epoch(history, improved)` runs after every epoch (pl.train writes its files there).
    """
    net = net or model
    history = history or History(selection)
    for epoch in range(history.epochs_done + 1, epochs + 1):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)          # a new shuffle each epoch, the same in every process
        lr = optimizer.param_groups[0]["lr"]
        with tqdm(total=len(loader), desc=f"epoch {epoch}/{epochs}", leave=False,
                  disable=not (progress and distributed.is_main())) as bar:
            try:
                row = train_one_epoch(net, loader, criterion, optimizer, sam, scaler, device, precision, bar)
            except NonFiniteLoss as e:
                raise TrainingDiverged(f"the training loss became {e.value} at epoch {epoch}, step {e.step} "
                                       f"(of {len(loader)}); training stopped.", epoch, e.step) from None
        schedule.step()
        row = {"epoch": epoch, **row, "lr": lr}
        row.update(evaluate_splits(model, evaluated, eval_batch_size, device, precision))
        row = distributed.broadcast(row)             # every process keeps process 0's history
        improved = history.add(row, model)
        if progress and distributed.is_main():
            tqdm.write(log_line(row, epochs, improved))
        if on_epoch is not None:
            on_epoch(history, improved)
    return history


def log_line(row: dict, epochs: int, improved: bool) -> str:
    line = f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.3f} acc {row['train_acc']:.1%}"
    for split in ("val", "test"):
        if f"{split}_acc" in row:
            line += (f"  {split} loss {row[f'{split}_loss']:.3f} acc {row[f'{split}_acc']:.1%}"
                     f" mAcc {row[f'{split}_macc']:.1%}")
    return line + f"  lr {row['lr']:.2g}  {row['images_per_s']:.0f} img/s" + ("  *best" if improved else "")
