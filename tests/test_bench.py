"""The speed benchmark runs (quick mode) and reports what it promises. No timing asserts."""
import json
from pathlib import Path

from poster_lite.bench import run

REPO = Path(__file__).resolve().parents[1]


def test_quick_benchmark_reports_both_paths(tmp_path):
    out = tmp_path / "speed.json"
    result = run(models=("poster-nano",), quick=True, out=out, verbose=False, devices=["cpu"])
    saved = json.loads(out.read_text())
    assert saved["peaks"]["cpu"]["fp32"] > 0
    modes = {(r["model"], r["mode"]) for r in result["rows"]}
    assert modes == {("poster-nano", "inference"), ("poster-nano", "train step (SAM)")}
    for row in result["rows"]:
        for path in ("faithful", "fast"):
            s = row[path]
            assert 0 < s["min"] <= s["images_per_s"] <= s["max"]
        assert row["speedup"] > 0 and 0 < row["faithful_peak_fraction"]
    agree = saved["agreement"][0]
    assert 0.0 <= agree["top1_agreement"] <= 1.0 and agree["max_logit_diff"] >= 0
    pipe = saved["pipeline"]        # the input pipeline, measured on its own
    assert pipe["images"] > 0 and pipe["decode"] > 0
    assert 0 < pipe["decode + train augmentation"] and 0 < pipe["decode + eval transform"]
    assert pipe["in memory + train augmentation (batches)"] > 0
    machine = saved["machine"]      # the machine is named
    assert machine["cpu"] and machine["bf16_units"] in ("AMX", "AVX512-BF16", "none") and machine["threads"] >= 1
    assert machine["peaks"]["fp32"] > 0
    train = next(r for r in result["rows"] if r["mode"] == "train step (SAM)")
    low, high = train["speedup_spread"]          # the ratio within each interleaved repeat
    assert 0 < low <= high
    profile = saved["profiles"][0]  # the nano step's profile: every phase of the real step, timed
    phases = {p["phase"] for p in profile["phases"]}
    assert {"data", "forward", "backward", "sam.forward", "sam.backward", "optimizer"} <= phases
    assert all(p["ms"] >= 0 for p in profile["phases"]) and profile["fast"] is True
    assert any(p["part"] == "landmark backbone" for p in profile["parts"])


def test_bench_cli_finds_the_cached_trained_model(tmp_path, monkeypatch, capsys):
    from poster_lite import bench, model_cache
    from poster_lite.cli import main

    seen = {}
    monkeypatch.setattr(bench, "run", lambda **kw: seen.update(kw))
    monkeypatch.setattr(model_cache, "model_dir", lambda name: tmp_path / name)
    main(["bench", "--quick"])
    assert seen["checkpoint"] is None and "no trained poster-nano cached" in capsys.readouterr().out
    (tmp_path / "poster-nano").mkdir()
    (tmp_path / "poster-nano" / "best").write_bytes(b"x")
    main(["bench", "--quick"])
    assert seen["checkpoint"] == str(tmp_path / "poster-nano" / "best")
    main(["bench", "--quick", "--checkpoint", "none"])
    assert seen["checkpoint"] is None


def test_end_to_end_benchmark_runs_the_default_training_rule(tmp_path):
    """benchmarks/train_end_to_end.py trains with the default run's early stopping and records how it ended."""
    import importlib.util

    from poster_lite.data.synthfer import make_synthfer

    root = make_synthfer(tmp_path / "synthfer", n_train=70, n_val=64, n_test=64, progress=False)
    spec = importlib.util.spec_from_file_location("e2e", REPO / "benchmarks" / "train_end_to_end.py")
    e2e = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(e2e)
    e2e.main(["--path", "fast", "--data-root", str(root), "--epochs", "3", "--patience", "1", "--limit", "64",
              "--out-root", str(tmp_path / "bench")])
    saved = json.loads((tmp_path / "bench" / "train_e2e_fast.json").read_text())
    assert saved["patience"] == 1 and saved["stopped_by"] in ("patience", "max_epochs")
    assert saved["epochs_trained"] == len(saved["history"]) <= 3
    assert 0.0 <= saved["test"]["accuracy"] <= 1.0 and saved["wall_s"] > 0
