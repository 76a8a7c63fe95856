# %% [markdown]
# # 07 · Ablations: which parts of POSTER matter?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/poster-lite/poster-lite/blob/main/notebooks/07_ablations.ipynb)
#
# > The supplement's ablations (pyramid levels, swap depth, depth, image-only vs cross-fusion) rerun at nano scale on SynthFER, shown beside the paper's numbers, with an honest reading of what agrees, what does not, and what is noise.
#
# The POSTER paper justifies each of its design choices with an ablation: take the full model,
# change one thing, train again, compare. Table 1 varies the number of pyramid levels, Table 2
# how many blocks swap queries between the streams, Figure 1 (with Tables 3 and 4) the number of
# blocks, and Table 4 compares the two-stream model with a single-stream, image-only transformer.
# This notebook reruns all four at a scale a laptop can afford, puts our numbers beside theirs,
# and asks the question every ablation table should answer first: is the difference bigger than
# the noise?
#
# **Learning goals.** After this notebook you can
# 1. state the protocol that makes an ablation fair (one change, same seed, data, epochs and
#    model selection, the test set used once) and why each part matters;
# 2. read the supplement's Tables 1, 2, 4 and Figure 1 and say what each claims;
# 3. estimate the noise of a test accuracy (binomial standard error, seed-to-seed spread) and
#    decide whether a difference is a finding;
# 4. explain why a trend at nano scale on synthetic faces can differ from the paper's at full
#    scale on RAF-DB, and rerun any row yourself.
#
# Time: about one lab hour. The grid of trainings ships as small JSON files (training it takes
# longer than a lab); in its default mode this notebook only reads them (seconds). Set
# `RETRAIN = 1` to retrain one row live (it first computes the frozen backbone features: minutes).

# %% tags=["parameters"]
# Parameters: papermill and `make tour` override these (tools/tour.py -p NAME=VALUE).
SMOKE = 0                   # 1: the quickest run that still touches every cell (what the tests run)
DEVICE = "auto"             # "auto" (a GPU if there is one), "cpu" or "cuda"
DATA = "synthfer"           # the grid and the live row use SynthFER (real data sets: section 6)
PROTOCOL = "frozen-features"  # the grid to read: "frozen-features" (the teaching variant) or "paper" (where shipped)
LIVE_ROW = "image-only-nano"  # which row of the grid to retrain live (see the table of rows)
RETRAIN = 0                 # size knob: 1 retrains LIVE_ROW live (computes the frozen features first, minutes)
RESULTS = ""               # "": the grid shipped inside poster-lite (`make ablations` adds to it); or a grid file's path

# %%
# Setup. On Colab this installs poster-lite from an archive of the project's repository (or
# whatever pip requirement $POSTER_LITE_INSTALL names: a wheel, a tag's archive, a fork);
# locally, `make lab` has already installed it into the project's .venv.
import os
import sys

if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", os.environ.get(
        "POSTER_LITE_INSTALL", "https://github.com/poster-lite/poster-lite/archive/refs/heads/main.zip")], check=True)
    # Keep SynthFER and trained models on your Drive across runtimes (uncomment; Colab asks for access):
    # from google.colab import drive; drive.mount("/content/drive"); os.environ["POSTER_LITE_DATA"] = "/content/drive/MyDrive/poster-lite"

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from IPython.display import Image as PNG

import poster_lite as pl
from poster_lite import ablation, evidence, lab_checks
from poster_lite.complexity import PAPER
from poster_lite.data.labels import RAF_DB_COUNTS
from poster_lite.viz.curves import PAPER_ABLATIONS, plot_ablation

# Seed, device ("auto": a GPU if there is one) and runs/07_ablations/ for this notebook's figures and results.
device, ROOT, RUN_DIR = pl.notebook.setup("07_ablations", DEVICE, seed=0)
print(f"SMOKE={SMOKE}")

# %% [markdown]
# ## 1 · What makes an ablation fair
#
# An ablation changes **one** thing and keeps everything else fixed: the same training images,
# the same number of epochs, the same learning rate and augmentation, the same random seed for
# the weights and the data order, the same rule for picking the epoch to report, and a test set
# that is looked at once, at the end. Each of these matters:
#
# - *Seed.* Two trainings that differ only in their seed can end points apart on small data
#   (section 2 measures it for this grid). Without a fixed seed (better: several seeds), a small
#   gain could be luck.
# - *Model selection.* POSTER's release reports the best test accuracy over all epochs, which is
#   the maximum of many noisy numbers, so it flatters every row, and the rows with the noisiest
#   curves most. Here every row picks its epoch on the validation split and is tested once.
# - *Budget.* A bigger model trained for the same number of epochs may simply not have converged,
#   and two rows that converge at different speeds compare their speeds, not their capacities,
#   unless both have stopped improving. So every row here trains **until its validation accuracy
#   stops improving** (early stopping: a patience of a few epochs, within a cap of epochs); each
#   run records whether it stopped by patience (converged) or at the cap (not converged).
#
# The grid is trained by `tools/ablations.py` (**`make ablations` adds to it, one row and seed at
# a time**, so it can run in parts and resume). The base model is poster-nano at **4 blocks** (its
# preset has 2; 4 makes swap depths 0, 1, 2 and 4 all meaningful), and every row changes one field:
#
# | paper | what changes | paper (full POSTER, RAF-DB) | ours (poster-nano, SynthFER) |
# |---|---|---|---|
# | Table 1 | pyramid levels | [512], [512,256], [512,256,128], [512,256,128,64] | [128], [128,64], [128,64,32], [128,64,32,16] |
# | Table 2 | blocks that swap queries | 0, 1, 2, 4, 8 of 8 | 0, 1, 2, 4 of 4 |
# | Figure 1 | blocks (depth) | 4, 6, 8 (values printed in Tables 3/4) | 1, 2, 4, 6 |
# | Table 4 | landmark stream | image-only (8 blocks) vs POSTER-T/S/L | image-only-nano vs poster-nano, 4 blocks each |
#
# **Two protocols, each in its own file.** Every one of these ablations changes the fusion
# transformer and leaves the backbones alone. The paper still fine-tunes IR-50 in every row
# (*paper protocol*: landmark backbone frozen, image backbone fine-tuned, the whole model trained on
# images). On a 2-core CPU that fine-tuning is most of each training step, and one row-seed takes
# hours. The *frozen-feature protocol* is the fast teaching variant: the nano backbones
# *pretrained* in notebook 02 (identity for IR-50, landmarks for MobileFaceNet) are **both frozen**,
# their feature maps computed once (a few augmented views of each training face), and each row
# trains exactly the part it changes (image projection, pyramid fusion, SE gate and head) with the
# recipe's loss, optimiser and schedule (CE + LSCE, Adam, exponential decay; SAM off). That buys
# all training faces, all test faces and three seeds per row. What it costs: a row cannot improve
# its image features for its own fusion, so a trend that depends on fine-tuning would not show
# here. `PROTOCOL` picks the file; the cell below says which protocol, precision, seeds and
# convergence every number below comes from, and which rows are still missing.

