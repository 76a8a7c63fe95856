"""Every other picture: faces, confusion matrices, curves, ablations, embeddings, galleries."""
import numpy as np
import pandas as pd
import pytest
import torch

from poster_lite import build_model, make_config, viz
from poster_lite.data import CLASSES

# Tiny models on a 2-core machine: see the one_thread fixture in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


def _all_text(fig):
    texts = [fig._suptitle.get_text()] if fig._suptitle else []
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [t.get_text() for t in ax.texts + ax.get_xticklabels() + ax.get_yticklabels()]
    return " ".join(texts)


@pytest.fixture(scope="module")
def faces():
    from poster_lite.data.synthfer import draw_face
    return [draw_face({"AU12": 1.0}, identity=k, pose=dict(roll=5 * k)) for k in range(3)]


@pytest.fixture(scope="module")
def results():
    rng = np.random.default_rng(0)
    targets = np.repeat(np.arange(7), 6)
    probabilities = rng.dirichlet(np.ones(7) * 0.5, len(targets))
    probabilities[np.arange(0, 42, 3), targets[::3]] += 2.0        # a third are certainly right
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    predictions = probabilities.argmax(axis=1)
    confusion = np.zeros((7, 7), int)
    np.add.at(confusion, (targets, predictions), 1)
    return dict(targets=targets, predictions=predictions, probabilities=probabilities, confusion=confusion,
                classes=list(CLASSES), per_class_accuracy=np.diag(confusion) / confusion.sum(1))


def test_landmarks_truth_vs_prediction(faces, tmp_path):
    images = [image for image, _ in faces]
    truth = [points for _, points in faces]
    shifted = [points + np.array([3.0, 0.0]) for points in truth]
    fig = viz.plot_landmarks(images, truth, shifted, titles=["a", "b", "c"], save=tmp_path / "lm.png")
    assert [ax.get_title().split("\n")[0] for ax in fig.axes[:3]] == ["a", "b", "c"]
    inter_ocular = np.linalg.norm(truth[0][36] - truth[0][45])
    assert f"NME {3.0 / inter_ocular:.3f}" in fig.axes[0].get_title()
    assert (tmp_path / "lm.png").exists()
    single = viz.plot_landmarks(images[0], truth[0])
    assert len(single.axes) == 1 and len(single.axes[0].collections) == 1


def test_predicted_landmarks_come_from_the_head_in_pixels(faces):
    torch.manual_seed(0)
    model = build_model("poster-nano", depth=1)
    points = viz.predict_landmarks(model, torch.randn(2, 3, 112, 112))
    assert points.shape == (2, 68, 2) and np.isfinite(points).all()


def test_token_grid_numbers_49_cells_and_warns_for_official_tokens(faces):
    image, points = faces[0]
    spatial = viz.plot_token_grid(image, points, image_tokens="spatial")
    numbers = {t.get_text() for t in spatial.axes[0].texts}
    assert numbers == {str(k) for k in range(1, 50)}
    official = viz.plot_token_grid(image, image_tokens="official")
    assert len(official.axes) == 2 and "NOT a cell" in _all_text(official)


def test_confusion_matrix_rows_are_percentages(results, tmp_path):
    percent = viz.row_normalise(results["confusion"])
    np.testing.assert_allclose(percent.sum(axis=1), 100.0)
    fig = viz.plot_confusion(results, title="nano", save=tmp_path / "c.png")
    text = _all_text(fig)
    assert "Happiness" in text and "mean class accuracy" in text
    assert viz.row_normalise(np.zeros((2, 2))).sum() == 0      # an empty row stays 0, not NaN


def test_confusion_comparison_shows_the_difference(results):
    better = results["confusion"] + np.eye(7, dtype=int) * 6
    fig = viz.plot_confusion_comparison(results, dict(results, confusion=better), dataset="SynthFER")
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert len(titled) == 3 and "POSTER − Baseline" in titled[2].get_title()
    cells = [t.get_text() for t in titled[2].texts]
    assert len(cells) == 49
    assert all(label.startswith("+") and label != "+0" for label in cells[::8])
    with pytest.raises(ValueError, match="square"):
        viz.plot_confusion(np.zeros((2, 3)))


def test_figure2_has_a_row_per_dataset(results):
    eight = np.eye(8, dtype=int) * 5 + 1
    fig = viz.plot_confusion_figure2({"RAF-DB": (results, results),
                                      "AffectNet-8": (dict(confusion=eight, classes=list(CLASSES) + ["Contempt"]),
                                                      dict(confusion=eight, classes=list(CLASSES) + ["Contempt"]))})
    text = _all_text(fig)
    assert "RAF-DB: Baseline" in text and "AffectNet-8: POSTER" in text and "Contempt" in text


