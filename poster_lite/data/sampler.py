"""Class-balanced sampling: every class is drawn equally often, however skewed the labels.

AffectNet's training set is dominated by happy and neutral faces (and RAF-DB by happy
ones); the paper's AffectNet numbers need balanced sampling. Use it as
`DataLoader(train_set, batch_size=..., sampler=ClassBalancedSampler(train_set.targets))`.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler

from ..errors import UserError


def class_weights(targets, num_classes: int | None = None) -> torch.Tensor:
    """Inverse class frequencies, scaled to average 1 over the classes present (for a weighted loss)."""
    counts = np.bincount(np.asarray(targets, int), minlength=num_classes or 0).astype(float)
    weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    present = counts > 0
    weights[present] *= present.sum() / weights[present].sum()
    return torch.tensor(weights, dtype=torch.float32)


class ClassBalancedSampler(Sampler[int]):
    """Indices drawn with probability 1 / (size of the sample's class).

    num_samples: indices per epoch (default: the data set's length). replacement=False
    draws each index at most once per epoch (then num_samples may not exceed the length).
    Reproducible: epoch e uses seed + e; the epoch advances by itself after each pass,
    or call set_epoch(e) as with DistributedSampler.
    """

    def __init__(self, targets, num_samples: int | None = None, replacement: bool = True, seed: int = 0):
        targets = np.asarray(list(targets), int)
        if targets.size == 0:
            raise UserError("ClassBalancedSampler needs at least one target")
        if targets.min() < 0:
            raise UserError(f"targets must be class indices >= 0, found {targets.min()}")
        counts = np.bincount(targets)
        self.weights = torch.as_tensor(1.0 / counts[targets], dtype=torch.double)
        self.num_samples = int(num_samples) if num_samples is not None else len(targets)
        if not replacement and self.num_samples > len(targets):
            raise UserError(f"without replacement at most {len(targets)} samples per epoch, asked {self.num_samples}")
        self.replacement = replacement
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        picks = torch.multinomial(self.weights, self.num_samples, self.replacement, generator=generator)
        return iter(picks.tolist())
