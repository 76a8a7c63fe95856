"""tools/baselines.py: the calibration's baselines under early stopping, resumable per (model, seed)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_synthfer(tmp_path_factory):
    from poster_lite.data.synthfer import make_synthfer

    return make_synthfer(tmp_path_factory.mktemp("sf") / "synthfer", n_train=70, n_val=35, n_test=35, progress=False)


def _run(root, out, *extra):
    command = [sys.executable, str(REPO / "tools" / "baselines.py"), "--data-root", str(root), "--out", str(out),
               "--max-epochs", "3", "--patience", "1", "--threads", "1", *extra]
    done = subprocess.run(command, env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_baselines_train_record_and_resume(tiny_synthfer, tmp_path):
    out = tmp_path / "baselines.json"
    _run(tiny_synthfer, out, "--seeds", "0")
    first = json.loads(out.read_text())
    assert set(first["models"]) == {"cnn", "mlp-true-landmarks", "mlp-predicted-landmarks"}
    for name, entry in first["models"].items():
        run = entry["runs"][0]
        assert run["seed"] == 0 and 0 <= run["test_accuracy"] <= 1
        assert run["stopped_by"] in ("patience", "max_epochs") and run["epochs"] <= 3
        assert run["epochs"] == len(run["history"]) and run["max_epochs"] == 3 and run["patience"] == 1
        assert entry["summary"]["seeds"] == [0] and "--models " + name in entry["command"]
    assert 130_000 < first["models"]["cnn"]["params"] < 150_000          # data/README: 0.14M parameters
    assert 0 < first["models"]["mlp-predicted-landmarks"]["landmark_nme_test"] < 1

    # a second seed is added; the first is kept as it was, not trained again
    log = _run(tiny_synthfer, out, "--seeds", "0", "1", "--models", "mlp-true-landmarks")
    assert log.count("seed 1 ...") == 1 and "seed 0 ..." not in log
    second = json.loads(out.read_text())
    runs = {r["seed"]: r for r in second["models"]["mlp-true-landmarks"]["runs"]}
    assert runs[0] == first["models"]["mlp-true-landmarks"]["runs"][0]
    summary = second["models"]["mlp-true-landmarks"]["summary"]
    assert summary["seeds"] == [0, 1] and summary["test_accuracy_spread"] >= 0
    assert "every requested" in _run(tiny_synthfer, out, "--seeds", "0", "1", "--models", "mlp-true-landmarks")


def test_a_file_of_another_kind_is_not_overwritten(tiny_synthfer, tmp_path):
    out = tmp_path / "notes.json"
    out.write_text(json.dumps({"what": "my notes"}))
    command = [sys.executable, str(REPO / "tools" / "baselines.py"), "--data-root", str(tiny_synthfer),
               "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "not a baselines file" in done.stderr
    assert json.loads(out.read_text()) == {"what": "my notes"}