# %%
# The grids ship inside the package (poster_lite/shipped/, read through importlib.resources), so a
# pip-installed poster-lite (Colab) has them too. Reading them is all this notebook computes by default.
GRID_FILES = {"frozen-features": "ablations_nano_frozen.json", "paper": "ablations_nano_paper.json"}
if PROTOCOL not in GRID_FILES:
    raise ValueError(f"PROTOCOL must be one of {list(GRID_FILES)}, got {PROTOCOL!r}")
grids = {protocol: evidence.shipped_results(name) for protocol, name in GRID_FILES.items()}
for protocol, shipped_grid in grids.items():
    done = len(shipped_grid.get("runs", []))
    print(f"{GRID_FILES[protocol]} ({protocol} protocol): "
          + (f"{done} trained (row, seed) pairs" if done else "not shipped yet (no row trained with it)"))
if RESULTS:
    results_name, grid = Path(RESULTS).name, json.loads(Path(RESULTS).read_text())
else:
    results_name, grid = GRID_FILES[PROTOCOL], grids[PROTOCOL]
    if not grid.get("runs") and PROTOCOL != "frozen-features":
        print(f"no {PROTOCOL} rows are shipped; reading the frozen-features grid instead")
        results_name, grid = GRID_FILES["frozen-features"], grids["frozen-features"]


def earlier_grid(earlier: dict) -> dict:
    """The earlier grid (ablations_nano.json: every row a fixed number of epochs, no early stopping, no
    per-face results) in the shape of the new files, labelled as what it is."""
    old = earlier["settings"]
    runs = [dict(r, stopped_by="max_epochs", epochs_trained=len(r["history"])) for r in earlier["runs"]]
    rows = {}
    for r in runs:
        rows.setdefault(r["row"], []).append(r)
    walls = [r["wall_s"] for r in runs]
    missing = [{"row": row_id, "seeds": [s for s in (0, 1, 2) if s not in {r["seed"] for r in rows.get(row_id, [])}]}
               for row_id in ablation.ROW_IDS]
    missing = [m for m in missing if m["seeds"]]
    return {**earlier, "runs": runs, "differences_vs_full_model": {}, "missing": missing,
            "settings": {**old, "protocol": f"frozen-features, a fixed {old['epochs']} epochs (earlier grid)",
                         "max_epochs": old["epochs"], "patience": None, "base": "poster-nano, depth 4"},
            "rows": {k: {"seeds": sorted(r["seed"] for r in v),
                         "test_accuracy_mean": evidence.seed_summary([r["test_accuracy"] for r in v])["mean"],
                         "test_accuracy_spread": evidence.seed_summary([r["test_accuracy"] for r in v])["spread"],
                         "stopped_by": [r["stopped_by"] for r in v], "epochs_trained": [r["epochs_trained"] for r in v]}
                     for k, v in rows.items()},
            "time": {"total_wall_s": sum(walls), "mean_wall_s_per_row_seed": sum(walls) / len(walls),
                     "row_seeds_missing": sum(len(m["seeds"]) for m in missing),
                     "missing_estimate_h": sum(len(m["seeds"]) for m in missing) * sum(walls) / len(walls) / 3600}}


if not grid.get("runs"):
    from poster_lite.shipped import ablation_results

    print(f"{results_name} has no trained rows yet: reading the EARLIER grid (ablations_nano.json: a fixed number of "
          "epochs, no early stopping, so NOT converged by construction, and no per-face results, so no paired "
          "intervals or verdicts). `make ablations` trains the early-stopped grid.")
    results_name, grid = "ablations_nano.json", earlier_grid(ablation_results())
settings = grid["settings"]
protocol_label = f"{settings['protocol']} protocol"
print(f"\nreading {results_name}: {len(grid['runs'])} trained (row, seed) pairs, first made {grid['date'][:10]} on "
      f"{grid['machine']['cpu_count']} CPU cores ({grid['machine']['gpu'] or 'no GPU'}), commit {grid['git_commit'][:12]}")
print(f"regenerate / add rows with: {grid['regenerate']}")
stopping = (f"early stopping after {settings['patience']} without a better validation accuracy" if settings["patience"]
            else "no early stopping")
print(f"every row: at most {settings['max_epochs']} epochs, {stopping}, Adam lr {settings['lr']}, CE + LSCE, "
      f"SAM {'on' if settings['sam'] else 'off'}, "
      f"precision {settings['precision']}; {settings['n_train']} training faces, {settings['n_test']} test faces")
