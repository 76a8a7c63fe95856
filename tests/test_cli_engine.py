"""`poster-lite train / evaluate / predict` on a tiny SynthFER run, and their error handling."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from poster_lite.cli import main
from poster_lite.data import CLASSES
from poster_lite.data.synthfer import draw_face

# Tiny models on a 2-core machine: see the one_thread fixture in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny training run in the documented CLI form (plus --limit and --quiet)."""
    out = tmp_path_factory.mktemp("cli") / "nano"
    argv = ["train", "--model", "poster-nano", "--data", "synthfer", "--epochs", "2", "--batch-size", "8",
            "--out", str(out), "--limit", "24", "--backbones", "none", "--quiet"]
    return out, argv


def test_train_writes_the_run_and_prints_val_and_test_accuracy(run, capsys):
    out, argv = run
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "final val accuracy:" in printed and "final test accuracy:" in printed
    assert (out / "last").is_file() and (out / "best").is_file()
    history = pd.read_csv(out / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    assert {"train_loss", "val_acc", "val_macc", "lr", "images_per_s"} <= set(history.columns)


def test_evaluate_prints_metrics_and_json(run, capsys):
    out, _ = run
    assert main(["evaluate", "--checkpoint", str(out / "best"), "--data", "synthfer", "--split", "test",
                 "--limit", "21"]) == 0
    text = capsys.readouterr().out
    for words in ("accuracy", "mean class accuracy", "macro F1", "confusion matrix", "Happiness"):
        assert words in text
    assert main(["evaluate", "--checkpoint", str(out / "best"), "--data", "synthfer", "--split", "test",
                 "--limit", "21", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 21 and report["classes"] == list(CLASSES)
    assert np.asarray(report["confusion"]).sum() == 21
    assert f"{report['accuracy']:.2%}" in text
    assert 0 <= report["macro_f1"] <= 1 and 0 <= report["mean_class_accuracy"] <= 1


def test_predict_prints_one_line_per_face(run, tmp_path, capsys):
    out, _ = run
    face, _ = draw_face({"AU1": 1.0, "AU2": 1.0, "AU26": 1.0}, size=224)
    Image.fromarray(np.pad(face, ((30, 30), (30, 30), (0, 0)), mode="edge")).save(tmp_path / "face.png")
    Image.new("RGB", (200, 150), (90, 140, 60)).save(tmp_path / "lawn.png")
    assert main(["predict", str(tmp_path / "face.png"), str(tmp_path / "lawn.png"), "--checkpoint",
                 str(out / "best")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    file, box, label, probability = lines[0].split("  ")
    assert file.endswith("face.png") and label in CLASSES and 0 < float(probability) <= 1
    assert len(box.split(",")) == 4
    assert lines[1].endswith("lawn.png  -  no face found")


def test_user_mistakes_are_one_line_and_exit_2(run, tmp_path, capsys):
    out, _ = run
    assert main(["train", "--model", "poster-xl", "--out", str(tmp_path)]) == 2
    assert "poster-xl" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(out), "--data", "synthfer"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(out / "best"), "--data", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    # The real entry point: exit code 2, one line, no traceback.
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    done = subprocess.run([sys.executable, "-m", "poster_lite.cli", "predict", "x.jpg", "--checkpoint",
                           str(tmp_path / "missing")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "missing" in done.stderr and len(done.stderr.strip().splitlines()) == 1