def test_history_curves(tmp_path):
    history = pd.DataFrame(dict(epoch=[1, 2, 3], train_loss=[2.0, 1.5, 1.2], train_acc=[0.3, 0.5, 0.6],
                                val_loss=[2.1, 1.7, 1.8], val_acc=[0.25, 0.45, 0.4], val_macc=[0.2, 0.4, 0.38],
                                lr=[4e-5, 3.9e-5, 3.8e-5], images_per_s=[50, 51, 52]))
    history.to_csv(tmp_path / "history.csv", index=False)
    fig = viz.plot_history(tmp_path / "history.csv")
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy (%)", "learning rate"]
    assert "45.0 % at epoch 2" in fig.axes[1].get_title()
    assert max(fig.axes[1].lines[0].get_ydata()) == pytest.approx(60.0)
    with pytest.raises(FileNotFoundError):
        viz.load_history(tmp_path / "missing.csv")


def test_per_class_bars(results):
    fig = viz.plot_per_class_accuracy({"baseline": results, "POSTER": results})
    ax = fig.axes[0]
    assert len(ax.patches) == 14
    labels = ax.get_legend_handles_labels()[1]
    assert labels[0].startswith("baseline (mAcc")


def test_per_class_bars_say_when_a_class_has_no_samples():
    fig = viz.plot_per_class_accuracy(dict(per_class_accuracy=[0.5, float("nan"), 1.0], classes=["a", "b", "c"]))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["50", "n/a", "100"]
    assert "mAcc 75.0 %" in ax.get_legend_handles_labels()[1][0]


def test_ablation_puts_the_paper_beside_ours():
    ours = pd.DataFrame(dict(swap_depth=[0, 0, 1, 2], accuracy=[0.70, 0.72, 0.74, 0.75]))
    fig = viz.plot_ablation(ours, "swap_depth", dataset="SynthFER")
    paper, mine = fig.axes
    assert "Table 2" in paper.get_title() and "mean of 1 to 2 runs per point" in mine.get_title()
    two_each = viz.plot_ablation(pd.DataFrame(dict(swap_depth=[0, 0, 1, 1], accuracy=[0.7, 0.72, 0.74, 0.75])),
                                 "swap_depth")
    assert "(mean of 2 runs)" in two_each.axes[1].get_title()
    assert list(paper.lines[0].get_ydata()) == [91.27, 91.68, 91.89, 91.91, 92.05]
    assert list(mine.lines[0].get_ydata()) == pytest.approx([71.0, 74.0, 75.0])
    pyramid = viz.plot_ablation({(128,): 0.7, (128, 64): 0.71, (128, 64, 32): 0.73}, "pyramid")
    assert [t.get_text() for t in pyramid.axes[1].get_xticklabels()] == ["[128]", "[128,64]", "[128,64,32]"]
    assert len(viz.plot_ablation(None, "depth").axes) == 1
    with pytest.raises(ValueError, match="unknown ablation"):
        viz.plot_ablation(None, "width")


def test_embeddings_score_expression_vs_identity(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(7), 12)
    identities = np.tile(np.arange(6), 14)
    features = rng.normal(0, 0.3, (84, 8))
    features[np.arange(84), labels] += 3.0               # expression decides the features
    scores = viz.embedding_scores(features, labels, identities)
    assert scores["silhouette_expression"] > 0.5 > scores["silhouette_identity"]
    fig = viz.plot_embeddings(features, labels, identities, CLASSES, method="pca", save=tmp_path / "e.png")
    assert "more by expression than by identity" in fig._suptitle.get_text()
    assert "6 people" in fig.axes[1].get_title()


def test_feature_embeddings_from_a_model():
    torch.manual_seed(0)
    model = build_model("poster-nano", depth=1)

    class Faces(torch.utils.data.Dataset):
        identities = [k % 4 for k in range(24)]
        classes = list(CLASSES)

        def __len__(self):
            return 24

        def __getitem__(self, i):
            return torch.randn(3, 112, 112, generator=torch.Generator().manual_seed(i)), i % 7

    features, labels, ids = viz.extract_features(model, Faces(), batch_size=12, max_items=20)
    assert features.shape == (20, model.config.embed_dim) and len(labels) == len(ids) == 20
    fig = viz.plot_feature_embeddings(model, Faces(), max_items=20, batch_size=12)
    assert set(fig.scores) == {"silhouette_expression", "silhouette_identity"}