timing = grid["time"]
print(f"measured: {timing['mean_wall_s_per_row_seed'] / 60:.1f} min of training per (row, seed) on average, "
      f"{timing['total_wall_s'] / 60:.0f} min in all")
print("\n" + grid["protocol_note"])
if grid["missing"]:
    print(f"\nMISSING from the full grid ({timing['row_seeds_missing']} (row, seed) pairs, about "
          f"{timing['missing_estimate_h']:.1f} h more at the measured mean): "
          + "; ".join(f"{m['row']} seeds {m['seeds']}" for m in grid["missing"]))

runs = pd.DataFrame([{k: v for k, v in run.items() if k not in ("history", "test_correct")} for run in grid["runs"]])
runs["test acc (%)"] = 100 * runs["test_accuracy"]
runs["test mAcc (%)"] = 100 * runs["test_mean_class_accuracy"]
runs[["row", "seed", "test acc (%)", "test mAcc (%)", "best_epoch", "epochs_trained", "stopped_by", "params",
      "wall_s"]].round(1)

# %% [markdown]
# ### What each part buys: plain baselines beside POSTER
#
# Before any ablation, the question a student should ask first: does the whole model beat what a
# much simpler one does on the same data? The table puts side by side, each on SynthFER's test
# split: SynthFER's calibration baselines (a small plain CNN on the images, and a small MLP on the
# 68 landmarks, true ones and those the frozen MobileFaceNet predicts) trained with the same
# early-stopping rule over 3 seeds (`poster_lite/shipped/baselines_nano.json`, `make baselines`), the
# two shipped end-to-end nano models (one training each, from their manifest) and the grid's
# Table 4 rows (mean over seeds). "spread" is the standard deviation over seeds.

# %%
shipped_metas = {name: pl.trained_model(name, source="shipped").meta for name in ("poster-nano", "image-only-nano")}
baselines = evidence.shipped_results(evidence.BASELINES_FILE)
every_model = pd.DataFrame(evidence.evidence_rows(baselines, shipped_metas))
for row_id, label in (("poster-nano-d4", "poster-nano, 4 blocks"), ("image-only-nano", "image-only-nano, 4 blocks")):
    summary = grid["rows"].get(row_id)
    if summary:
        every_model.loc[len(every_model)] = {
            "model": f"{label} ({protocol_label})", "seeds": len(summary["seeds"]),
            "test acc (%)": 100 * summary["test_accuracy_mean"], "spread (pts)": 100 * summary["test_accuracy_spread"],
            "epochs": "/".join(map(str, summary["epochs_trained"])), "stopped by": "/".join(summary["stopped_by"]),
            "convergence": evidence.convergence_state(summary["stopped_by"]), "source": results_name}
every_model = every_model.sort_values("test acc (%)", ascending=False).reset_index(drop=True)
every_model.round(1)

# %%
trained = every_model[every_model["seeds"] > 0]
if len(trained):
    top = trained.iloc[0]
    print(f"best model on SynthFER's test faces: {top['model']}, {top['test acc (%)']:.1f} % ({top['source']})")
    cnn_rows = trained[trained["model"].str.startswith("small CNN")]
    if len(cnn_rows):
        cnn = cnn_rows.iloc[0]
        poster_row = trained[trained["model"] == "poster-nano"]
        if len(poster_row):
            gap = poster_row.iloc[0]["test acc (%)"] - cnn["test acc (%)"]
            print(f"shipped poster-nano minus the plain CNN: {gap:+.1f} points "
                  f"({'POSTER ahead' if gap > 0 else 'the plain CNN ahead'}; poster-nano: "
                  f"{poster_row.iloc[0]['convergence']})")

# %% [markdown]
# Read the settings and the protocol note before any number. Every row of one grid saw the same
# data, recipe and stopping rule, and each seed the same initial weights and data order across
# rows. Nothing here is the paper's setting (nano models, drawn faces): the question is which of
# the paper's trends show at this scale, and which are too small to show at all.
#
# ## 2 · How big is the noise?
#
# Before comparing rows, estimate how much a row's accuracy would move if nothing changed.
# Two sources:
#
# - **The test sample.** A model with true accuracy $p$ scores a binomial fraction on $n$ test
#   images; its standard error is $\sqrt{p(1-p)/n}$.
# - **The seed.** Another seed gives other initial weights and another data order. With three
#   seeds per row, the spread is measured directly.
#
# Two rows whose accuracies differ by less than about twice the standard error of a difference
# ($\sqrt{2}$ times one row's) cannot be told apart by the test sample alone: a rough bar. The
# verdicts of section 5 use the better tool, a **paired** interval: both rows were scored on the
# same test faces and paired by seed, so `tools/ablations.py` resamples seeds and faces together
# (a bootstrap) and keeps the 95 % interval of the difference in the grid file.
#
# One more thing to check: **did the rows converge?** Each run trained until its validation
# accuracy had not improved for `patience` epochs, or until the cap. The table lists, per run, the
# best epoch, the epochs trained and what stopped it; a run stopped by the cap was still
# improving, and comparing it with a converged row measures partly how fast each learns.

# %%
def standard_error(p: float, n: int) -> float:
    """Binomial standard error of an accuracy p measured on n independent test images."""
    return math.sqrt(p * (1 - p) / n)


typical = runs["test_accuracy"].mean()
one_row = standard_error(typical, settings["n_test"])
bar = 2 * math.sqrt(2) * one_row
print(f"mean test accuracy over the grid: {typical:.1%} (chance: {1 / 7:.1%}) on n_test = {settings['n_test']} faces")
print(f"standard error of one row: {one_row * 100:.1f} points; a rough bar for a difference: ~{bar * 100:.1f} points")
seed_spread = runs.groupby("row")["test_accuracy"].std().dropna()
if len(seed_spread):
    print(f"seed-to-seed spread (std over seeds, mean over {len(seed_spread)} rows with several seeds): "
          f"{seed_spread.mean() * 100:.1f} points")
