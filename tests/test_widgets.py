"""Widgets build, their callbacks run when values are set in code, and they carry a static PNG."""
import base64
import io
from datetime import datetime, timezone

import numpy as np
import pytest
import torch
from PIL import Image

from poster_lite import build_model, widgets
from poster_lite.data import CLASSES


# Tiny models on a 2-core machine: see the one_thread fixture in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


PNG_SIGNATURE = b"\x89PNG"
NOW = datetime.now(timezone.utc)


def _texts(fig) -> str:
    """Every title and label of a figure and its subfigures."""
    out = []
    for part in [fig, *getattr(fig, "subfigs", [])]:
        for attr in ("_suptitle", "_supxlabel"):
            if getattr(part, attr, None) is not None:
                out.append(getattr(part, attr).get_text())
        if part is not fig:
            out.append(_texts(part))
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] + [t.get_text() for t in ax.texts]
    return " ".join(out)


@pytest.fixture(scope="module")
def nano():
    torch.manual_seed(0)
    model = build_model("poster-nano", depth=2).eval()
    model.meta = {"classes": list(CLASSES), "channel_order": "rgb"}
    return model


@pytest.fixture(scope="module")
def face():
    from poster_lite.data.synthfer import draw_face
    return draw_face({"AU1": 1.0, "AU2": 1.0, "AU26": 1.0}, identity=3)[0]


def test_swap_depth_explorer_follows_its_sliders():
    explorer = widgets.SwapDepthExplorer(preset="poster-nano")
    depth, swap = explorer.controls["depth"], explorer.controls["swap_depth"]
    assert bytes(explorer.picture.value).startswith(PNG_SIGNATURE)
    depth.value = 3
    assert swap.max == 3
    swap.value = 1
    config = explorer.config()
    assert (config.depth, config.swap_blocks) == (3, 1)
    text = _texts(explorer.figure)
    assert "depth 3, swap_depth 1" in text and "swapping queries adds no weights" in text
    assert bytes(explorer.picture.value) == explorer._png
    depth.value = 2                                  # swap_depth clamps to the new maximum
    assert swap.max == 2 and explorer.config().swap_blocks <= 2


def test_swap_depth_explorer_shows_a_trained_models_attention_and_restores_it(nano, face):
    explorer = widgets.SwapDepthExplorer(model=nano, image=face)
    assert "stream" in explorer.controls
    explorer.controls["swap_depth"].value = 0
    text = _texts(explorer.figure)
    assert "no swap" in text and "run with its first 0 block(s) swapping" in text
    assert all(level.swap for block in nano.fusion.blocks for level in block.levels)
    explorer.controls["stream"].value = "img"          # official tokens: drawn via the spatial variant
    assert "not spatial" in _texts(explorer.figure)


def test_pyramid_explorer_checkboxes(tmp_path):
    explorer = widgets.PyramidExplorer(preset="poster-nano", size_presets=("poster-nano",))
    assert explorer.dims() == (128, 64, 32)
    assert explorer.controls["dim 128"].disabled
    explorer.controls["dim 64"].value = False
    assert explorer.dims() == (128, 32)
    assert "2 level(s), dims [128, 32]" in _texts(explorer.figure)
    assert "poster-nano" in explorer.size_html.value
    explorer.save(tmp_path / "pyramid.png")
    assert Image.open(tmp_path / "pyramid.png").size[0] > 500


def test_face_designer_redraws_and_predicts(nano):
    designer = widgets.FaceDesigner(model=nano)
    before = designer.picture.value
    designer.controls["AU12"].value = 1.0
    designer.controls["roll"].value = 10
    assert bytes(designer.picture.value) != bytes(before)
    assert "AU12 1.00" in designer.figure.axes[0].get_title()
    bars = designer.figure.axes[1].patches
    assert len(bars) == len(CLASSES)
    assert sum(bar.get_width() for bar in bars) == pytest.approx(1.0, abs=1e-4)
    assert "model says:" in designer.figure.axes[1].get_title()


def test_upload_predictor_reads_uploads_and_reports_bad_files(nano, face):
    predictor = widgets.UploadPredictor(model=nano, detect_faces=False)
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="PNG")
    upload = predictor.controls["upload"]
    upload.value = ({"name": "me.png", "type": "image/png", "size": buffer.tell(),
                     "content": memoryview(buffer.getvalue()), "last_modified": NOW},)
    assert len(predictor.results) == 1 and predictor.results[0]["source"] == "me.png"
    face_result = predictor.results[0]["faces"][0]
    assert face_result["label"] in CLASSES
    assert predictor.figure.axes[0].patches                  # the box is drawn
    upload.value = ({"name": "notes.txt", "type": "text/plain", "size": 5,
                     "content": memoryview(b"hello"), "last_modified": NOW},)
    assert "notes.txt" in predictor.status.value and "not an image" in predictor.status.value
    if not widgets.in_colab():
        with pytest.raises(widgets.UserError, match="Colab"):
            widgets.webcam_snapshot()


def test_confusion_explorer_picks_a_cell(face):
    rng = np.random.default_rng(0)
    targets = np.repeat(np.arange(7), 4)
    probabilities = rng.dirichlet(np.ones(7), len(targets))
    predictions = probabilities.argmax(1)
    confusion = np.zeros((7, 7), int)
    np.add.at(confusion, (targets, predictions), 1)
    results = dict(targets=targets, predictions=predictions, probabilities=probabilities,
                   confusion=confusion, classes=list(CLASSES))
    dataset = [(face, int(t)) for t in targets]
    explorer = widgets.ConfusionExplorer(dataset, results, n=4)
    true, predicted = explorer.controls["true"].value, explorer.controls["predicted"].value
    off_diagonal = confusion - np.diag(np.diag(confusion))
    assert confusion[true, predicted] == off_diagonal.max() and true != predicted
    explorer.controls["true"].value = 0
    explorer.controls["predicted"].value = 0
    count = int(((targets == 0) & (predictions == 0)).sum())
    assert f"true Surprise → predicted Surprise: {count} samples" in _texts(explorer.figure)


def test_static_fallback_is_offered_beside_the_widget():
    explorer = widgets.pyramid_explorer(preset="poster-nano", size_presets=None)
    assert explorer.size_table is None and explorer.size_html.value == ""
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_SIGNATURE)
    assert "text/html" not in bundle          # HTML would outrank the PNG where widgets cannot render
