"""A data set by name or folder (`open_data`), and a small class-balanced part of one (`Subset`).

    train = open_data("synthfer", "train", limit=200)     # 200 images, every class included
    tiny = Subset(load("raf-db", "test"), 48)             # the first 48 of a seeded class-by-class order
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError, check_number


class Subset:
    """The first `n` samples of `dataset` in a seeded order that takes the classes in
    turn, so even a few dozen images contain every class."""

    def __init__(self, dataset, n: int, seed: int = 0):
        check_number("the subset size", n, low=1, integer=True)
        targets = np.asarray(dataset.targets)
        rng = np.random.default_rng(seed)
        per_class = [list(rng.permutation(np.flatnonzero(targets == c))) for c in np.unique(targets)]
        order = [queue.pop(0) for depth in range(max(map(len, per_class), default=0))
                 for queue in per_class if queue]
        self.dataset, self.indices = dataset, [int(i) for i in order[:n]]
        self.classes = dataset.classes
        self.targets = [int(targets[i]) for i in self.indices]
        identities, landmarks = getattr(dataset, "identities", None), getattr(dataset, "landmarks", None)
        self.identities = None if identities is None else [identities[i] for i in self.indices]
        self.landmarks = None if landmarks is None else np.asarray(landmarks)[self.indices]
        self.root = getattr(dataset, "root", None)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]


def open_data(spec: str, split: str, num_classes: int = 7, limit: int | None = None, seed: int = 0):
    """A split of a data set given by name (synthfer, raf-db, ...) or by its folder;
    with `limit`, a class-balanced Subset of at most that many images."""
    from . import DATASETS, load
    from .check import detect_layout

    if limit is not None:
        check_number("limit", limit, low=1, integer=True)
    if spec.lower() in DATASETS:
        name, root = spec.lower(), None
    elif Path(spec).exists():
        layout = detect_layout(spec)
        name, root = (f"affectnet-{num_classes}" if layout == "affectnet" else layout), spec
    else:
        raise UserError(f"{spec!r} is neither a known data set ({', '.join(DATASETS)}) nor an existing folder")
    dataset = load(name, split=split, root=root)
    return Subset(dataset, limit, seed) if limit else dataset