else:
    print("one seed per row: no seed spread measured (the test-sample error above is a lower bound on the noise)")


def convergence(run: dict) -> dict:
    """Best epoch, epochs trained and what stopped one run (a grid run or a run_row result)."""
    val = [100 * h["val_acc"] for h in run["history"]]
    return {"row": run.get("row", "live"), "seed": run["seed"], "best epoch": run["best_epoch"],
            "epochs": len(val), "val first→best (%)": f"{val[0]:.1f} → {max(val):.1f}",
            "stopped by": run.get("stopped_by") or "not recorded",
            "at the end": "converged" if run.get("stopped_by") == "patience" else "NOT converged (hit the cap)"}


converged = pd.DataFrame([convergence(run) for run in grid["runs"]])
converged

# %% [markdown]
# ### Exercise 1 · How many test faces does a finding need?
# Turn the bar around: given the gap you hope to see between two rows and their accuracy, how
# large must the test set be? Write `test_faces_needed(gap, accuracy)` (both fractions, e.g.
# `0.0085` for 0.85 points) returning the smallest whole number $n$ of test faces for which
# $2\sqrt{2}\,\sqrt{p(1-p)/n} \le$ `gap`. The check tries several gaps and accuracies and names
# the usual slips.

# %% tags=["solution"]
def test_faces_needed(gap, accuracy):
    """Smallest n with 2 * sqrt(2) * sqrt(p (1 - p) / n) <= gap (gap and accuracy as fractions)."""
    n = math.ceil(8 * accuracy * (1 - accuracy) / gap ** 2)
    while n > 1 and 2 * math.sqrt(2) * math.sqrt(accuracy * (1 - accuracy) / (n - 1)) <= gap:
        n -= 1                                    # guard against rounding in the division
    return n

# %% tags=["check"]
lab_checks.check_test_faces_needed(test_faces_needed)

# %% [markdown]
# ## 3 · The four ablations beside the paper
#
# Each table lists our rows (test accuracy and mean class accuracy in %, parameters, training
# seconds) next to the paper's numbers on RAF-DB for the matching setting, and each figure puts
# the paper's curve (left) beside ours (right). The two y-axes are **not** comparable: full
# POSTER with pretrained backbones on real faces against a nano model trained for minutes on
# drawn ones. Compare the shapes. Below each, the verdict on the difference to the full model,
# computed from the grid file's paired interval, seeds and convergence
# (`poster_lite.evidence.verdict`); a row not trained yet says "missing".

# %%
def ours_for(ablation: str) -> pd.DataFrame:
    """Our rows that stand for a value of `ablation` (the base row stands for one value of each)."""
    rows = []
    for run in grid["runs"]:
        if ablation in run["ablations"]:
            value = run["ablations"][ablation]
            rows.append({"x": tuple(value) if isinstance(value, list) else value, "seed": run["seed"],
                         "accuracy": run["test_accuracy"], "mean_class_accuracy": run["test_mean_class_accuracy"],
                         "params": run["params"], "wall_s": run["wall_s"]})
    return pd.DataFrame(rows)


def side_by_side(ablation: str, ours_key, paper_key, paper_x, paper_values, paper_macc=None) -> pd.DataFrame:
    """Our mean over seeds per setting, merged with the paper's numbers on a shared key."""
    ours = ours_for(ablation)
    if ours.empty:
        return pd.DataFrame()
    ours = ours.groupby("x", sort=False).agg(acc=("accuracy", "mean"), acc_std=("accuracy", "std"),
                                              macc=("mean_class_accuracy", "mean"), seeds=("seed", "count"),
                                              params=("params", "first"), wall_s=("wall_s", "mean")).reset_index()
    ours["key"] = ours["x"].map(ours_key)
    paper = pd.DataFrame({"key": [paper_key(x) for x in paper_x], "paper acc (%)": paper_values,
                          "paper mAcc (%)": paper_macc or [np.nan] * len(paper_x)})
    table = ours.merge(paper, on="key", how="outer").sort_values("key", key=lambda k: k.map(str))
    table = table.rename(columns={"x": "ours: setting", "acc": "ours acc (%)", "macc": "ours mAcc (%)",
                                  "acc_std": "ours spread (pts)"})
    for column in ("ours acc (%)", "ours mAcc (%)", "ours spread (pts)"):
        table[column] = 100 * table[column]
    return table.set_index("key").round(2)


def difference_verdict(row_id: str) -> str:
    """The grid's verdict on poster-nano (4 blocks) minus `row_id`: paired interval, seeds, convergence."""
    difference = grid["differences_vs_full_model"].get(row_id)
    if difference is None and row_id in grid["rows"]:
        return (f"{grid['settings']['base']} minus {row_id}: no verdict (this file keeps no per-face results, so no "
                "paired interval; its rows were not converged)")
    if difference is None:
        missing = next((m["seeds"] for m in grid["missing"] if m["row"] == row_id), [])
        return f"{grid['settings']['base']} minus {row_id}: missing (seeds {missing} not trained yet)"
    return f"{difference['what']}: {difference['sentence']}"


def plot_rows(ablation: str, name: str, rows=None, decorate=None, **kw):
    """Our rows of one ablation beside the paper's, saved and shown (or why there is no plot)."""
    rows = ours_for(ablation) if rows is None else rows
    if rows.empty:
        print(f"no rows of the {ablation} ablation in {results_name} yet (missing): `make ablations` trains them")
        return None
    fig = plot_ablation(rows, ablation, **kw)
    if decorate is not None:
        decorate(fig)
    return save_and_show(fig, name)


