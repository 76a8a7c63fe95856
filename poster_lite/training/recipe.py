"""How to train: the `Recipe` dataclass, its optimiser and schedule, and the learning rate per model.

The defaults are the authors' RAF-DB recipe. Every default lives here once: `pl.train`
takes them as keyword overrides and `poster-lite train` generates its flags from the
fields (with the help text of `HELP`).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from ..errors import UserError, check_number

# The release's lr 4e-5 suits the full model with pretrained backbones on real faces.
# The nano presets are far smaller, start from backbones pretrained on drawn faces (not
# on millions of real ones) and get a few epochs on a CPU: at 4e-5 they barely move
# (docs/training.md: why, and what 1e-3 gives).
PAPER_LR = 4e-5
# POSTER V2's release trains RAF-DB at 3.5e-5 (POSTER_V2_FACTS.md, training recipe).
PAPER_LR_V2 = 3.5e-5
NANO_LR = 1e-3
# Embedding widths up to this are the nano presets' (128); the paper's presets use 512.
NANO_WIDTH = 128

# pl.train's and `poster-lite train`'s defaults for the run's length and batch.
EPOCHS = 10
BATCH_SIZE = 32


@dataclass(frozen=True)
class Recipe:
    """How to train. The defaults are the authors' RAF-DB recipe; each field switches one piece."""
    # The release uses Adam; AdamW and SGD (momentum 0.9) are there to compare against.
    optimizer: str = "adam"
    # The release's 4e-5; use default_lr(model) for a model's own (1e-3 for the nano presets).
    lr: float = PAPER_LR
    # The release trains without weight decay (SAM already regularises).
    weight_decay: float = 0.0
    # SAM around the optimiser: two forward/backward passes per batch for flatter minima.
    sam: bool = True
    # SAM's neighbourhood radius; the release's 0.05.
    rho: float = 0.05
    # "exponential" (lr x gamma per epoch, the release's), "cosine" or "constant".
    schedule: str = "exponential"
    # The exponential schedule's factor per epoch: 0.98 halves the lr in about 34 epochs.
    gamma: float = 0.98
    # Label smoothing of the LSCE term: keeps logits from growing without bound.
    smoothing: float = 0.2
    # loss = CE + smoothing_weight x LSCE, the release's 2; 0 means plain cross-entropy.
    smoothing_weight: float = 2.0
    # Pick the best epoch on "val"; "test" is the release's protocol, optimistic (notebook 05).
    selection: str = "val"
    # Seeds the weights' shuffling, augmentation and dropout: same seed, same run.
    seed: int = 0
    # DataLoader processes: decoding JPEGs can starve a fast GPU; 0 loads in the main process.
    # None: the device's own (device.loader_options: 0 on a CPU, one per CPU core on a GPU).
    num_workers: int | None = None
    # The fast training path (docs/training.md, "Speed"): bf16 autocast where the hardware has
    # bf16 units (precision="auto"), SAM's second pass reusing the frozen landmark stream, the
    # training set decoded once into memory and augmented a batch at a time. False: the
    # faithful float32 eager step, image by image from the files (the reference for parity).
    fast: bool = True

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in CHOICES and value not in CHOICES[f.name]:
                raise UserError(f"{f.name} must be one of {', '.join(CHOICES[f.name])}; got {value!r}")
            if f.name in LIMITS and not (value is None and f.default is None):
                check_number(f.name, value, **LIMITS[f.name])
            if f.type == "bool" and not isinstance(value, bool):
                raise UserError(f"{f.name} must be True or False, got {value!r}")


# What each field allows, checked by Recipe and shown by `poster-lite train --help`.
CHOICES = {"optimizer": ("adam", "adamw", "sgd"), "schedule": ("exponential", "cosine", "constant"),
           "selection": ("val", "test")}
LIMITS = {
    "lr": dict(low=0, low_open=True),
    "weight_decay": dict(low=0),
    "rho": dict(low=0, low_open=True),
    "gamma": dict(low=0, high=1, low_open=True),
    "smoothing": dict(low=0, high=1, high_open=True),
    "smoothing_weight": dict(low=0),
    "seed": dict(low=0, high=2**32 - 1, integer=True),
    "num_workers": dict(low=0, integer=True),
}
# One line of help per field for the command line (the comments above say why).
HELP = {
    "optimizer": "the optimiser SAM wraps",
    "lr": "learning rate",
    "weight_decay": "weight decay of the optimiser",
    "sam": "SAM (two forward/backward passes per batch)",
    "rho": "SAM's neighbourhood radius",
    "schedule": "learning-rate schedule per epoch",
    "gamma": "exponential schedule: lr x gamma per epoch",
    "smoothing": "label smoothing of the LSCE term",
    "smoothing_weight": "loss = CE + W x LSCE (0: plain cross-entropy)",
    "selection": "choose the best epoch on val, or on test (the release's protocol: optimistic)",
    "seed": "random seed of the run",
    "num_workers": "data loading processes (auto: 0 on a CPU; on a GPU one per CPU core, up to 8)",
    "fast": "the fast training path, i.e. the faithful float32 eager step (fast: bf16 where the hardware has "
            "it, the frozen landmark stream once per SAM step, the faces decoded once into memory)",
}


def make_recipe(overrides: dict) -> Recipe:
    """A Recipe from keyword overrides; an unknown name is a TypeError that lists the known ones."""
    known = [f.name for f in fields(Recipe)]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise TypeError(f"unknown training option(s) {unknown}; known: {', '.join(sorted(known))}")
    return Recipe(**overrides)


def default_lr(model) -> float:
    """The learning rate for a preset name, a config or a model: NANO_LR for the nano presets
    (embedding width up to NANO_WIDTH), else the paper's (PAPER_LR; PAPER_LR_V2 for POSTER V2)."""
    config = getattr(model, "config", model)
    if isinstance(config, str):
        from ..config import make_config
        try:
            config = make_config(config)
        except (ValueError, TypeError) as e:
            raise UserError(str(e)) from None
    width = getattr(config, "embed_dim", None)
    if width is None:
        raise UserError(f"default_lr needs a preset name, a POSTER config or a model with one, "
                        f"got {type(model).__name__}")
    if width <= NANO_WIDTH:
        return NANO_LR
    return PAPER_LR_V2 if getattr(config, "family", None) == "poster-v2" else PAPER_LR


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
