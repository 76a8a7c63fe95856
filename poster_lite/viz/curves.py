"""Numbers over time and over settings: training curves, per-class accuracy, ablations.

Ablation plots put the paper's numbers (supplement Tables 1, 2 and 4) in their own
panel beside ours: the paper trains full POSTER on RAF-DB, we usually train the nano
model on SynthFER, so the two y-axes are not comparable. The trend is what should
(or should not) carry over.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .common import class_names, finish, new_figure

# Paper numbers on RAF-DB (accuracy and mean class accuracy, %), from the supplement.
PAPER_ABLATIONS = {
    "depth": dict(
        source="Tables 3/4 (RAF-DB; Fig. 1 plots more depths but prints no values)",
        x=[4, 6, 8], accuracy=[91.36, 91.54, 92.05], mean_class_accuracy=None,
        affectnet7=[66.86, 67.13, 67.31], xlabel="pyramid blocks (depth)"),
    "pyramid": dict(
        source="Table 1 (RAF-DB)",
        x=[1, 2, 3, 4], accuracy=[91.63, 91.77, 92.05, 92.04], mean_class_accuracy=[85.01, 85.49, 86.03, 85.97],
        labels=["[512]", "[512,256]", "[512,256,128]", "[512,256,\n128,64]"], xlabel="pyramid levels"),
    "swap_depth": dict(
        source="Table 2 (RAF-DB)",
        x=[0, 1, 2, 4, 8], accuracy=[91.27, 91.68, 91.89, 91.91, 92.05],
        mean_class_accuracy=[85.66, 85.71, 85.88, 85.86, 86.03], xlabel="blocks that swap queries"),
    "streams": dict(
        source="Table 4 (RAF-DB)",
        x=[0, 1, 2, 3], accuracy=[90.51, 91.36, 91.54, 92.05], mean_class_accuracy=None,
        affectnet7=[65.35, 66.86, 67.13, 67.31],
        labels=["image only\n(8 blocks)", "POSTER-T", "POSTER-S", "POSTER"], xlabel="model"),
}
HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_macc", "lr")


def _percent(values) -> np.ndarray:
    """Fractions (all <= 1) become percentages; percentages stay."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    return values * 100 if finite.size and finite.max() <= 1.0 else values


def load_history(history) -> pd.DataFrame:
    """A history table from a DataFrame, a list of per-epoch dicts, or a CSV/JSON file."""
    if isinstance(history, (str, Path)):
        path = Path(history)
        if not path.exists():
            raise FileNotFoundError(f"no training history at {path}")
        history = pd.read_json(path) if path.suffix == ".json" else pd.read_csv(path)
    frame = pd.DataFrame(history)
    if "epoch" not in frame:
        frame = frame.assign(epoch=np.arange(1, len(frame) + 1))
    return frame


def plot_history(history, title: str = "", save=None):
    """Loss, accuracy (train, val, val mean class) and learning rate per epoch; best val epoch marked."""
    frame = load_history(history)
    fig, axes = new_figure(1, 3, (13, 3.6))
    loss, accuracy, rate = axes[0]
    for column, style in (("train_loss", "-"), ("val_loss", "--")):
        if column in frame:
            loss.plot(frame["epoch"], frame[column], style, marker="o", markersize=3, label=column.replace("_", " "))
    for column, style in (("train_acc", "-"), ("val_acc", "--"), ("val_macc", ":")):
        if column in frame:
            label = {"train_acc": "train acc.", "val_acc": "val acc.", "val_macc": "val mean class acc."}[column]
            accuracy.plot(frame["epoch"], _percent(frame[column]), style, marker="o", markersize=3, label=label)
    if "val_acc" in frame and frame["val_acc"].notna().any():
        best = frame.loc[frame["val_acc"].idxmax()]
        for ax in (loss, accuracy):
            ax.axvline(best["epoch"], color="grey", linestyle=":", linewidth=1)
        accuracy.set_title(f"best val accuracy {_percent([best['val_acc']])[0]:.1f} % at epoch "
                           f"{int(best['epoch'])} (dotted line)", fontsize=9)
    if "lr" in frame:
        rate.plot(frame["epoch"], frame["lr"], marker="o", markersize=3, color="#6a51a3")
        if (frame["lr"] > 0).all():
            rate.set_yscale("log")
    for ax, name in ((loss, "loss"), (accuracy, "accuracy (%)"), (rate, "learning rate")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    return finish(fig, save)


def plot_per_class_accuracy(results, classes=None, save=None):
    """Bars of accuracy per class; `results` is one evaluate() dict or {name: evaluate() dict}.

    Dashed lines give each model's mean class accuracy (the paper's mAcc).
    """
    runs = {"model": results} if "per_class_accuracy" in results else dict(results)
    first = next(iter(runs.values()))
    names = list(classes or first.get("classes") or class_names(None, len(first["per_class_accuracy"])))
    fig, axes = new_figure(1, 1, (max(6.0, 0.9 * len(names) * max(1, len(runs)) ** 0.5 + 2), 3.8))
    ax = axes[0, 0]
    width = 0.8 / len(runs)
    colours = ["#9ecae1", "#08519c", "#fd8d3c", "#31a354"]
    for k, (name, result) in enumerate(runs.items()):
        values = _percent(result["per_class_accuracy"])
        positions = np.arange(len(names)) - 0.4 + width * (k + 0.5)
        colour = colours[k % len(colours)]
        # A class without test samples has no accuracy (NaN): no bar, "n/a", left out of mAcc.
        mean = float(np.nanmean(values))
        bars = ax.bar(positions, np.nan_to_num(values), width, label=f"{name} (mAcc {mean:.1f} %)", color=colour)
        ax.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.0f}" for v in values], fontsize=7, padding=1)
        ax.axhline(mean, color=colour, linestyle="--", linewidth=1)
    ax.set_xticks(np.arange(len(names)), names, rotation=20)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 109)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_title("Accuracy per class (dashed: mean class accuracy)", fontsize=10)
    return finish(fig, save)


