"""Look at the faces behind the numbers: mistakes, and the samples of one confusion cell.

Each tile is a face with its true and predicted class and its top-3 probabilities
(the true class in green), so one sees whether a mistake is a confident one or a
near tie, and which pairs of expressions get mixed up.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from .common import as_image, finish


def _classes(results, classes):
    if classes is not None:
        return list(classes)
    if results.get("classes"):
        return list(results["classes"])
    from .common import class_names
    return class_names(None, np.asarray(results["probabilities"]).shape[1])


def plot_gallery(dataset, indices, results, classes=None, ncols: int = 6, title: str = "",
                 channel_order: str = "rgb", into=None, save=None):
    """Tiles for `indices` of `dataset`, using an evaluate() result on that same dataset."""
    names = _classes(results, classes)
    indices = [int(i) for i in indices]
    probabilities = np.asarray(results["probabilities"])
    targets, predictions = np.asarray(results["targets"]), np.asarray(results["predictions"])
    ncols = max(1, min(ncols, len(indices)))
    nrows = max(1, math.ceil(len(indices) / ncols))
    fig = into if into is not None else Figure(figsize=(2.05 * ncols + 0.3, 2.8 * nrows + 0.5), layout="constrained")
    if not indices:
        fig.text(0.5, 0.5, "no samples to show", ha="center", va="center", fontsize=12)
    grid = fig.add_gridspec(2 * nrows, ncols, height_ratios=[2.4, 1.0] * nrows)
    for k, index in enumerate(indices):
        row, col = divmod(k, ncols)
        face = fig.add_subplot(grid[2 * row, col])
        face.imshow(as_image(dataset[index][0], channel_order))
        face.axis("off")
        true, predicted = int(targets[index]), int(predictions[index])
        face.set_title(f"#{index}  true: {names[true]} ({probabilities[index][true]:.2f})\n"
                       f"predicted: {names[predicted]}", fontsize=8,
                       color="#2b7a0b" if true == predicted else "#b2182b")
        bars = fig.add_subplot(grid[2 * row + 1, col])
        top = np.argsort(probabilities[index])[::-1][:3]
        colours = ["#31a354" if c == true else "#de2d26" if c == predicted else "#969696" for c in top]
        bars.barh(range(len(top)), probabilities[index][top], color=colours)
        bars.set_yticks(range(len(top)), [names[c] for c in top], fontsize=7)
        bars.invert_yaxis()
        bars.set_xlim(0, 1)
        bars.tick_params(axis="x", labelsize=6)
        for y, c in enumerate(top):
            bars.text(min(probabilities[index][c] + 0.02, 0.78), y, f"{probabilities[index][c]:.2f}",
                      va="center", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    return finish(fig, save)


def misclassified_indices(results, n=None) -> np.ndarray:
    """Indices of mistakes, most confident first (probability given to the wrong class)."""
    targets, predictions = np.asarray(results["targets"]), np.asarray(results["predictions"])
    wrong = np.flatnonzero(targets != predictions)
    confidence = np.asarray(results["probabilities"])[wrong, predictions[wrong]]
    ordered = wrong[np.argsort(-confidence, kind="stable")]
    return ordered if n is None else ordered[:n]


def plot_misclassified(dataset, results, n: int = 12, ncols: int = 6, classes=None,
                       channel_order: str = "rgb", save=None):
    """The `n` most confident mistakes of an evaluate() result, with their top-3 probabilities."""
    chosen = misclassified_indices(results, n)
    total = int((np.asarray(results["targets"]) != np.asarray(results["predictions"])).sum())
    title = (f"Most confident mistakes: {len(chosen)} of {total} misclassified "
             f"(of {len(results['targets'])} samples)")
    return plot_gallery(dataset, chosen, results, classes, ncols, title, channel_order, save=save)


def cell_indices(results, true: int, predicted: int) -> np.ndarray:
    """Samples of class `true` predicted as `predicted`, the most confident first."""
    targets, predictions = np.asarray(results["targets"]), np.asarray(results["predictions"])
    chosen = np.flatnonzero((targets == true) & (predictions == predicted))
    confidence = np.asarray(results["probabilities"])[chosen, predicted]
    return chosen[np.argsort(-confidence, kind="stable")]


def plot_confusion_cell(dataset, results, true: int, predicted: int, n: int = 12, ncols: int = 6,
                        classes=None, channel_order: str = "rgb", into=None, save=None):
    """The faces that landed in one confusion-matrix cell."""
    names = _classes(results, classes)
    chosen = cell_indices(results, true, predicted)
    title = (f"true {names[true]} → predicted {names[predicted]}: {len(chosen)} samples"
             + (f" (showing {n})" if len(chosen) > n else ""))
    return plot_gallery(dataset, chosen[:n], results, names, ncols, title, channel_order, into, save)
