"""Verdicts from numbers: when is a difference between two models a finding?

A verdict sentence in a notebook ("a finding", "within the noise") must follow from the
numbers, so that rerunning with other results changes the sentence. Three things decide it:

- the interval of the paired difference (both models scored on the same test faces, paired
  by seed): does it exclude zero?
- the seeds: fewer than MIN_SEEDS trainings per model cannot separate a model from its seed;
- convergence: a run that stopped at its epoch cap (not by patience) was still improving, so a
  gap to a run that had converged may be a difference of speed at that budget, not of models.

    d = paired_difference(correct_a, correct_b)        # lists (one per seed) of 0/1 per test face
    verdict(d["points"], d["low"], d["high"], protocol="frozen features", seeds=3,
            stopped_by=["patience"] * 6)["sentence"]
    # 'a finding: +4.1 points [+2.0, +6.3], 3 seeds, converged (frozen features)'

Also here: the early-stopping rule every model of the evidence tables trains with, the
per-seed summary (mean and spread) and the bit strings that store which test faces a run got
right (so a paired interval can be recomputed from a results file).
"""
from __future__ import annotations

import math

import numpy as np

MIN_SEEDS = 3           # fewer trainings per model cannot tell a model from its seed
# The budget rule of every trained row (baselines, the ablation grid): early stopping on
# validation accuracy after PATIENCE epochs without a better one, within a cap of epochs that
# each tool sets for its models' cost and records. A run that reaches the cap is "not converged".
PATIENCE = 4


def seed_summary(values) -> dict:
    """{"n", "mean", "spread" (sample std over seeds; nan for one seed), "min", "max"} of per-seed values."""
    values = [float(v) for v in values]
    if not values:
        return {"n": 0, "mean": math.nan, "spread": math.nan, "min": math.nan, "max": math.nan}
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return {"n": len(values), "mean": float(np.mean(values)), "spread": spread,
            "min": min(values), "max": max(values)}


def convergence_state(stopped_by) -> str:
    """"converged" when every run stopped by patience, else "not converged: k of n runs ..."."""
    stopped_by = list(stopped_by)
    if not stopped_by:
        return "convergence not recorded"
    unknown = sum(s is None for s in stopped_by)
    capped = sum(s in ("max_epochs", "time_budget") for s in stopped_by)
    if unknown:
        return f"convergence not recorded for {unknown} of {len(stopped_by)} runs"
    if capped:
        return (f"not converged: {capped} of {len(stopped_by)} runs stopped at their epoch cap or time budget, "
                "still improving")
    return "converged"


def pack_correct(correct) -> str:
    """0/1 per test face -> a hex string (4 faces a character), the form results files keep."""
    bits = "".join("1" if c else "0" for c in np.asarray(correct, dtype=bool))
    bits += "0" * (-len(bits) % 4)
    return "".join(f"{int(bits[i:i + 4], 2):x}" for i in range(0, len(bits), 4))


def unpack_correct(packed: str, n: int) -> np.ndarray:
    """The inverse of pack_correct for `n` faces."""
    bits = "".join(f"{int(ch, 16):04b}" for ch in packed)
    if len(bits) < n:
        raise ValueError(f"the packed string holds {len(bits)} faces, not {n}")
    return np.array([b == "1" for b in bits[:n]])


def paired_difference(correct_a, correct_b, draws: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """Accuracy of a minus accuracy of b, in points, with a bootstrap interval.

    `correct_a`, `correct_b`: one 0/1 array per seed (the same test faces, in the same order;
    seed k of a paired with seed k of b). Each draw resamples the seeds and the test faces
    (the same faces for both models), so the interval holds both noises: which faces were in
    the test set and which seed each training had. One seed: the faces only.
    """
    a = np.asarray([np.asarray(c, dtype=float) for c in correct_a])          # seeds x faces
    b = np.asarray([np.asarray(c, dtype=float) for c in correct_b])
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] == 0:
        raise ValueError(f"paired_difference needs the same seeds x faces for both models, got {a.shape} and {b.shape}")
    seeds, faces = a.shape
    per_seed = a - b                                                        # seeds x faces
    rng = np.random.default_rng(seed)
    picked_seeds = rng.integers(0, seeds, size=(draws, seeds))
    picked_faces = rng.integers(0, faces, size=(draws, faces))
    estimates = np.empty(draws)
    for k in range(draws):
        estimates[k] = per_seed[picked_seeds[k]][:, picked_faces[k]].mean()
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(estimates, [tail, 100 - tail])
    return {"points": 100 * float(per_seed.mean()), "low": 100 * float(low), "high": 100 * float(high),
            "seeds": seeds, "faces": faces, "level": level,
            "per_seed_points": [100 * float(d) for d in per_seed.mean(axis=1)]}


