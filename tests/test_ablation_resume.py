"""The ablation grid resumes one (row, seed) at a time: killed between rows, rerun, same results."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from poster_lite import build_model
from poster_lite.ablation import _pack

REPO = Path(__file__).resolve().parents[1]
ROWS = ["image-only-nano", "poster-nano-d4", "swap0"]


@pytest.fixture(scope="module")
def features_file(tmp_path_factory):
    """A features file in cached_features' format: 32 random faces through a random nano model."""
    torch.manual_seed(0)
    model = build_model("poster-nano").eval()
    labels = torch.arange(32) % 7
    with torch.no_grad():
        packed = _pack(model, torch.randn(32, 3, 112, 112) + labels.view(-1, 1, 1, 1) * 0.3).to(torch.bfloat16)
    saved = {"classes": [f"c{i}" for i in range(7)]}
    for split in ("train", "val", "test"):
        saved[split] = packed[None]
        saved[f"{split}_labels"] = labels
    path = tmp_path_factory.mktemp("features") / "features.pt"
    torch.save(saved, path)
    return path


def _command(features, out):
    return [sys.executable, str(REPO / "tools" / "ablations.py"), "--features", str(features), "--rows", *ROWS,
            "--seeds", "0", "1", "--target-seeds", "0", "1", "--max-epochs", "2", "--batch-size", "16",
            "--precision", "fp32", "--out", str(out)]


def _runs(path):
    return json.loads(path.read_text())["runs"] if path.exists() else []


def _key(run):
    return run["row"], run["seed"]


def _comparable(run):
    return {k: v for k, v in run.items() if k not in ("wall_s", "finished", "history")} | \
        {"val_curve": [h["val_acc"] for h in run["history"]]}


def test_grid_killed_between_rows_resumes_without_recomputing(features_file, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = tmp_path / "grid.json"
    grid = subprocess.Popen(_command(features_file, out), env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while not _runs(out) and grid.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    grid.kill()                                       # SIGKILL: no chance to clean up
    grid.wait()
    before = _runs(out)
    assert 1 <= len(before) < 2 * len(ROWS), f"kill came too late or too early: {len(before)} runs in the file"
    partial = json.loads(out.read_text())
    assert partial["complete"] is False and partial["missing"]

    resumed = subprocess.run(_command(features_file, out), env=env, cwd=REPO, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(before)} (row, seed) pairs in" in resumed.stdout
    after = {_key(r): r for r in _runs(out)}
    assert len(after) == 2 * len(ROWS)
    for run in before:                                # finished rows are kept as they were, not recomputed
        assert after[_key(run)] == run

    whole = tmp_path / "whole.json"
    straight = subprocess.run(_command(features_file, whole), env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=300)
    assert straight.returncode == 0, straight.stderr
    uninterrupted = {_key(r): r for r in _runs(whole)}
    assert set(uninterrupted) == set(after)
    for key, run in uninterrupted.items():
        assert _comparable(after[key]) == _comparable(run), key
    final = json.loads(out.read_text())
    from poster_lite.ablation import ROW_IDS

    assert final["complete"] is False                 # the file reports the rows this run left out
    assert {m["row"] for m in final["missing"]} == set(ROW_IDS) - set(ROWS)
    assert final["settings"]["precision"] == "fp32" and final["settings"]["patience"] >= 1
    assert set(final["rows"]) == set(ROWS)
    for row in ROWS:
        assert final["rows"][row]["seeds"] == [0, 1]
        assert all(s in ("patience", "max_epochs") for s in final["rows"][row]["stopped_by"])
    difference = final["differences_vs_full_model"]["image-only-nano"]
    assert difference["low"] <= difference["points"] <= difference["high"]
    assert difference["verdict"] in ("noise", "not converged", "too few seeds", "finding")


def test_other_settings_are_refused_unless_fresh(features_file, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = tmp_path / "grid.json"
    command = _command(features_file, out)
    command[command.index("--rows") + 1:command.index("--seeds")] = ["swap0"]
    command[command.index("--seeds") + 1:command.index("--target-seeds")] = ["0"]
    first = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    kept = out.read_text()
    other = [*command]
    other[other.index("--max-epochs") + 1] = "3"
    refused = subprocess.run(other, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "other settings (max_epochs)" in refused.stderr
    assert out.read_text() == kept                    # nothing lost


def test_seeds_run_apart_merge_into_one_grid(features_file, tmp_path):
    """Seeds trained in two processes, each into its own file, merge into the grid one process makes;
    a file with other settings is refused and changes nothing."""
    env = dict(os.environ, OMP_NUM_THREADS="1")

    def run(out, seeds, *extra):
        command = _command(features_file, out)
        command[command.index("--rows") + 1:command.index("--seeds")] = ["image-only-nano", "poster-nano-d4"]
        command[command.index("--seeds") + 1:command.index("--target-seeds")] = seeds
        done = subprocess.run(command + list(extra), env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    run(tmp_path / "seed0.json", ["0"])
    run(tmp_path / "seed1.json", ["1"])
    run(tmp_path / "both.json", ["0", "1"])
    merged = tmp_path / "seed0.json"
    run(merged, ["0"], "--merge", str(tmp_path / "seed1.json"))
    result, straight = json.loads(merged.read_text()), json.loads((tmp_path / "both.json").read_text())
    assert [_key(r) for r in result["runs"]] == [_key(r) for r in straight["runs"]]
    for a, b in zip(result["runs"], straight["runs"]):
        assert _comparable(a) == _comparable(b)
    assert result["rows"]["poster-nano-d4"]["seeds"] == [0, 1]
    assert result["differences_vs_full_model"]["image-only-nano"]["seeds"] == [0, 1]
    assert result["merged_from"][0]["runs_added"] == 2

    again = run(merged, ["0"], "--merge", str(tmp_path / "seed1.json"))     # merging twice adds nothing
    assert "0 (row, seed) pair(s) added" in again.stdout
    other = json.loads((tmp_path / "seed1.json").read_text())
    other["settings"]["max_epochs"] = 9
    (tmp_path / "other.json").write_text(json.dumps(other))
    kept = merged.read_text()
    command = _command(features_file, merged) + ["--merge", str(tmp_path / "other.json")]
    refused = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "other settings" in refused.stderr and "max_epochs" in refused.stderr
    assert merged.read_text() == kept
