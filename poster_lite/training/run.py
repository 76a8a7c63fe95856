"""The folder of one training run: what `pl.train(..., out_dir=...)` writes, resumes and guards.

    out/last           weights + everything needed to resume (optimiser, schedule, RNG, history)
    out/best           the weights of the best epoch so far
    out/history.csv    one row per epoch (and history.json, the same rows)
    out/results.json   the best epoch and its metrics (written when the run ends)
    out/tensorboard/   the history as TensorBoard scalars (tensorboard=True)
    out/run.lock       present while a training writes here

A folder that holds a run is continued (resume=True) or replaced (overwrite=True), never
overwritten silently; the lock refuses a second training into the same folder (and says
how to clear it by hand). A lock left by a training that no longer runs on this machine
(killed, kernel restarted) is reported and cleared.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import distributed
from ..checkpoint import atomic_write, read_checkpoint_file, save_checkpoint
from ..errors import UserError
from .landmarks import mark_from_checkpoint
from .loop import History

RUN_FILES = ("last", "best", "history.csv", "history.json", "results.json")
LOCK_FILE = "run.lock"
HISTORY_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_macc", "lr", "images_per_s"]
# How the messages name the two choices: pl.train's keywords, or the command line's flags.
API_WORDS = {"resume": "resume=True", "overwrite": "overwrite=True", "out": "another out_dir"}
CLI_WORDS = {"resume": "--resume", "overwrite": "--overwrite", "out": "another --out"}


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


# ---- what a run was trained on (a resume must match it) -------------------------------
def describe_model(model) -> dict:
    config = getattr(model, "config", None)
    return {"class": type(model).__name__, "config": config.to_dict() if config is not None else None,
            "parameters": sum(p.numel() for p in model.parameters())}


def describe_data(train_set, val_set, test_set, classes) -> dict:
    targets = getattr(train_set, "targets", None)
    labels = None
    if targets is not None:
        labels = hashlib.sha1(json.dumps([int(t) for t in targets]).encode()).hexdigest()[:12]
    return {"classes": list(classes), "train_images": len(train_set),
            "val_images": len(val_set) if val_set is not None else 0,
            "test_images": len(test_set) if test_set is not None else 0, "train_labels": labels}


def differences(saved: dict, now: dict, prefix: str = "") -> list:
    """["recipe.lr 0.001 -> 0.0001", ...]: every key whose value differs (nested dicts by key)."""
    found = []
    for key in sorted(set(saved) | set(now), key=str):
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append(f"{prefix}{key} {a!r} -> {b!r}")
    return found


# ---- the folder -------------------------------------------------------------------------
class RunFolder:
    """The files of one run in `out`; a context manager that holds the folder's lock.

    Only process 0 touches files (under torchrun the others get a RunFolder with main=False).
    """

    def __init__(self, out, resume: bool = False, overwrite: bool = False, main: bool = True, words=API_WORDS,
                 made: bool = False):
        if resume and overwrite:
            raise UserError(f"choose one of {words['resume']} (continue the run in {out}) and "
                            f"{words['overwrite']} (replace it)")
        self.out, self.resume, self.overwrite, self.main, self.words = Path(out), resume, overwrite, main, words
        self.locked, self.writer = False, None
        self.made = made          # made for this run: removed again if the run leaves it empty

    # -- claiming and releasing --------------------------------------------------------
    def __enter__(self) -> "RunFolder":
        if self.main and not self.locked:
            self.made = self.made or not self.out.exists()
            self._check_folder()
            self._lock()
            if self.overwrite:
                self._remove_run_files()
        return self

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.locked:
            self.locked = False
            (self.out / LOCK_FILE).unlink(missing_ok=True)
            if self.made and not any(self.out.iterdir()):
                self.out.rmdir()

    def holds_run(self) -> list:
        return [name for name in RUN_FILES if (self.out / name).exists()]

    def _check_folder(self) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise UserError(f"{self.out} is a file, not a folder for a training run; choose {self.words['out']}")
        found = self.holds_run()
        if self.resume and not (self.out / "last").exists():
            raise UserError(f"nothing to resume in {self.out}: it holds no `last` checkpoint"
                            + (f" (only {', '.join(found)})" if found else "")
                            + f"; train without {self.words['resume']} to start a new run")
        if found and not (self.resume or self.overwrite):
            raise UserError(f"{self.out} already holds a training run ({', '.join(found)}); continue it with "
                            f"{self.words['resume']}, replace it with {self.words['overwrite']}, "
                            f"or choose {self.words['out']}")

    def _lock(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / LOCK_FILE
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            self._handle_existing_lock(path)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:         # another training took the folder in between
                raise UserError(f"{self.out} is in use by another training; choose {self.words['out']}") from None
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                       "started": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
        self.locked = True

    def _handle_existing_lock(self, path: Path) -> None:
        """Refuse a lock held by a running training; clear (and report) one whose training is gone.

        Only a folder free of runs, or one being resumed or overwritten, gets this far."""
        try:
            holder = json.loads(path.read_text())
            pid, host, started = int(holder["pid"]), holder["host"], holder.get("started", "?")
        except (OSError, ValueError, KeyError, TypeError):
            pid, host, started = None, None, "?"
        who = f"a training (PID {pid} on {host}, started {started})" if pid else "a training"
        alive = _process_alive(pid) if pid and host == socket.gethostname() else None
        if alive is not False:
            unsure = "" if alive else " (this machine cannot tell whether it still runs)"
            raise UserError(f"{self.out} is in use by {who}{unsure}: a second training would mix its files. "
                            f"Wait for it, or choose {self.words['out']}. If no training uses the folder, "
                            f"delete the lock: rm {path}")
        print(f"cleared {path}: left by {who} that no longer runs", file=sys.stderr)
        path.unlink(missing_ok=True)

    def _remove_run_files(self) -> None:
        """overwrite=True: the old run's files go before the new run writes (only files a run writes)."""
        for name in RUN_FILES:
            (self.out / name).unlink(missing_ok=True)
        for events in (self.out / "tensorboard").glob("events.out.tfevents.*"):
            events.unlink()

    # -- resuming -----------------------------------------------------------------------
    def restore(self, model, optimizer, schedule, scaler, identity: dict, rank: int) -> History | None:
        """Load `last` into the model, optimiser, schedule and RNG; returns its History.

        `identity` is what this run would save (recipe, batch size, model, data): any
        difference from the saved run's is an error that lists them.
        """
        if not self.resume:
            return None
        last = self.out / "last"
        saved = read_checkpoint_file(last)
        state = saved.get("training")
        if state is None:
            raise UserError(f"{last} holds no training state to resume from (a `best` file copied there?)")
        compared = {k: state[k] for k in identity if k in state}      # older runs saved fewer
        changed = differences(compared, {k: identity[k] for k in compared})
        if changed:
            raise UserError(f"cannot resume {self.out}: this run differs from the saved one in "
                            f"{'; '.join(changed)}. Resume with the run's settings, or start a new run "
                            f"({self.words['overwrite']} or {self.words['out']})")
        try:
            model.load_state_dict(saved["state_dict"])
        except RuntimeError as e:
            raise UserError(f"{last} does not fit this model: {str(e).splitlines()[0]}") from None
        mark_from_checkpoint(model, saved["meta"].get("landmark_backbone"), last)
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        if scaler and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
        history = History(identity["recipe"]["selection"], list(state["history"]), state["best_epoch"],
                          state["best_score"])
        if (self.out / "best").exists():
            history.best_state = read_checkpoint_file(self.out / "best")["state_dict"]
        return history

    # -- writing --------------------------------------------------------------------------
    def save_epoch(self, model, history: History, improved: bool, meta: dict, identity: dict,
                   optimizer, schedule, scaler) -> None:
        """`best` (if improved), `last` with the resume state, the history files, TensorBoard.

        `identity` is what a resume must match (recipe, batch size, model, data)."""
        random_states = distributed.gather(rng_state())          # every process's, for an exact resume
        if not self.main:
            return
        row = history.rows[-1]
        epoch_meta = dict(meta, epoch=row["epoch"], metrics=row_metrics(row))
        if improved:
            save_checkpoint(model, self.out / "best", epoch_meta)
        training = dict(identity, epoch=row["epoch"], rng=random_states, history=history.rows,
                        best_epoch=history.best_epoch, best_score=history.best_score,
                        optimizer=optimizer.state_dict(), schedule=schedule.state_dict(),
                        scaler=scaler.state_dict() if scaler else None)
        save_checkpoint(model, self.out / "last", epoch_meta, training)
        frame = pd.DataFrame(history.rows)
        atomic_write(self.out / "history.csv", lambda tmp: frame.to_csv(tmp, index=False))
        atomic_write(self.out / "history.json", lambda tmp: Path(tmp).write_text(json.dumps(history.rows, indent=1)))
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, row["epoch"])

    def open_tensorboard(self) -> None:
        if self.main:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(self.out / "tensorboard"))

    def save_results(self, model, results: dict, meta: dict, metrics: dict) -> None:
        """The best epoch's weights again (now with the test metrics), and results.json."""
        if self.main:
            save_checkpoint(model, self.out / "best", dict(meta, epoch=results["best_epoch"], metrics=metrics))
            atomic_write(self.out / "results.json", lambda tmp: Path(tmp).write_text(json.dumps(results, indent=1)))


def row_metrics(row: dict) -> dict:
    return {k: v for k, v in row.items() if k.startswith(("val_", "test_", "train_"))}


def _process_alive(pid: int):
    """True / False, or None where this system cannot tell (os.kill(pid, 0) would kill on Windows)."""
    if os.name == "nt":
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True            # someone else's process
    return True


def default_out(model: str, data: str, resume: bool, root="runs") -> Path:
    """A new, empty runs/MODEL-DATA-<date>-<time> (made now: give RunFolder made=True);
    with resume, the latest such run."""
    stem = f"{model}-{Path(data).name}"
    if resume:
        runs = sorted((p for p in Path(root).glob(f"{stem}-*") if (p / "last").exists()),
                      key=lambda p: p.stat().st_mtime)
        if not runs:
            raise UserError(f"nothing to resume: no run of {model} on {Path(data).name} under {root}/ "
                            f"(name the run folder with --out)")
        return runs[-1]
    candidate = Path(root) / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        path = candidate if n == 1 else Path(f"{candidate}-{n}")
        try:
            path.mkdir(parents=True)             # made here, so two runs started at once never share it
            return path
        except FileExistsError:
            continue
    raise UserError(f"no free run folder next to {candidate}; name one with --out")
