"""The training loop: one step, one epoch, and `fit`, which runs the epochs.

    history = fit(model, loader, optimizer, schedule, criterion, epochs=10, evaluated={"val": val_data})

`fit` is the whole of training that a reader needs: every epoch one pass over the
shuffled training set (with SAM, two forward and backward passes per batch), one step
of the learning-rate schedule, an evaluation, and the best epoch so far remembered.
It stops at `epochs`, or earlier when asked: `patience` epochs without a better
validation score (early stopping), or when another epoch would pass a time budget
(`RunClock`, which also prints the estimated total from the first steps' speed).
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
from .frozen_stream import reuse_frozen_stream


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the epoch and the step."""

    def __init__(self, message: str, epoch: int, step: int):
        super().__init__(message)
        self.epoch, self.step = epoch, step


class NonFiniteLoss(Exception):
    """Raised by a training step whose loss is NaN or infinite (before any weight moved)."""

    def __init__(self, value: float, step: int = 0):
        self.value, self.step = value, step


def training_step(net, images, labels, criterion, optimizer, sam=None, scaler=None, precision: str = "fp32",
                  reuse_frozen: bool = False, mark=None):
    """One update of `net` on a batch; returns (loss, logits), both detached.

    The gradient at the weights w; with SAM, a climb to w + e, the gradient there, and back
    to w; then the optimiser's step with the last gradient. `scaler` is fp16's GradScaler.
    reuse_frozen: SAM's second pass takes the frozen landmark stream's output from the first
    (identical: frozen_stream.py) instead of computing it again.
    mark(phase): called as each phase ends ("forward", "backward", "sam.ascend", "sam.forward",
    "sam.backward", "sam.restore", "optimizer"); benchmarks/train_profile.py times them.
    """
    mark = mark or _no_mark

    def forward_backward(prefix=""):
        with autocast(images.device, precision):
            logits = net(images)
        loss = criterion(logits.float(), labels)
        if not torch.isfinite(loss):
            raise NonFiniteLoss(loss.item())
        mark(prefix + "forward")
        (scaler.scale(loss) if scaler else loss).backward()
        mark(prefix + "backward")
        return loss.detach(), logits.detach()

    optimizer.zero_grad(set_to_none=True)
    with reuse_frozen_stream(net, enabled=reuse_frozen and sam is not None) as frozen:
        loss, logits = forward_backward()            # gradient at w
        if sam is not None:
            sam.ascend()                             # to w + e
            mark("sam.ascend")
            frozen.replay()
            try:
                forward_backward("sam.")             # gradient at w + e
            finally:
                sam.restore()                        # back to w
                mark("sam.restore")
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    mark("optimizer")
    return loss, logits


def _no_mark(phase: str) -> None:
    pass


def train_one_epoch(net, loader, criterion, optimizer, sam, scaler, device, precision, bar,
                    channels_last: bool = False, on_step=None, reuse_frozen: bool = False) -> dict:
    """One pass over `loader`; returns train_loss, train_acc and images_per_s (all processes).

    channels_last: the images go in as NHWC (what cuDNN's convolutions prefer on a GPU).
    on_step(step) runs after every step (the run's clock measures the first ones).
    reuse_frozen: SAM's second pass reuses the frozen landmark stream (training_step)."""
    net.train()
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    for step, (images, labels) in enumerate(loader, 1):
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        try:
            loss, logits = training_step(net, images, labels, criterion, optimizer, sam, scaler, precision,
                                         reuse_frozen)
        except NonFiniteLoss as e:
            raise NonFiniteLoss(e.value, step) from None
        loss_sum += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        seen += len(labels)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.1%}")
        if on_step is not None:
            on_step(step)
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
    # Why fit() stopped: "patience" (no better epoch for `patience` epochs: converged),
    # "max_epochs" (the cap), "time_budget" (another epoch would have passed the budget).
    stopped_by: str | None = None

    @property
    def epochs_done(self) -> int:
        return self.rows[-1]["epoch"] if self.rows else 0

    def waited_out(self, patience: int | None) -> bool:
        """True when `patience` epochs have passed since the best one (early stopping)."""
        return patience is not None and self.best_epoch is not None and \
            self.epochs_done - self.best_epoch >= patience

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
        history=None, on_epoch=None, progress: bool = True, patience: int | None = None, clock=None,
        channels_last: bool = False, reuse_frozen: bool = False) -> History:
    """Train `model` until `epochs` (from the epoch after `history`'s last); returns the History.

    `evaluated` names the data sets scored after every epoch ({"val": ...}, and "test" when
    the best epoch is chosen on it: `selection`). `net` is what trains: `model` itself, or
    its DDP wrapper. A `history` (of a resumed run) is continued.
    `on_epoch(history, improved)` runs after every epoch (pl.train writes its files there).
    `patience`: stop once that many epochs have passed without a better one (early stopping).
    `clock`: a RunClock (estimate, time budget); by default one without a budget.
    `history.stopped_by` says why it stopped: "patience", "max_epochs" or "time_budget".
    `reuse_frozen`: SAM's second pass reuses the frozen landmark stream (the fast path).
    """
    net = model if net is None else net      # not `net or model`: a compiled module refuses bool()
    history = history or History(selection)
    history.stopped_by = None
    clock = clock or RunClock(len(loader), epochs - history.epochs_done)
    for epoch in range(history.epochs_done + 1, epochs + 1):
        if history.waited_out(patience):             # a resumed run that had converged already
            break
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)          # a new shuffle each epoch, the same in every process
        lr = optimizer.param_groups[0]["lr"]
        clock.start_epoch()
        with tqdm(total=len(loader), desc=f"epoch {epoch}/{epochs}", leave=False,
                  disable=not (progress and distributed.is_main())) as bar:
            try:
                row = train_one_epoch(net, loader, criterion, optimizer, sam, scaler, device, precision, bar,
                                      channels_last, clock.step, reuse_frozen)
            except NonFiniteLoss as e:
                raise TrainingDiverged(f"the training loss became {e.value} at epoch {epoch}, step {e.step} "
                                       f"(of {len(loader)}); training stopped.", epoch, e.step) from None
        schedule.step()
        row = {"epoch": epoch, **row, "lr": lr}
        row.update(evaluate_splits(model, evaluated, eval_batch_size, device, precision))
        row = distributed.broadcast(row)             # every process keeps process 0's history
        improved = history.add(row, model)
        clock.end_epoch()
        if progress and distributed.is_main():
            tqdm.write(log_line(row, epochs, improved))
        if on_epoch is not None:
            on_epoch(history, improved)
        # Process 0's clock decides for all: the processes must stop after the same epoch.
        if epoch < epochs and not history.waited_out(patience) and distributed.broadcast(clock.out_of_time()):
            history.stopped_by = "time_budget"
            break
    if history.stopped_by is None:
        history.stopped_by = "patience" if history.waited_out(patience) else "max_epochs"
    if progress and distributed.is_main() and history.stopped_by != "max_epochs":
        tqdm.write(stop_line(history, patience, clock))
    return history