def test_gallery_of_mistakes_and_of_one_cell(faces, results, tmp_path):
    dataset = [(faces[i % 3][0], int(t)) for i, t in enumerate(results["targets"])]
    wrong = viz.misclassified_indices(results)
    assert (results["targets"][wrong] != results["predictions"][wrong]).all()
    confidence = results["probabilities"][wrong, results["predictions"][wrong]]
    assert (np.diff(confidence) <= 0).all()
    fig = viz.plot_misclassified(dataset, results, n=4, ncols=2, save=tmp_path / "g.png")
    face_titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert len(face_titles) == 4 and all("true:" in t and "predicted:" in t for t in face_titles)
    bars = [ax for ax in fig.axes if ax.patches]
    assert len(bars) == 4 and all(len(ax.patches) == 3 for ax in bars)
    true, predicted = np.unravel_index(np.argmax(results["confusion"] - np.diag(np.diag(results["confusion"]))), (7, 7))
    cell = viz.plot_confusion_cell(dataset, results, true, predicted, n=3)
    assert f"true {CLASSES[true]} → predicted {CLASSES[predicted]}" in cell._suptitle.get_text()


def test_predictions_figure_draws_boxes_and_bars(faces):
    image = faces[0][0]
    found = dict(source="me.jpg", message=None, faces=[dict(
        box=(10, 12, 90, 100), label="Happiness", probability=0.8,
        probabilities={name: (0.8 if name == "Happiness" else 0.2 / 6) for name in CLASSES})])
    empty = dict(source="wall.jpg", faces=[], message="no face found")
    fig = viz.plot_predictions([image, image], [found, empty])
    photo, bars, _, note = fig.axes
    assert len(photo.patches) == 1 and "Happiness 80%" in photo.texts[0].get_text()
    assert len(bars.patches) == 7 and note.texts[0].get_text() == "no face found"


def test_architecture_drawings():
    schedule = viz.plot_block_schedule(make_config("poster-l", swap_depth=3))
    assert "3 of 8 blocks swap" in schedule.axes[0].get_title()
    rows = viz.level_shapes(make_config("poster-l"))
    assert [(r["dim"], r["head_dim"]) for r in rows] == [(512, 64), (256, 32), (128, 16)]
    assert rows[2]["made_by"] == "Conv1d(k=4, s=4)"
    pyramid = viz.plot_pyramid(make_config("poster-l", pyramid_dims=(512, 256)))
    assert "2 level(s)" in pyramid.axes[0].get_title()


def test_pictures_of_a_real_synthfer_evaluation(tmp_path):
    from poster_lite.data import load
    from poster_lite.evaluation import evaluate

    dataset = load("synthfer", split="test", root=tmp_path / "synthfer", n_train=7, n_val=7, n_test=21,
                   seed=0, progress=False)
    torch.manual_seed(0)
    model = build_model("poster-nano", depth=1)
    model.meta = {"classes": list(dataset.classes), "channel_order": "rgb"}
    results = evaluate(model, dataset, batch_size=21)
    mistakes = int((results["targets"] != results["predictions"]).sum())
    gallery = viz.plot_misclassified(dataset, results, n=6)
    assert len([ax for ax in gallery.axes if ax.get_images()]) == min(6, mistakes)
    assert viz.plot_confusion(results).axes[0].get_yticklabels()[0].get_text() == "Surprise"
    image, _ = dataset[0]
    predicted = viz.predict_landmarks(model, image)
    faces = viz.plot_landmarks(image, dataset.landmarks[0], predicted[0])
    assert "NME" in faces.axes[0].get_title()
    embedding = viz.plot_feature_embeddings(model, dataset, max_items=21, method="pca")
    assert embedding.scores["silhouette_expression"] is not None


def test_official_token_channels_match_the_models_reshape():
    from poster_lite.models.poster import image_tokens_from_map
    flat = torch.arange(256 * 14 * 14, dtype=torch.float64).reshape(1, 256, 14, 14)
    tokens = image_tokens_from_map(flat, "official")[0]                    # 49 x 1024 flat indices
    for token in (0, 24, 48):
        assert sorted({int(i) // 196 for i in tokens[token]}) == viz.official_token_channels(token, 256, 14)
    assert viz.official_token_channels(0) == [0, 1, 2, 3, 4, 5]


def test_feature_maps_and_token_sources(faces):
    torch.manual_seed(0)
    model = build_model("poster-nano", depth=1)
    maps = viz.feature_maps(model, faces[0][0])
    assert [m.shape for m in maps.values()] == [(16, 56, 56), (32, 28, 28), (64, 14, 14), (128, 7, 7)]
    fig = viz.plot_feature_maps(model, faces[0][0], channels=3)
    assert len(fig.axes) == 4 * 5 and "IR-50 stage 3" in fig.axes[10].get_ylabel()
    sources = viz.plot_token_sources(model, faces[0][0], token=10)
    assert "channels 13..14" in sources.axes[1].get_title()


def test_every_plot_function_can_save():
    import inspect
    plots = [name for name in viz.__all__ if name.startswith("plot_")]
    assert len(plots) >= 20
    for name in plots:
        parameter = inspect.signature(getattr(viz, name)).parameters.get("save")
        assert parameter is not None and parameter.default is None, name