def save_and_show(fig, name: str):
    """Mark chance and the noise bar on our panel, save under RUN_DIR, show the saved PNG.

    Without them a tight y-axis makes a difference of a point look like a cliff.
    """
    ours_axis = fig.axes[1]
    low, high = ours_axis.get_ylim()
    ours_axis.axhline(100 / 7, color="grey", ls=":", lw=1, label="chance (1 in 7)")
    ours_axis.set_ylim(min(low, 100 / 7) - 100 * bar, max(high, 100 / 7) + 100 * bar)
    ours_axis.text(0.02, 0.03, f"a difference needs > {100 * bar:.1f} points to be a finding", fontsize=7,
                   transform=ours_axis.transAxes, color="grey")
    ours_axis.legend(fontsize=8)
    fig.savefig(RUN_DIR / name, dpi=110)
    return PNG(filename=str(RUN_DIR / name))

# %% [markdown]
# ### Table 4 · Image only vs cross-fusion with landmarks
#
# The supplement's Table 4 is the paper's central claim: the same kind of transformer over image
# tokens alone (8 blocks) reaches 90.51 % on RAF-DB; adding the landmark stream with cross-fusion
# gives 91.36 % with only 4 blocks (POSTER-T) and 92.05 % with 8 (POSTER). Our version keeps the
# depth equal (4 blocks each), so the only change is the landmark stream.
#
# Below the grid's verdict, the "end to end" line gives the same comparison for the two shipped
# models, trained once each with the paper's protocol. The two protocols ask different questions:
# on frozen features the fusion can only combine what two fixed networks already extract, while a
# fine-tuned IR-50 can learn from the images what the landmark stream would have added. So they
# need not agree, and where they disagree the second is the one closer to the paper.

# %%
paper = PAPER_ABLATIONS["streams"]
streams = side_by_side(
    "streams", ours_key=lambda x: "cross-fusion, 4 blocks" if "4 blocks" in x and "poster" in x
    else ("image only" if "image-only" in x else "cross-fusion, 2 blocks"),
    paper_key=lambda x: ["image only", "cross-fusion, 4 blocks", "cross-fusion, 6 blocks", "cross-fusion, 8 blocks"][x],
    paper_x=paper["x"], paper_values=paper["accuracy"])
print("paper rows: image only has 8 blocks; cross-fusion rows are POSTER-T/S/L. Paper params (M):",
      {name: PAPER[name]["params"] for name in ("image-only", "poster-t", "poster-s", "poster-l")})
streams

# %%
ours_streams = ours_for("streams")
plot_streams = ours_streams.assign(x=ours_streams["x"].map(
    lambda s: 0 if "image-only" in s else (1 if "4 blocks" in s else 0.5))) if len(ours_streams) else ours_streams


def label_models(fig):
    ticks = sorted(plot_streams["x"].unique())
    names = {0: "image only\n(4 blocks)", 0.5: "cross-fusion\n(2 blocks)", 1: "cross-fusion\n(4 blocks)"}
    fig.axes[1].set_xticks(ticks, [names[x] for x in ticks], fontsize=8)
    fig.axes[1].set_xlabel("model")


plot_rows("streams", "table4_streams.png", rows=plot_streams, decorate=label_models,
          dataset=f"nano on SynthFER ({settings['n_test']} test faces)", title="Table 4: does the landmark stream help?")

# %%
def accuracy_of(ablation: str, value) -> float:
    table = ours_for(ablation)
    chosen = table[table["x"].map(lambda x: x == value)]
    return chosen["accuracy"].mean() if len(chosen) else float("nan")


def fixed_budget_table4() -> str:
    """Table 4 in the earlier grid (ablations_nano.json: a fixed 8 epochs, no early stopping), for comparison."""
    from poster_lite.shipped import ablation_results_file

    path = ablation_results_file(early_stopped=False)
    if not path.is_file():
        return ""
    earlier = json.loads(path.read_text())
    by_row = {name: [r for r in earlier["runs"] if r["row"] == name] for name in ("poster-nano-d4", "image-only-nano")}
    if not all(by_row.values()):
        return ""
    gap = 100 * (np.mean([r["test_accuracy"] for r in by_row["poster-nano-d4"]])
                 - np.mean([r["test_accuracy"] for r in by_row["image-only-nano"]]))
    at_last = {name: sum(r["best_epoch"] == len(r["history"]) for r in rs) for name, rs in by_row.items()}
    return (f"For comparison, the earlier grid ({path.name}: every row a fixed {earlier['settings']['epochs']} epochs, "
            f"no early stopping, {len(by_row['poster-nano-d4'])} seeds) put this gap at {gap:+.1f} points; there the "
            f"best epoch was the last one in {at_last['image-only-nano']} of {len(by_row['image-only-nano'])} image-only "
            f"runs and {at_last['poster-nano-d4']} of {len(by_row['poster-nano-d4'])} cross-fusion runs.")


fusion_gain = accuracy_of("streams", "poster-nano (4 blocks)") - accuracy_of("streams", "image-only-nano (4 blocks)")
print(difference_verdict("image-only-nano"))
print(fixed_budget_table4())
scored = {name: meta for name, meta in shipped_metas.items() if (meta.get("metrics") or {}).get("test_accuracy")}
if len(scored) == 2:
    (a, meta_a), (b, meta_b) = scored.items()
    acc_a, acc_b = (100 * m["metrics"]["test_accuracy"] for m in (meta_a, meta_b))
    print(f"end to end (the paper's protocol: landmark network frozen, IR-50 fine-tuned), the shipped models, one "
          f"training each: {a} ({meta_a['config']['depth']} blocks) {acc_a:.1f} % vs {b} "
          f"({meta_b['config']['depth']} blocks) {acc_b:.1f} %, {acc_a - acc_b:+.1f} points "
          f"(notebook 06 puts a paired interval on it)")
