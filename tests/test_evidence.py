"""Verdicts come from the numbers: constructed differences, intervals, seeds and convergence states."""
import numpy as np
import pytest

from poster_lite.evidence import (
    MIN_SEEDS,
    convergence_state,
    pack_correct,
    paired_difference,
    seed_summary,
    unpack_correct,
    verdict,
)

CONVERGED = ["patience"] * 6


def test_a_clear_converged_gap_with_enough_seeds_is_a_finding():
    said = verdict(4.1, 2.0, 6.3, protocol="frozen features", seeds=3, stopped_by=CONVERGED)
    assert said["kind"] == "finding"
    assert said["sentence"] == "a finding: +4.1 points [+2.0, +6.3], 3 seeds, converged (frozen features)"


@pytest.mark.parametrize("low, high", [(-1.0, 2.0), (-3.0, 0.0), (0.0, 1.5)])
def test_an_interval_that_holds_zero_is_within_the_noise(low, high):
    said = verdict((low + high) / 2, low, high, protocol="paper", seeds=3, stopped_by=CONVERGED)
    assert said["kind"] == "noise" and said["sentence"].startswith("within the noise:")
    assert "converged" in said["sentence"] and "paper" in said["sentence"]


def test_a_gap_from_runs_that_hit_their_cap_is_not_converged():
    said = verdict(7.4, 4.0, 10.9, protocol="frozen features", seeds=3,
                   stopped_by=["max_epochs", "patience", "max_epochs", "patience", "patience", "patience"])
    assert said["kind"] == "not converged"
    assert said["sentence"].startswith("not converged: +7.4 points [+4.0, +10.9], 3 seeds")
    assert "2 of 6 runs stopped at their epoch cap" in said["sentence"]


def test_a_negative_finding_keeps_its_sign():
    said = verdict(-3.2, -5.0, -1.1, protocol="paper", seeds=4, stopped_by=CONVERGED)
    assert said["kind"] == "finding" and "-3.2 points [-5.0, -1.1], 4 seeds" in said["sentence"]


def test_one_seed_is_not_enough_for_a_finding():
    said = verdict(3.0, 1.0, 5.0, protocol="paper", seeds=MIN_SEEDS - 2, stopped_by=["patience", "patience"])
    assert said["kind"] == "too few seeds" and "1 seed," in said["sentence"]


def test_a_stated_convergence_overrides_the_runs():
    said = verdict(2.0, 0.5, 3.5, protocol="end to end", seeds=1, convergence="fixed 6 epochs, best epoch = last")
    assert said["kind"] == "not converged" and "fixed 6 epochs" in said["sentence"]


def test_bad_intervals_are_refused():
    with pytest.raises(ValueError, match="upside down"):
        verdict(1.0, 2.0, 0.0, protocol="p", seeds=3, stopped_by=CONVERGED)
    with pytest.raises(ValueError, match="NaN"):
        verdict(float("nan"), 0.0, 1.0, protocol="p", seeds=3, stopped_by=CONVERGED)


def test_convergence_states():
    assert convergence_state(["patience", "patience"]) == "converged"
    assert convergence_state(["patience", "time_budget"]).startswith("not converged: 1 of 2")
    assert convergence_state([None, "patience"]) == "convergence not recorded for 1 of 2 runs"
    assert convergence_state([]) == "convergence not recorded"


def test_packed_correctness_round_trips():
    rng = np.random.default_rng(1)
    for n in (1, 4, 7, 1500):
        correct = rng.random(n) < 0.6
        packed = pack_correct(correct)
        assert len(packed) == -(-n // 4)
        np.testing.assert_array_equal(unpack_correct(packed, n), correct)
    with pytest.raises(ValueError):
        unpack_correct("f", 5)


def test_paired_difference_holds_its_estimate_and_sees_a_real_gap():
    rng = np.random.default_rng(0)
    faces = 1500
    b = [rng.random(faces) < 0.60 for _ in range(3)]
    a = [np.where(rng.random(faces) < 0.25, True, x) for x in b]       # a fixes about a quarter of b's errors
    d = paired_difference(a, b, draws=500)
    assert d["low"] <= d["points"] <= d["high"]
    assert d["low"] > 0 and d["seeds"] == 3 and len(d["per_seed_points"]) == 3
    same = paired_difference(b, b, draws=200)
    assert same["points"] == same["low"] == same["high"] == 0.0
    with pytest.raises(ValueError, match="same seeds x faces"):
        paired_difference(a, b[:2])


def test_seed_spread_is_the_sample_std():
    s = seed_summary([0.5, 0.6, 0.7])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.6) and s["spread"] == pytest.approx(0.1)
    assert np.isnan(seed_summary([0.5])["spread"])


def test_evidence_rows_put_baselines_beside_models_and_name_the_missing():
    from poster_lite.evidence import evidence_rows

    baselines = {"models": {"mlp-true-landmarks": {"runs": [
        {"test_accuracy": 0.87, "stopped_by": "patience", "epochs": 8},
        {"test_accuracy": 0.89, "stopped_by": "patience", "epochs": 9}]}}}
    meta = {"metrics": {"test_accuracy": 0.61}, "epoch": 6, "history": [{"epoch": e} for e in range(1, 7)]}
    rows = evidence_rows(baselines, {"poster-nano": meta})
    assert [r["model"] for r in rows][:2] == ["landmark MLP (true landmarks)", "poster-nano"]
    mlp, nano = rows[0], rows[1]
    assert mlp["seeds"] == 2 and mlp["test acc (%)"] == pytest.approx(88.0) and mlp["convergence"] == "converged"
    assert nano["seeds"] == 1 and "best epoch 6 = last" in nano["convergence"]
    missing = [r for r in rows if r["seeds"] == 0]
    assert {r["model"] for r in missing} == {"small CNN (images, 0.14M params)",
                                             "landmark MLP (frozen MobileFaceNet's landmarks)"}
    assert all(r["convergence"].startswith("missing") for r in missing) and rows[-1]["seeds"] == 0


def test_convergence_of_a_model_trained_here_comes_from_its_run_folder(tmp_path):
    """A model loaded from the cache carries its run's history and ending like a shipped one."""
    import json

    import torch

    from poster_lite.evidence import shipped_model_convergence
    from poster_lite.model_cache import _with_run_record

    model = torch.nn.Linear(1, 1)
    model.meta = {"epoch": 3}
    assert shipped_model_convergence(model.meta)[1] == "best epoch 3; how the run ended is not recorded"
    (tmp_path / "history.json").write_text(json.dumps([{"epoch": e, "val_acc": 0.1 * e} for e in range(1, 8)]))
    (tmp_path / "results.json").write_text(json.dumps(
        {"best_epoch": 3, "stopped_by": "patience", "patience": 4, "max_epochs": 30, "epochs_trained": 7}))
    meta = _with_run_record(model, tmp_path).meta
    assert len(meta["history"]) == 7 and meta["patience"] == 4
    assert shipped_model_convergence(meta) == ("patience", "stopped by patience after 7 epochs (best epoch 3)")
