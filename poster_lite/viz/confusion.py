"""Confusion matrices in the layout of the supplement's Figure 2.

Rows are the true class and are normalised to 100 %, so the diagonal is each class's
accuracy (what POSTER raises: less intra-class discrepancy) and an off-diagonal cell
is how often that class is taken for another (what POSTER lowers: less inter-class
similarity). Baseline and POSTER sit side by side, with their per-cell difference.
"""
from __future__ import annotations

import numpy as np

from .common import class_names, finish, new_figure


def _matrix_and_classes(source, classes=None):
    """Accept a C x C count matrix or a `poster_lite.evaluate` result dict."""
    if isinstance(source, dict):
        classes = classes or source.get("classes")
        source = source["confusion"]
    matrix = np.asarray(source, dtype=float)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix must be square, got shape {matrix.shape}")
    classes = list(classes) if classes is not None else class_names(None, matrix.shape[0])
    if len(classes) != matrix.shape[0]:
        raise ValueError(f"{len(classes)} class names for a {matrix.shape[0]}-class confusion matrix")
    return matrix, classes


def row_normalise(matrix) -> np.ndarray:
    """Each row as percentages of that true class (rows with no samples stay 0)."""
    matrix = np.asarray(matrix, dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(100.0 * matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def draw_confusion(ax, percent: np.ndarray, classes, title: str = "", cmap="Blues",
                   vmin=0.0, vmax=100.0, center=None, colorbar=True, fmt=".0f"):
    import seaborn as sns

    size = 8 if len(classes) <= 7 else 7
    sns.heatmap(percent, ax=ax, annot=True, fmt=fmt, cmap=cmap, vmin=vmin, vmax=vmax, center=center,
                square=True, cbar=colorbar, cbar_kws=dict(shrink=0.7), annot_kws=dict(fontsize=size),
                xticklabels=classes, yticklabels=classes, linewidths=0.4, linecolor="white")
    ax.set_xlabel("predicted", fontsize=9)
    ax.set_ylabel("true", fontsize=9)
    ax.tick_params(labelsize=size)
    ax.set_xticklabels(ax.get_xticklabels(), rotation=45, ha="right")
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0)
    ax.set_title(title, fontsize=10)


def plot_confusion(source, classes=None, title: str = "", save=None):
    """One row-normalised confusion matrix (%), with the mean class accuracy in the title."""
    matrix, classes = _matrix_and_classes(source, classes)
    percent = row_normalise(matrix)
    fig, axes = new_figure(1, 1, (0.62 * len(classes) + 2.4, 0.55 * len(classes) + 1.6))
    label = f"{title}\n" if title else ""
    draw_confusion(axes[0, 0], percent, classes,
                   f"{label}mean class accuracy {np.diag(percent).mean():.1f} %  (rows sum to 100 %)")
    return finish(fig, save)


def _comparison_row(axes, baseline, poster, classes, names, dataset=""):
    base_matrix, classes = _matrix_and_classes(baseline, classes)
    poster_matrix, _ = _matrix_and_classes(poster, classes)
    base, post = row_normalise(base_matrix), row_normalise(poster_matrix)
    prefix = f"{dataset}: " if dataset else ""
    for ax, percent, name in zip(axes[:2], (base, post), names):
        draw_confusion(ax, percent, classes, f"{prefix}{name}\nmean class acc. {np.diag(percent).mean():.1f} %")
    diff = np.round(post - base) + 0.0          # + 0.0 turns -0 into 0 for the labels
    limit = max(1.0, float(np.abs(diff).max()))
    draw_confusion(axes[2], diff, classes, f"{prefix}{names[1]} − {names[0]} (points)\n"
                   f"diagonal up = better; off-diagonal down = better",
                   cmap="RdBu", vmin=-limit, vmax=limit, center=0, fmt="+.0f")
    return diff


def plot_confusion_comparison(baseline, poster, classes=None, names=("Baseline", "POSTER"),
                              dataset: str = "", save=None):
    """Baseline | POSTER | difference, each row-normalised; inputs are count matrices or evaluate() dicts."""
    _, classes = _matrix_and_classes(baseline, classes)
    n = len(classes)
    fig, axes = new_figure(1, 3, (3 * (0.55 * n + 1.9), 0.55 * n + 1.9))
    _comparison_row(axes[0], baseline, poster, classes, names, dataset)
    return finish(fig, save)


def plot_confusion_figure2(results: dict, names=("Baseline", "POSTER"), save=None):
    """The supplement's Figure 2 for several data sets: one row per data set.

    `results`: {"RAF-DB": (baseline, poster), "AffectNet-7": (...), ...}, each a
    count matrix or an evaluate() dict; class names come from the dicts when given.
    """
    if not results:
        raise ValueError("results is empty: pass {dataset name: (baseline, poster)}")
    sizes = [len(_matrix_and_classes(pair[0])[1]) for pair in results.values()]
    n = max(sizes)
    fig, axes = new_figure(len(results), 3, (3 * (0.55 * n + 1.9), len(results) * (0.55 * n + 1.9)))
    for row, (dataset, (baseline, poster)) in zip(axes, results.items()):
        _comparison_row(row, baseline, poster, None, names, dataset)
    fig.suptitle("Row-normalised confusion matrices (%), as in the supplement's Figure 2", fontsize=11)
    return finish(fig, save)