print(f"paper: POSTER-T minus image only {paper['accuracy'][1] - paper['accuracy'][0]:+.2f} points, "
      f"POSTER minus image only {paper['accuracy'][3] - paper['accuracy'][0]:+.2f} points (RAF-DB)")

# %% [markdown]
# ### Table 2 · How many blocks swap queries
#
# With `swap_depth = k` the first $k$ blocks use the other stream's tokens as queries
# (cross-fusion) and the rest attend within their own stream. The paper finds a small, steady
# gain from 0 to 8 swapping blocks (91.27 → 92.05 %), most of it from the first block.

# %%
paper = PAPER_ABLATIONS["swap_depth"]
swaps = side_by_side("swap_depth", ours_key=int, paper_key=int, paper_x=paper["x"],
                     paper_values=paper["accuracy"], paper_macc=paper["mean_class_accuracy"])
swaps

# %%
plot_rows("swap_depth", "table2_swap_depth.png", dataset="nano, 4 blocks, SynthFER",
          title="Table 2: blocks that swap queries")

# %%
for row_id in ("swap0", "swap1", "swap2"):
    print(difference_verdict(row_id))
print(f"paper: 8 minus 0 swapping blocks {paper['accuracy'][-1] - paper['accuracy'][0]:+.2f} points")

# %% [markdown]
# ### Figure 1 · Depth
#
# The paper's Figure 1 plots accuracy against the number of pyramid blocks; the values it prints
# (Tables 3 and 4) are 91.36, 91.54 and 92.05 % for 4, 6 and 8 blocks. Deeper is better there,
# with diminishing steps. Ours goes from 1 to 6 blocks.

# %%
paper = PAPER_ABLATIONS["depth"]
depths = side_by_side("depth", ours_key=int, paper_key=int, paper_x=paper["x"], paper_values=paper["accuracy"])
depths

# %%
plot_rows("depth", "figure1_depth.png", dataset="nano on SynthFER", title="Figure 1: depth")

# %%
for row_id in ("depth1", "depth2", "depth6"):
    print(difference_verdict(row_id))
print(f"paper: {paper['x'][-1]} minus {paper['x'][0]} blocks {paper['accuracy'][-1] - paper['accuracy'][0]:+.2f} points")

# %% [markdown]
# ### Table 1 · Pyramid levels
#
# Table 1 compares one level (512 only) with two, three and four (down to 64). Three levels is
# the paper's choice: +0.42 points over one level, and a fourth adds nothing (92.04 vs 92.05 %).
# Each extra level here costs little (the smaller embeddings are cheap), which the parameter
# column shows.

# %%
paper = PAPER_ABLATIONS["pyramid"]
pyramid = side_by_side("pyramid", ours_key=len, paper_key=int, paper_x=paper["x"],
                       paper_values=paper["accuracy"], paper_macc=paper["mean_class_accuracy"])
pyramid.index.name = "levels"
pyramid

# %%
plot_rows("pyramid", "table1_pyramid.png", dataset="nano, 4 blocks, SynthFER", title="Table 1: pyramid levels")

# %%
for row_id in ("pyramid1", "pyramid2", "pyramid4"):
    print(difference_verdict(row_id))
print(f"paper, accuracy by levels {paper['x']}: {paper['accuracy']}")

# %% [markdown]
# ## 4 · One row, live
#
# A shipped number is a claim; rerunning it is the check. With `RETRAIN = 1` the next cell
# retrains one row of the frozen-feature grid (`LIVE_ROW`) with exactly the shipped settings:
# `pl.ablation.cached_features` loads the frozen backbones' features (or computes them once, with a
# progress bar: minutes on a 2-core CPU), and `pl.ablation.run_row` trains the row's fusion part
# with the shipped recipe, seed and early-stopping rule. On the same machine and library versions
# it lands on the shipped number or within a hair of it (bf16 kernels differ between CPUs). By
# default (`RETRAIN = 0`) it computes nothing and shows the shipped run's epochs instead. In SMOKE
# mode it trains a tiny version on the features of 32 random faces, which only shows that the code
# runs. Any row id from the table above works, e.g. `swap0` or `depth6`.

# %%
shipped = next((run for run in grid["runs"] if run["row"] == LIVE_ROW), None)
if shipped is None:
    raise ValueError(f"LIVE_ROW={LIVE_ROW!r} is not a trained row of {results_name}; trained: "
                     f"{', '.join(dict.fromkeys(run['row'] for run in grid['runs']))}")
if RETRAIN and settings["protocol"] != "frozen-features":
    raise ValueError("RETRAIN retrains a frozen-feature row; a paper-protocol row takes hours on a CPU: "
                     "`python tools/ablations.py --protocol paper --rows ROW --seeds SEED` resumes into the grid")
live_result = None
if SMOKE:
    # the features of 32 random faces through a random nano model: runs every line, proves nothing
    torch.manual_seed(0)
    donor = pl.build_model("poster-nano").eval()
    labels = torch.arange(32) % 7
    packed = ablation._pack(donor, torch.randn(32, 3, 112, 112)).to(torch.bfloat16)
    classes = pl.data.load(DATA, split="test").classes
    features = {"train": ablation.FeatureSplit(packed[None], labels, classes),
                "val": ablation.FeatureSplit(packed[None], labels, classes),
                "test": ablation.FeatureSplit(packed[None], labels, classes)}
    live = dict(settings, max_epochs=1, batch_size=16, sam=False)
elif RETRAIN:
    features = ablation.cached_features("poster-nano", train_views=settings["train_views"], device=device)
    live = settings
