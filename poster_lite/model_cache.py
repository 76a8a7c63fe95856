"""The cache of trained models for the notebooks: load if trained (or shipped), else train (and cache).

Several notebooks need "a trained POSTER" (the tour, attention maps, evaluation,
prediction). `trained_model()` returns the cached one from
`data/cache/models/<name>/best` when it exists, else the one shipped with the package
(poster_lite/shipped/: poster-nano, image-only-nano and poster-v2-nano, in seconds), and
otherwise trains it on SynthFER with a progress bar, exactly as `poster-lite train` would, and
caches it. `retrain=True` trains now whatever is cached or shipped. Notebook 05 draws the
shipped run's recorded history, and with RETRAIN=True trains into the same cache.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from .errors import UserError

# What "trained" means at each scale. Default: the full recipe (SAM, CE + 2 LSCE, Adam 1e-3) on
# all 5,000 SynthFER training faces, from the pretrained nano backbones, until validation accuracy
# has not improved for `patience` epochs (early stopping; `epochs` is only the cap). A fixed 6
# epochs left poster-nano still rising (best epoch = last, 60.9% test); with early stopping it ran
# 28 epochs (best 24) to 74.3% (docs/training.md has every epoch and the time).
RUN_SETTINGS = {
    "default": dict(epochs=30, patience=4, batch_size=64, n_train=None, sam=True),
    # Smoke runs only prove that every cell executes: a few steps, one pass each (no SAM).
    "smoke": dict(epochs=1, patience=None, batch_size=16, n_train=48, sam=False),
}


def cache_root() -> Path:
    from .data import data_dir
    return data_dir() / "cache"


def model_dir(name: str, smoke: bool = False, **overrides) -> Path:
    """data/cache/models/<name>[-smoke][-<hash of overrides>]."""
    tag = name + ("-smoke" if smoke else "")
    if overrides:
        tag += "-" + hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return cache_root() / "models" / tag


def _subset(ds, n):
    from .data.subset import Subset
    return ds if n is None or n >= len(ds) else Subset(ds, n)


def trained_model(name: str = "poster-nano", smoke: bool = False, backbones: str = "auto",
                  device=None, progress: bool = True, retrain: bool = False, source: str = "auto", **overrides):
    """A POSTER trained on the default SynthFER set: cached, shipped, or trained now and cached.

    source: "auto" (default) the model trained here if cached, else the shipped one (default
    settings of the shipped models; its `meta` carries the manifest: recipe,
    command, date, data set fingerprint, test accuracy), else trained now; "shipped" only the
    shipped one; "train" the one trained here (training it now if it is not cached).
    retrain=True trains now and replaces the cache (the shipped files are never changed).
    smoke=True (SMOKE runs): the shipped model when there is one (it loads faster than the
    smallest training), else a few training steps on 48 faces, cached apart.

    backbones: "auto" starts from the pretrained backbones in data/cache/backbones (notebook 02 /
    `poster-lite pretrain-backbones`), pretraining them first when they are missing (a few
    minutes; SMOKE runs use whatever is there); "none" starts from random backbones.
    `overrides` change the architecture (any PosterConfig / PosterV2Config field) and get their own cache.
    Returns the model in eval mode with `model.meta` (classes, metrics, history).
    """
    from .checkpoint import load_checkpoint
    from .config import make_config
    from .device import pick_device

    if backbones not in ("auto", "none"):
        raise UserError(f"backbones must be 'auto' or 'none', got {backbones!r}")
    if source not in ("auto", "shipped", "train"):
        raise UserError(f"source must be 'auto', 'shipped' or 'train', got {source!r}")
    try:
        config = make_config(name, **overrides)      # an unknown name or field fails here, before any work
    except (ValueError, TypeError) as e:
        raise UserError(str(e)) from None
    if device is not None:
        device = pick_device(device)                 # an absent device fails here too
    folder = model_dir(name, smoke, **({"backbones": backbones} if backbones != "auto" else {}), **overrides)
    from . import shipped
    can_ship = not retrain and source != "train" and backbones == "auto" and not overrides and shipped.has_model(name)
    if source == "shipped" and not can_ship:
        raise UserError(f"no shipped {name!r} for these settings (retrain={retrain}, backbones={backbones!r}, "
                        f"overrides {overrides or 'none'}); shipped: {', '.join(shipped.shipped_models()) or 'none'}")
    if can_ship and (smoke or source == "shipped"):
        return shipped.load_model(name, device=device)
    if (folder / "best").exists() and not retrain:
        return _with_run_record(load_checkpoint(folder / "best", device=device), folder)
    if can_ship:
        return shipped.load_model(name, device=device)
    # Training from here on (imported only now: loading a model needs none of it).
    from .data import load
    from .models import build_model
    from .pretrain import ensure_pretrained_backbones, load_pretrained_backbones
    from .training import train
    from .training.recipe import default_lr
    plan = RUN_SETTINGS["smoke" if smoke else "default"]
    if backbones == "auto" and not smoke:
        # From random backbones a nano POSTER stays near chance on SynthFER (docs/training.md),
        # so "a trained model" starts from pretrained ones, made now if none are cached.
        ensure_pretrained_backbones(name, device=device, progress=progress)
    train_set = _subset(load("synthfer", split="train"), plan["n_train"])
    val_set = _subset(load("synthfer", split="val"), plan["n_train"] and plan["n_train"] // 2)
    test_set = _subset(load("synthfer", split="test"), plan["n_train"] and plan["n_train"] // 2)
    torch.manual_seed(0)
    model = build_model(name, num_classes=len(train_set.classes), **overrides)
    if backbones == "auto":
        load_pretrained_backbones(model)
    # retrain, or a run that stopped before its first `best`: this cache folder is ours to replace.
    train(model, train_set, val_set, epochs=plan["epochs"], patience=plan.get("patience"), batch_size=plan["batch_size"],
          out_dir=folder,
          device=device, test_set=test_set, progress=progress, lr=default_lr(config), sam=plan["sam"],
          overwrite=True, allow_random_landmarks=backbones == "none" or smoke)   # asked for, or a smoke run
    return _with_run_record(load_checkpoint(folder / "best", device=device), folder)


# How a run ended, as results.json records it (pl.train) and the shipped manifest repeats it.
RUN_ENDING = ("stopped_by", "patience", "max_epochs", "epochs_trained")


def run_record(folder: Path) -> dict:
    """What a training run's folder says about the run: its per-epoch "history" (history.json;
    notebook 05 draws curves from it) and how it ended (results.json, the RUN_ENDING fields)."""
    history, results = folder / "history.json", folder / "results.json"
    record = {"history": json.loads(history.read_text())} if history.exists() else {}
    ended = json.loads(results.read_text()) if results.exists() else {}
    return {**record, **{k: ended[k] for k in RUN_ENDING if ended.get(k) is not None}}


def _with_run_record(model, folder: Path):
    """`model.meta` gains what a shipped model's meta carries: the run's history and how it ended."""
    model.meta.update(run_record(folder))
    return model
