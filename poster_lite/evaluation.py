"""Evaluation the way the paper reports it: accuracy and mean class accuracy (mAcc).

Accuracy counts images; mAcc averages the per-class accuracies, so a rare class
(RAF-DB's Fear, Disgust) weighs as much as Happiness. The metrics come from
scikit-learn; the confusion matrix has true classes in rows.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .data.labels import class_names
from .device import autocast, pick_device, resolve_precision
from .errors import check_number


class Transformed(Dataset):
    """A view of `dataset` whose images go through `transform` (labels untouched)."""

    def __init__(self, dataset, transform):
        self.dataset, self.transform = dataset, transform
        for name in ("classes", "targets", "identities", "landmarks", "root"):
            if hasattr(dataset, name):
                setattr(self, name, getattr(dataset, name))

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        image, label = self.dataset[i]
        return self.transform(image), label


def as_tensors(dataset, size: int, channel_order: str = "rgb", train: bool = False):
    """`dataset` unchanged if it already yields tensors, else with the standard transform."""
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    image, _ = dataset[0]
    if isinstance(image, torch.Tensor):
        return dataset
    from .data import transforms

    make = transforms.train_transform if train else transforms.eval_transform
    return Transformed(dataset, make(size=size, channel_order=channel_order))



def model_device(model: nn.Module) -> torch.device:
    return next(iter(model.parameters())).device


@torch.no_grad()
def predict_dataset(model: nn.Module, dataset, batch_size: int = 64, device=None, precision: str = "fp32",
                    progress: bool = False, num_workers: int = 0):
    """(probabilities N x C float64, targets N int) for every sample of `dataset`."""
    check_number("batch_size", batch_size, low=1, integer=True)
    check_number("num_workers", num_workers, low=0, integer=True)
    device = pick_device(device) if device is not None else model_device(model)
    precision = resolve_precision(precision, device)
    config = getattr(model, "config", None)
    if config is not None:
        order = (getattr(model, "meta", None) or {}).get("channel_order", "rgb")
        dataset = as_tensors(dataset, config.input_size, order)
    was_training = model.training
    model.eval().to(device)
    # A private generator: creating a loader draws a seed, and evaluation must not
    # shift the global random stream that training (augmentation, dropout) uses.
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        generator=torch.Generator())
    probs, targets = [], []
    try:
        for images, labels in tqdm(loader, desc="evaluate", leave=False, disable=not progress):
            with autocast(device, precision):
                logits = model(images.to(device))
            if isinstance(logits, (tuple, list)):      # models that also return features
                logits = logits[0]
            probs.append(torch.softmax(logits.float(), dim=-1).cpu().double())
            targets.append(torch.as_tensor(labels))
    finally:
        model.train(was_training)
    return torch.cat(probs).numpy(), torch.cat(targets).numpy().astype(np.int64)


def metrics_from_predictions(targets, probabilities, classes) -> dict:
    """The evaluation dictionary from labels and class probabilities."""
    targets = np.asarray(targets, dtype=np.int64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = list(range(len(classes)))
    predictions = probabilities.argmax(axis=1)
    confusion = confusion_matrix(targets, predictions, labels=labels)
    per_class_count = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        # A class with no test sample has no accuracy (NaN) and is left out of mAcc.
        per_class = np.diag(confusion) / per_class_count
        normalized = confusion / per_class_count[:, None]
    normalized = np.nan_to_num(normalized)
    true_prob = probabilities[np.arange(len(targets)), targets]
    return {
        "accuracy": float(accuracy_score(targets, predictions)),
        "mean_class_accuracy": float(np.nanmean(per_class)),
        # F1 over the classes that occur (as truth or prediction): an absent class has none.
        "macro_f1": float(f1_score(targets, predictions, labels=np.union1d(targets, predictions),
                                   average="macro", zero_division=0)),
        "per_class_accuracy": per_class.tolist(),
        "confusion": confusion,
        "confusion_normalized": normalized,
        # Plain cross-entropy of the predictions (not the training loss with smoothing).
        "loss": float(-np.log(np.clip(true_prob, 1e-12, None)).mean()),
        "predictions": predictions,
        "targets": targets,
        "probabilities": probabilities,
        "classes": list(classes),
    }


def evaluate(model: nn.Module, dataset, batch_size: int = 64, device=None, precision: str = "fp32",
             progress: bool = False, num_workers: int = 0) -> dict:
    """accuracy, mean_class_accuracy, macro_f1 (fractions), per_class_accuracy, confusion
    (counts, rows = true class), confusion_normalized, predictions, targets,
    probabilities, classes and loss (cross-entropy) of `model` on `dataset`.

    The dataset may yield PIL images (the model's eval transform and channel order
    are applied) or ready tensors.
    """
    probabilities, targets = predict_dataset(model, dataset, batch_size, device, precision, progress, num_workers)
    if len(targets) == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    num_classes = probabilities.shape[1]
    if targets.max() >= num_classes or targets.min() < 0:
        raise ValueError(f"the dataset has labels outside 0..{num_classes - 1} for a model with {num_classes} classes")
    return metrics_from_predictions(targets, probabilities, class_names(dataset, model, num_classes=num_classes, fallback="index"))


def summary(metrics: dict) -> dict:
    """The scalar metrics only (JSON-friendly)."""
    return {k: metrics[k] for k in ("accuracy", "mean_class_accuracy", "macro_f1", "loss") if k in metrics}