if SMOKE or RETRAIN:
    started = time.perf_counter()
    live_result = ablation.run_row(LIVE_ROW, features, seed=shipped["seed"], epochs=live["max_epochs"],
                                   patience=live["patience"], batch_size=live["batch_size"], lr=live["lr"],
                                   sam=live["sam"], precision=live["precision"])
    live_seconds = time.perf_counter() - started
    live_test = live_result["test_accuracy"]
    print(f"{LIVE_ROW} ({shipped['model']}, {shipped['overrides']}), {'SMOKE-sized' if SMOKE else 'shipped settings'}: "
          f"test accuracy {live_test:.1%} in {live_seconds:.0f} s, stopped by {live_result['stopped_by']}")
    print(f"shipped: {shipped['test_accuracy']:.1%} in {shipped['wall_s']:.0f} s"
          + ("" if SMOKE else f"; live minus shipped {100 * (live_test - shipped['test_accuracy']):+.1f} points"))
    shown = live_result["history"]
else:
    print(f"{LIVE_ROW} seed {shipped['seed']} as shipped ({results_name}): test accuracy {shipped['test_accuracy']:.1%}, "
          f"best epoch {shipped['best_epoch']} of {shipped['epochs_trained']}, stopped by {shipped['stopped_by']}, "
          f"{shipped['wall_s']:.0f} s of training. Set RETRAIN = 1 to retrain it here.")
    shown = shipped["history"]
pd.DataFrame(shown)[["epoch", "train_loss", "train_acc", "val_acc", "val_macc"]].round(3)

# %% [markdown]
# ## 5 · Where we agree with the paper, and where not
#
# The cell below puts every comparison with the full model in one table: our paired difference
# (poster-nano at 4 blocks minus the row) with its 95 % interval over seeds and test faces, the
# seeds, the verdict (`evidence.verdict`: a finding, within the noise, not converged or too few
# seeds), and the paper's difference for the same change where the paper prints one. "Direction"
# says whether ours is a finding with the paper's sign ("holds"), a finding against it, or not
# established (then the verdict says why).

# %%
def paper_at(ablation: str, x) -> float:
    return PAPER_ABLATIONS[ablation]["accuracy"][PAPER_ABLATIONS[ablation]["x"].index(x)]


# (table, our row, the paper's full-model-minus-this-setting gap, or None where the paper prints no value)
COMPARISONS = [
    ("Table 4", "image-only-nano", paper_at("streams", 1) - paper_at("streams", 0)),     # POSTER-T vs image only
    ("Table 2", "swap0", paper_at("swap_depth", 4) - paper_at("swap_depth", 0)),
    ("Table 2", "swap1", paper_at("swap_depth", 4) - paper_at("swap_depth", 1)),
    ("Table 2", "swap2", paper_at("swap_depth", 4) - paper_at("swap_depth", 2)),
    ("Figure 1", "depth1", None), ("Figure 1", "depth2", None),
    ("Figure 1", "depth6", paper_at("depth", 4) - paper_at("depth", 6)),
    ("Table 1", "pyramid1", paper_at("pyramid", 3) - paper_at("pyramid", 1)),
    ("Table 1", "pyramid2", paper_at("pyramid", 3) - paper_at("pyramid", 2)),
    ("Table 1", "pyramid4", paper_at("pyramid", 3) - paper_at("pyramid", 4)),
]


def direction(difference: dict | None, paper_gap) -> str:
    if difference is None:
        return "missing"
    if paper_gap is None:
        return "no paper value"
    if difference["verdict"] != "finding":
        return f"not established ({difference['verdict']})"
    return "holds" if np.sign(difference["points"]) == np.sign(paper_gap) else "against the paper"


def comparison_row(table: str, row_id: str, paper_gap) -> dict:
    d = grid["differences_vs_full_model"].get(row_id)
    return {"table": table, "row": row_id, "ours (pts)": None if d is None else round(d["points"], 1),
            "95 % interval": "-" if d is None else f"[{d['low']:+.1f}, {d['high']:+.1f}]",
            "seeds": "-" if d is None else len(d["seeds"]), "verdict": "missing" if d is None else d["verdict"],
            "paper (pts)": None if paper_gap is None else round(paper_gap, 2), "direction": direction(d, paper_gap)}


verdicts = pd.DataFrame([comparison_row(*c) for c in COMPARISONS])
verdicts.to_csv(RUN_DIR / "verdicts.csv", index=False)
paper_gaps = {name: max(values["accuracy"]) - min(values["accuracy"]) for name, values in PAPER_ABLATIONS.items()}
for name, gap in paper_gaps.items():
    print(f"paper, {PAPER_ABLATIONS[name]['source']}: largest gap {gap:.2f} points")
raf_test = sum(RAF_DB_COUNTS["test"])             # RAF-DB's test images, from the release's split
print(f"one standard error on RAF-DB's {raf_test:,} test images at 92 %: {100 * standard_error(0.92, raf_test):.2f} points")
print(f"our rough noise bar (section 2): {100 * bar:.1f} points")
verdicts

# %% [markdown]
# **How to read it.** The lines above the table give the paper's largest gap per ablation and
# one standard error on RAF-DB's test set: the gaps of Tables 1 and 2 and of Figure 1 are below
# one point, only Table 4's are larger, so even the paper's own ablations sit close to their
# noise, and they are single runs. Our test set is smaller, so **a sub-point effect cannot show
# up here**, in either direction: an interval that holds zero is no evidence either way, not a
# contradiction of the paper. A "missing" row has not been trained yet (the grid runs in parts).
#
# The next cell writes what the grid file shows, with every number and verdict computed from it:
# add rows or seeds to the grid and the paragraph changes with it.

# %%
from IPython.display import Markdown


