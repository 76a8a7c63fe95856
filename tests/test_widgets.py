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
from poster_lite.viz.attention import compute_attention

# Tiny models on a 2-core machine: see the one_thread fixture in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


PNG_SIGNATURE = b"\x89PNG"
NOW = datetime.now(timezone.utc)


def _sup_texts(fig) -> list:
    out = [getattr(fig, a).get_text() for a in ("_suptitle", "_supxlabel") if getattr(fig, a, None) is not None]
    for sub in getattr(fig, "subfigs", []):
        out += _sup_texts(sub)
    return out


def _texts(fig) -> str:
    """Every title, label and text of a figure and its subfigures, once each."""
    out = _sup_texts(fig)
    for ax in fig.axes:                      # a figure's axes include its subfigures' axes
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] + [t.get_text() for t in ax.texts]
        out += [t.get_text() for t in ax.get_yticklabels()]
        legend = ax.get_legend()
        if legend is not None:
            out += [t.get_text() for t in legend.get_texts()]
    return " ".join(out)


def _shown_at_natural_size(explorer) -> None:
    """The picture's pixel size is the PNG's, and wider pictures scroll instead of shrinking."""
    width, height = widgets.png_size(bytes(explorer.picture.value))
    assert explorer.picture.layout.width == f"{width}px" and explorer.picture.layout.height == f"{height}px"
    assert explorer.picture.layout.max_width == "none" and explorer.frame.layout.overflow == "auto"


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


@pytest.fixture(scope="module")
def faces():
    from poster_lite.data.synthfer import draw_face
    return [(draw_face({"AU12": 1.0} if k % 2 else {"AU1": 1.0, "AU26": 1.0}, identity=k)[0], k % 7) for k in range(24)]


def test_swap_depth_explorer_shows_what_rewiring_a_trained_model_changes(nano, face, faces, repo_root):
    explorer = widgets.SwapDepthExplorer(model=nano, image=face, test_set=faces, n_faces=24,
                                         ablations=repo_root / "poster_lite" / "shipped" / "ablations_nano.json")
    assert "stream" in explorer.controls and explorer.shipped["depth"] == 4
    assert set(explorer.shipped["accuracy"]) == {0, 1, 2, 4}
    explorer.controls["swap_depth"].value = 0
    text = _texts(explorer.figure)
    assert "no swap" in text and "run with its first 0 block(s) swapping" in text
    assert "this face: predicts" in text and "trained at that swap depth (ablations_nano.json" in text
    assert "this model rewired (24 test faces" in text
    assert all(level.swap for block in nano.fusion.blocks for level in block.levels)     # restored
    assert set(explorer.accuracies) == {2, 0}                                           # scored as visited
    _shown_at_natural_size(explorer)


def test_swap_depth_explorer_image_keys_follow_swap_depth(nano, face):
    """The bug: with "keys: image tokens" the maps came from a model rebuilt from the config,
    which dropped the swap flags the explorer had set; now every panel is the rewired model."""
    explorer = widgets.SwapDepthExplorer(model=nano, image=face)
    explorer.controls["stream"].value = "img"
    explorer.controls["swap_depth"].value = 0
    text = _texts(explorer.figure)
    assert "no swap" in text and ", swap)" not in text and "channel slabs" in text
    with widgets.rewired(nano, 0):
        expected = compute_attention(nano, face)
    assert expected.swaps == [False, False]
    assert np.allclose(explorer._attention(0).maps[(0, 0, "img")], expected.maps[(0, 0, "img")])
    explorer.controls["swap_depth"].value = 1
    assert ", swap)" in _texts(explorer.figure) and ", no swap)" in _texts(explorer.figure)