def stop_line(history: History, patience, clock) -> str:
    """Why the run stopped before its last epoch, in one line."""
    if history.stopped_by == "patience":
        return (f"early stop after epoch {history.epochs_done}: no better {history.selection} accuracy for "
                f"{patience} epoch(s) since epoch {history.best_epoch}")
    return (f"stopped after epoch {history.epochs_done}: another epoch ({duration(clock.last_epoch_s)}) would end "
            f"past the time budget of {duration(clock.budget_s)} ({duration(clock.elapsed())} used)")


def duration(seconds: float | None) -> str:
    """45 s, 12.5 min, 3.2 h."""
    if seconds is None:
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


# Steps timed for the estimate, after one warm-up step: the first step pays for start-up
# (CUDA's context, cuDNN's search for the fastest convolution, torch.compile) and would
# inflate the estimate.
ESTIMATE_STEPS = 5


class RunClock:
    """A run's wall time: the estimated total, measured on the first steps, and an optional budget.

    The estimate is said once, after the warm-up step and ESTIMATE_STEPS timed steps of the
    first epoch this call trains (or at its end, for a shorter epoch): seconds per step x the
    training steps still to run. Evaluation comes on top (each epoch's line shows the speed).
    With `budget_s`, `out_of_time()` is True after an epoch when another one as long would
    end past the budget: the run stops cleanly after the last epoch that fits.
    `now` is the clock itself (tests give a fake one).
    """

    def __init__(self, steps_per_epoch: int, epochs_left: int, budget_s: float | None = None, say=None,
                 now=time.perf_counter):
        self.steps_per_epoch, self.epochs_left, self.budget_s = steps_per_epoch, max(0, epochs_left), budget_s
        self.say, self.now = say, now
        self.started = now()
        self.epoch_started = self.last_epoch_s = self.warm = None
        self.step_s = self.estimate_s = None

    def elapsed(self) -> float:
        return self.now() - self.started

    def start_epoch(self) -> None:
        self.epoch_started = self.now()

    def step(self, step: int) -> None:
        if self.estimate_s is not None:
            return
        if step == 1:
            self.warm = self.now()
        elif step == 1 + ESTIMATE_STEPS and self.warm is not None:
            self._estimate((self.now() - self.warm) / ESTIMATE_STEPS)

    def end_epoch(self) -> None:
        self.last_epoch_s = self.now() - self.epoch_started
        if self.estimate_s is None:                  # an epoch shorter than the timed steps
            self._estimate(self.last_epoch_s / max(1, self.steps_per_epoch))

    def _estimate(self, step_s: float) -> None:
        self.step_s = step_s
        steps = self.steps_per_epoch * self.epochs_left
        self.estimate_s = step_s * steps
        line = (f"time estimate: {step_s:.3g} s per step x {steps:,} steps ({self.epochs_left} epoch(s)) = "
                f"{duration(self.estimate_s)} of training, plus an evaluation after each epoch")
        if self.budget_s is not None:
            fits = int(self.budget_s // max(step_s * self.steps_per_epoch, 1e-9))
            line += f"; the budget of {duration(self.budget_s)} fits about {min(fits, self.epochs_left)} epoch(s)"
        if self.say is not None:
            self.say(line)

    def out_of_time(self) -> bool:
        """After an epoch: would another one like it end past the budget?"""
        return self.budget_s is not None and self.elapsed() + (self.last_epoch_s or 0.0) > self.budget_s


def log_line(row: dict, epochs: int, improved: bool) -> str:
    line = f"epoch {row['epoch']}/{epochs}  train loss {row['train_loss']:.3f} acc {row['train_acc']:.1%}"
    for split in ("val", "test"):
        if f"{split}_acc" in row:
            line += (f"  {split} loss {row[f'{split}_loss']:.3f} acc {row[f'{split}_acc']:.1%}"
                     f" mAcc {row[f'{split}_macc']:.1%}")
    return line + f"  lr {row['lr']:.2g}  {row['images_per_s']:.0f} img/s" + ("  *best" if improved else "")