def what_the_grid_shows() -> str:
    done = grid["rows"]
    lines = [f"**What {results_name} shows** ({protocol_label}; {len(grid['runs'])} trained (row, seed) pairs over "
             f"{len(done)} of {len(ablation.ROW_IDS)} rows, {sum(len(r['seeds']) >= evidence.MIN_SEEDS for r in done.values())} "
             f"of them with {evidence.MIN_SEEDS} seeds or more; {stopping}, at most {settings['max_epochs']} epochs; "
             f"precision {settings['precision']}; "
             f"{timing['total_wall_s'] / 60:.0f} minutes of training):", ""]
    for table, row_id, paper_gap in COMPARISONS:
        d = grid["differences_vs_full_model"].get(row_id)
        if d is None:
            lines.append(f"- **{table}, {row_id}:** missing (not trained yet with this protocol).")
            continue
        paper_text = "" if paper_gap is None else f" The paper's difference for this change: {paper_gap:+.2f} points."
        lines.append(f"- **{table}, {d['what']}:** {d['sentence']}. Direction: {direction(d, paper_gap)}.{paper_text}")
    earlier = fixed_budget_table4()
    if earlier:
        lines += ["", earlier]
    if len(trained):
        top = trained.iloc[0]
        lines += ["", f"Beside the plain baselines (section 1): the best model on SynthFER is **{top['model']}** at "
                      f"{top['test acc (%)']:.1f} % ({top['source']})."]
    return "\n".join(lines)


Markdown(what_the_grid_shows())

# %% [markdown]
# Three things separate our setting from the paper's, and each can flip a trend:
#
# - **Scale and convergence.** Nano models on SynthFER's training faces, against the release's 300
#   epochs on RAF-DB's 12,271 training photographs. Early stopping makes each row train until it
#   stops improving *with its recipe*; the convergence table of section 2 says which did.
# - **Backbones.** Ours are nano networks pretrained on SynthFER for two epochs (the shipped
#   manifest, `poster_lite/shipped/manifest.json`, records their identity accuracy and landmark
#   NME); the paper's are a full IR-50 trained on MS-Celeb-1M and a MobileFaceNet trained for
#   landmark detection. The baselines table shows what that costs: an MLP on the landmarks our
#   frozen MobileFaceNet predicts against one on the true landmarks.
# - **Data.** SynthFER's expressions live in landmark geometry by construction (the MLP on true
#   landmarks in the baselines table), which favours a landmark stream, while its faces have less
#   texture than photographs.
#
# What carries over regardless is the accounting: the parameter columns show that extra pyramid
# levels and swapping are nearly free, while depth costs linearly, as in the supplement.

# %%
table4 = grid["differences_vs_full_model"].get("image-only-nano")
print(f"HEADLINE: nano ablations ({protocol_label}): cross-fusion minus image-only "
      + (table4["sentence"] if table4 else "missing")
      + f" (paper {paper_at('streams', 1) - paper_at('streams', 0):+.2f} at 4 blocks)")

# %% [markdown]
# ## Summary
#
# - A fair ablation changes one thing: same data, recipe, seed and stopping rule, the epoch chosen
#   on validation, the test set used once. Choosing epochs on the test set flatters every row.
# - Noise first: a test accuracy on $n$ images has a standard error of $\sqrt{p(1-p)/n}$; two rows
#   scored on the same faces and paired by seed get a paired interval (a bootstrap over seeds and
#   faces). A difference whose interval holds zero is no evidence either way.
# - Rows trained for a fixed number of epochs compare what each reached by then; early stopping
#   trains each row until it stops improving, and a row that hit its cap is labelled not converged.
# - A verdict is computed, not written: `poster_lite.evidence.verdict` turns the difference, its
#   interval, the seeds and the convergence state into "a finding", "within the noise", "not
#   converged" or "too few seeds".
# - Plain baselines come first: a POSTER that loses to a small CNN or a landmark MLP on the same
#   data has something to fix before its ablations mean much.
# - The frozen-feature grid freezes both pretrained backbones and trains only what each row
#   changes: fast enough for three seeds on a CPU, and a different question from the paper's
#   (fusion on given features, not with a fine-tuned IR-50). The paper protocol has its own file.
# - `make ablations` adds rows and seeds to the grid and resumes where it stopped; any
#   frozen-feature row reruns live from this notebook (`RETRAIN = 1`).
#
# ## Exercises
#
# 1. *(code, checked by `lab_checks` in section 2)* `test_faces_needed(gap, accuracy)`: the
#    test set a finding of a given size needs. Compare its answer for the paper's Table 4 gap at
#    4 blocks with the size of RAF-DB's test set: could the paper's own test set show that gap?
# 2. Train a missing row, or a fourth seed (`make ablations ABLATION_ARGS="--rows swap0
#    poster-nano-d4 --seeds 3"` merges them into the file), rerun this notebook and watch the
#    verdicts change. Compare the seed spread with the binomial standard error of section 2.
#    *Hint:* the seed spread also contains the test-sample noise, so it cannot be much smaller.
# 3. *(open)* The paper protocol: fine-tune IR-50 (`python tools/ablations.py --protocol paper
#    --rows image-only-nano poster-nano-d4 --seeds 0`, or `pl.ablation.run_row_end_to_end` on a
#    few hundred faces first). Read the time estimate pl.train prints after its first steps
#    before committing to a run. Does the landmark stream's gain grow or shrink when IR-50 adapts?
# 4. *(open)* Make `evidence.verdict` stricter: require the interval to exclude zero by a margin
#    (say 0.5 points). Which verdicts of section 5 change? *Hint:* the function is twenty lines;
#    its tests in `tests/test_evidence.py` show the cases it distinguishes.
# 5. Set `RETRAIN = 1` and `LIVE_ROW = "swap0"` and rerun section 4. Does the live number match
#    the shipped one?