def verdict(points: float, low: float, high: float, protocol: str, seeds: int, stopped_by=None,
            convergence: str | None = None) -> dict:
    """The verdict on a paired difference (points, interval [low, high]): {"kind", "sentence"}.

    kind: "finding" (the interval excludes zero, MIN_SEEDS seeds or more, every run converged),
    "noise" (the interval holds zero), "not converged" (it excludes zero but a run hit its cap:
    the gap may be a budget), "too few seeds" (it excludes zero with fewer than MIN_SEEDS seeds).
    `convergence` overrides the state read from `stopped_by` (e.g. "fixed 6 epochs").
    """
    if any(map(math.isnan, (points, low, high))):
        raise ValueError("a verdict needs a difference and its interval, got NaN")
    if low > high:
        raise ValueError(f"the interval [{low}, {high}] is upside down")
    state = convergence if convergence is not None else convergence_state(stopped_by or [])
    numbers = f"{points:+.1f} points [{low:+.1f}, {high:+.1f}], {seeds} seed{'s' if seeds != 1 else ''}"
    if low <= 0 <= high:
        kind, sentence = "noise", f"within the noise: {numbers}, {state} ({protocol}); the interval holds zero"
    elif state != "converged":
        kind, sentence = "not converged", (f"not converged: {numbers} ({protocol}); {state}, so the gap may be a "
                                           "difference of training speed at this budget, not a finding")
    elif seeds < MIN_SEEDS:
        kind, sentence = "too few seeds", (f"too few seeds for a finding: {numbers}, {state} ({protocol}); "
                                           f"a finding needs {MIN_SEEDS} seeds per model")
    else:
        kind, sentence = "finding", f"a finding: {numbers}, {state} ({protocol})"
    return {"kind": kind, "sentence": sentence, "points": points, "low": low, "high": high, "seeds": seeds,
            "convergence": state, "protocol": protocol}


# ---- the evidence table: plain baselines beside the shipped nano models ---------------------
BASELINES_FILE = "baselines_nano.json"      # tools/baselines.py writes it (package data)
BASELINE_NAMES = {"cnn": "small CNN (images, 0.14M params)",
                  "mlp-true-landmarks": "landmark MLP (true landmarks)",
                  "mlp-predicted-landmarks": "landmark MLP (frozen MobileFaceNet's landmarks)"}


def shipped_results(name: str) -> dict:
    """A results file shipped in poster_lite/shipped/ (read through importlib.resources, so a
    pip-installed poster-lite has it too); {} when this poster-lite has none of that name."""
    import json
    from importlib import resources

    entry = resources.files("poster_lite.shipped") / name
    return json.loads(entry.read_text(encoding="utf-8")) if entry.is_file() else {}


def shipped_model_convergence(meta: dict) -> tuple:
    """(stopped_by or None, a description) of a shipped model from its meta (recipe and history)."""
    history = meta.get("history") or []
    stopped = meta.get("stopped_by") or (meta.get("recipe") or {}).get("stopped_by")
    best, epochs = meta.get("epoch"), len(history) or (meta.get("recipe") or {}).get("epochs")
    if stopped:
        return stopped, f"stopped by {stopped} after {epochs} epochs (best epoch {best})"
    if not epochs:
        return None, f"best epoch {best}; how the run ended is not recorded"
    still = " = last: still improving" if best is not None and best == epochs else ""
    return None, f"fixed {epochs} epochs, best epoch {best}{still} (no early stopping)"


def evidence_rows(baselines: dict, models: dict, sources: dict | None = None) -> list:
    """One row per model: the baselines file's models (per-seed mean and spread) and the shipped
    nano models (`models`: name -> meta of `pl.trained_model(name)`, one training each; its
    metrics' test_accuracy is shown). `sources`: name -> where a model's number comes from."""
    rows = []
    for key in dict.fromkeys([*BASELINE_NAMES, *baselines.get("models", {})]):
        runs = baselines.get("models", {}).get(key, {}).get("runs", [])
        if not runs:
            rows.append({"model": BASELINE_NAMES.get(key, key), "seeds": 0, "test acc (%)": math.nan,
                         "spread (pts)": math.nan, "epochs": "-", "stopped by": "-",
                         "convergence": "missing: not trained yet (make baselines)", "source": BASELINES_FILE})
            continue
        stats = seed_summary([r["test_accuracy"] for r in runs])
        rows.append({"model": BASELINE_NAMES.get(key, key), "seeds": stats["n"],
                     "test acc (%)": 100 * stats["mean"], "spread (pts)": 100 * stats["spread"],
                     "epochs": "/".join(str(r["epochs"]) for r in runs),
                     "stopped by": "/".join(r["stopped_by"] for r in runs),
                     "convergence": convergence_state(r["stopped_by"] for r in runs),
                     "source": BASELINES_FILE})
    for name, meta in models.items():
        accuracy = (meta.get("metrics") or {}).get("test_accuracy")
        if accuracy is None:
            continue
        stopped, described = shipped_model_convergence(meta)
        rows.append({"model": name, "seeds": 1, "test acc (%)": 100 * accuracy, "spread (pts)": math.nan,
                     "epochs": str(len(meta.get("history") or []) or "?"), "stopped by": stopped or "fixed epochs",
                     "convergence": described if stopped != "patience" else "converged",
                     "source": (sources or {}).get(name, f"shipped {name} (manifest)")})
    return sorted(rows, key=lambda r: (math.isnan(r["test acc (%)"]), -r["test acc (%)"]))   # missing rows last