def test_rewired_accuracy_is_the_accuracy_of_a_model_built_that_way_and_is_cached(nano, face, faces):
    explorer = widgets.SwapDepthExplorer(model=nano, image=face, test_set=faces, n_faces=24)
    twin = build_model("poster-nano", depth=2, swap_depth=0).eval()
    twin.load_state_dict(nano.state_dict())
    inputs, targets = explorer._faces()
    with torch.no_grad():
        expected = (twin(inputs).argmax(-1) == targets).float().mean().item()
    calls = []
    hook = nano.register_forward_hook(lambda *args: calls.append(1))
    try:
        assert explorer.accuracy_at(0) == pytest.approx(expected)
        scored = len(calls)
        assert explorer.accuracy_at(0) == pytest.approx(expected) and len(calls) == scored    # cached
    finally:
        hook.remove()
    assert set(explorer.accuracy_at_every_depth()) == {0, 1, 2}


def test_pyramid_explorer_checkboxes(tmp_path):
    explorer = widgets.PyramidExplorer(preset="poster-nano", size_presets=("poster-nano",))
    assert explorer.dims() == (128, 64, 32)
    assert explorer.controls["dim 128"].disabled
    explorer.controls["dim 64"].value = False
    assert explorer.dims() == (128, 32)
    assert "2 level(s), dims [128, 32]" in _texts(explorer.figure)
    assert "poster-nano" in explorer.size_html.value
    _shown_at_natural_size(explorer)
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
    _shown_at_natural_size(designer)
    # 01's face was drawn about 2.3x its size when a flex box stretched it: its own size now
    assert widgets.png_size(bytes(widgets.FaceDesigner().picture.value))[0] < 500


def _upload(control, name, kind, content: bytes) -> None:
    """What the browser does when a file is chosen, in the value format of the installed ipywidgets."""
    import ipywidgets

    if ipywidgets.__version__.startswith("7."):     # read-only there, a dict by file name
        control.set_trait("value", {name: {"metadata": {"name": name, "type": kind, "size": len(content)},
                                           "content": content}})
    else:
        control.value = ({"name": name, "type": kind, "size": len(content), "content": memoryview(content),
                          "last_modified": NOW},)


def test_upload_predictor_reads_uploads_and_reports_bad_files(nano, face):
    predictor = widgets.UploadPredictor(model=nano, detect_faces=False)
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="PNG")
    upload = predictor.controls["upload"]
    _upload(upload, "me.png", "image/png", buffer.getvalue())
    assert len(predictor.results) == 1 and predictor.results[0]["source"] == "me.png"
    face_result = predictor.results[0]["faces"][0]
    assert face_result["label"] in CLASSES
    assert predictor.figure.axes[0].patches                  # the box is drawn
    _upload(upload, "notes.txt", "text/plain", b"hello")
    assert "notes.txt" in predictor.status.value and "not an image" in predictor.status.value
    # ipywidgets 7 hands uploads over as {file name: {"metadata": ..., "content": bytes}}
    predictor._changed({"owner": upload, "new": {"old.png": {"metadata": {"name": "old.png"},
                                                              "content": buffer.getvalue()}}})
    assert predictor.results[0]["source"] == "old.png"
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
    _shown_at_natural_size(explorer)
    # 06's explorer was squeezed to about half its size: now it fits a notebook's output as it is
    assert widgets.png_size(bytes(explorer.picture.value))[0] <= 950


def test_static_fallback_is_offered_beside_the_widget():
    explorer = widgets.pyramid_explorer(preset="poster-nano", size_presets=None)
    assert explorer.size_table is None and explorer.size_html.value == ""
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert base64.b64decode(bundle["image/png"]).startswith(PNG_SIGNATURE)
    assert "text/html" not in bundle          # HTML would outrank the PNG where widgets cannot render


def test_widget_view_for_ipywidgets_7_and_8():
    explorer = widgets.pyramid_explorer(preset="poster-nano", size_presets=None)
    view = widgets._widget_view(explorer.widget)["application/vnd.jupyter.widget-view+json"]
    assert view["model_id"] == explorer.widget.model_id

    class Seven:                              # ipywidgets 7 widgets have no _repr_mimebundle_
        model_id = "abc"
    assert widgets._widget_view(Seven()) == {"application/vnd.jupyter.widget-view+json":
                                             {"version_major": 2, "version_minor": 0, "model_id": "abc"}}
