"""Backbone pretraining on SynthFER: the margin head, the landmark error, the official file layouts."""
import json

import pytest
import torch

from poster_lite import build_model
from poster_lite.checkpoint import read_checkpoint_file
from poster_lite.cli import main
from poster_lite.models.official import load_official_weights, to_release_state_dict
from poster_lite.pretrain import (
    CosFaceHead,
    backbone_dir,
    backbone_folders,
    load_pretrained_backbones,
    normalised_mean_error,
)

# Tiny models on a 2-core machine: see the one_thread fixture in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


def test_normalised_mean_error_by_hand():
    truth = torch.zeros(1, 68, 2)
    truth[0, 45] = torch.tensor([10.0, 0.0])               # outer eye corners 36 and 45 are 10 apart
    predicted = truth + torch.tensor([3.0, 4.0])           # every point 5 off
    assert normalised_mean_error(predicted, truth).item() == pytest.approx(0.5)


def test_cosface_subtracts_the_margin_from_the_true_class_only():
    head = CosFaceHead(4, 3, scale=10.0, margin=0.3)
    with torch.no_grad():
        head.centres.copy_(torch.eye(3, 4))
    embedding = torch.tensor([[2.0, 0.0, 0.0, 0.0]])      # points at centre 0
    assert head(embedding).tolist()[0] == pytest.approx([10.0, 0.0, 0.0])
    assert head(embedding, torch.tensor([0])).tolist()[0] == pytest.approx([7.0, 0.0, 0.0])


def test_cache_folders_are_per_preset_and_shared_by_equal_backbones():
    assert backbone_dir("poster-nano").parts[-3:] == ("cache", "backbones", "poster-nano")
    folders = {f.name for f in backbone_folders(build_model("poster-nano").config)}
    assert folders == {"poster-nano", "image-only-nano", "poster-v2-nano"}      # V2-nano has the same backbones


def test_pretrain_writes_official_layouts_that_poster_loads(tmp_path, capsys):
    out = tmp_path / "backbones"
    assert main(["pretrain-backbones", "--model", "poster-nano", "--epochs", "1", "--limit", "48",
                 "--batch-size", "16", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "identity accuracy" in printed and "NME" in printed

    ir = torch.load(out / "ir50.pth", weights_only=True)                       # a raw IR-50 state dict
    assert any(k.startswith("input_layer.") for k in ir) and any(k.startswith("output_layer.") for k in ir)
    mfn = torch.load(out / "mobilefacenet_model_best.pth.tar", weights_only=True)
    assert set(mfn) == {"state_dict"} and any(k.startswith("conv_6_sep.") for k in mfn["state_dict"])
    report = json.loads((out / "report.json").read_text())
    assert report["landmark_backbone"]["nme"] > 0 and 0 <= report["image_backbone"]["identity_accuracy"] <= 1

    model = build_model("poster-nano")
    image_report = load_official_weights(model, out / "ir50.pth", verbose=False)
    assert image_report["unused"] and all(k.startswith("body.") for k in image_report["unused"])   # stage 4
    assert len(load_pretrained_backbones(build_model("poster-nano"), out)) == 2

    # Training with them: the frozen landmark backbone stays exactly the pretrained one.
    run = tmp_path / "run"
    assert main(["train", "--model", "poster-nano", "--data", "synthfer", "--epochs", "1", "--batch-size", "8",
                 "--limit", "16", "--out", str(run), "--backbones", str(out), "--quiet"]) == 0
    assert "pretrained backbones:" in capsys.readouterr().out
    trained = build_model("poster-nano")
    trained.load_state_dict(read_checkpoint_file(run / "best")["state_dict"])
    after = to_release_state_dict(trained.landmark_backbone)
    assert all(torch.equal(after[k], v) for k, v in mfn["state_dict"].items())