def _ours_table(ours, setting: str) -> pd.DataFrame:
    """Our results as rows x, accuracy, mean_class_accuracy (means over repeats) and spreads.

    `ours`: {setting value: accuracy | evaluate() dict}, or a DataFrame with a column
    named after the setting (or "x") and "accuracy" (repeated rows = several seeds).
    """
    if isinstance(ours, pd.DataFrame):
        frame = ours.rename(columns={setting: "x"}) if setting in ours else ours.copy()
        if "x" not in frame or "accuracy" not in frame:
            raise ValueError(f"the results table needs a {setting!r} (or 'x') column and an 'accuracy' column; "
                             f"it has {list(ours.columns)}")
    else:
        rows = []
        for x, value in dict(ours).items():
            if isinstance(value, dict):
                rows.append(dict(x=x, accuracy=value["accuracy"],
                                 mean_class_accuracy=value.get("mean_class_accuracy", np.nan)))
            else:
                rows.append(dict(x=x, accuracy=value, mean_class_accuracy=np.nan))
        frame = pd.DataFrame(rows)
    if "mean_class_accuracy" not in frame:
        frame["mean_class_accuracy"] = np.nan
    frame = frame.assign(accuracy=_percent(frame["accuracy"]),
                         mean_class_accuracy=_percent(frame["mean_class_accuracy"]))
    if setting == "pyramid":
        frame["label"] = frame["x"].map(lambda dims: "[" + ",".join(str(d) for d in dims) + "]"
                                        if isinstance(dims, (tuple, list)) else str(dims))
        frame["x"] = frame["x"].map(lambda dims: len(dims) if isinstance(dims, (tuple, list)) else dims)
    else:
        frame["label"] = frame["x"].astype(str)
    grouped = frame.groupby("x", sort=True)
    table = grouped[["accuracy", "mean_class_accuracy"]].mean()
    table["accuracy_std"] = grouped["accuracy"].std().fillna(0)
    table["label"] = grouped["label"].first()
    table["runs"] = grouped.size()
    return table.reset_index()


def plot_ablation(ours, setting: str, dataset: str = "ours", title: str = "", save=None):
    """Accuracy vs one setting: the paper's numbers (left) beside ours (right).

    `setting`: "depth" (Fig. 1 / Table 4), "pyramid" (Table 1; keys are the
    pyramid_dims tuples), "swap_depth" (Table 2) or "streams" (Table 4). `ours` may
    be None to show the paper alone. Error bars: standard deviation over repeats.
    """
    if setting not in PAPER_ABLATIONS:
        raise ValueError(f"unknown ablation {setting!r}; choose one of {', '.join(PAPER_ABLATIONS)}")
    paper = PAPER_ABLATIONS[setting]
    fig, axes = new_figure(1, 2 if ours is not None else 1, (11 if ours is not None else 5.6, 3.8))
    ax = axes[0, 0]
    ax.plot(paper["x"], paper["accuracy"], "o-", color="#08519c", label="accuracy")
    for x, y in zip(paper["x"], paper["accuracy"]):
        ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    if paper["mean_class_accuracy"]:
        ax.plot(paper["x"], paper["mean_class_accuracy"], "s--", color="#fd8d3c", label="mean class acc.")
    if paper.get("affectnet7"):
        ax.plot(paper["x"], paper["affectnet7"], "^:", color="#31a354", label="AffectNet-7 acc.")
    ax.set_title(f"paper: {paper['source']}", fontsize=9)
    ax.set_xticks(paper["x"], paper.get("labels", [str(x) for x in paper["x"]]), fontsize=8)
    if ours is not None:
        table = _ours_table(ours, setting)
        mine = axes[0, 1]
        mine.errorbar(table["x"], table["accuracy"], yerr=table["accuracy_std"], fmt="o-", color="#08519c",
                      capsize=3, label="accuracy")
        for x, y in zip(table["x"], table["accuracy"]):
            mine.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(5, 5), ha="left", fontsize=7)
        if table["mean_class_accuracy"].notna().any():
            mine.plot(table["x"], table["mean_class_accuracy"], "s--", color="#fd8d3c", label="mean class acc.")
        low, high = int(table["runs"].min()), int(table["runs"].max())
        runs = "" if high == 1 else (f" (mean of {high} runs)" if low == high else f" (mean of {low} to {high} runs per point)")
        mine.set_title(f"ours: {dataset}" + runs, fontsize=9)
        mine.set_xticks(table["x"], table["label"], fontsize=8)
    for a in axes[0]:
        a.set_xlabel(paper["xlabel"])
        a.set_ylabel("accuracy (%)")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
        low, high = a.get_ylim()
        a.set_ylim(low, high + 0.08 * (high - low))
    fig.suptitle(title or f"Ablation: {paper['xlabel']}", fontsize=11)
    return finish(fig, save)
