"""Attention maps: shapes, rows that sum to 1, the token grid, rollout, and the pictures."""
import numpy as np
import pytest
import torch

from poster_lite import build_model
from poster_lite.viz import attention


# Tiny models on a 2-core machine: see the one_thread fixture in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def face():
    from poster_lite.data.synthfer import draw_face
    image, _ = draw_face({"AU12": 1.0, "AU6": 0.8}, identity=2)
    return image


@pytest.fixture(scope="module")
def official_result(face):
    torch.manual_seed(0)
    model = build_model("poster-nano", depth=2)
    return model, attention.compute_attention(model, face)


def test_every_map_is_a_distribution_over_50_tokens(official_result):
    model, result = official_result
    cfg = model.config
    assert set(result.maps) == {(b, l, s) for b in range(cfg.depth) for l in range(len(cfg.pyramid_dims))
                                for s in ("img", "lm")}
    for weights in result.maps.values():
        assert weights.shape == (cfg.num_heads, 50, 50)
        np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-5)
    assert result.probabilities.shape == (cfg.num_classes,)
    assert result.probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_class_token_row_becomes_the_7x7_grid(official_result):
    _, result = official_result
    weights = result.maps[(0, 0, "lm")]
    grids = attention.class_token_map(weights, "all")
    assert grids.shape == (weights.shape[0], 7, 7)
    # cell (r, c) is key token 1 + 7r + c of row 0; the class token's own weight is left out
    assert grids[1, 2, 3] == weights[1, 0, 1 + 7 * 2 + 3]
    np.testing.assert_allclose(grids.sum(axis=(1, 2)) + weights[:, 0, 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(attention.class_token_map(weights), grids.mean(axis=0))


def test_rollout_rows_sum_to_one_and_differ_between_streams(official_result):
    _, result = official_result
    image_stream = attention.attention_rollout(result, "img")
    landmark_stream = attention.attention_rollout(result, "lm")
    for rollout in (image_stream, landmark_stream):
        assert rollout.shape == (50, 50)
        np.testing.assert_allclose(rollout.sum(axis=-1), 1.0, atol=1e-6)
        assert (rollout >= 0).all()
    assert not np.allclose(image_stream, landmark_stream)


def test_swap_decides_which_class_token_asks(official_result):
    _, result = official_result
    assert result.describe("lm", 0) == "image cls → landmark tokens"
    assert result.describe("img", 0) == "landmark cls → image tokens"
    result.swaps[1] = False
    try:
        assert result.describe("img", 1) == "image cls → image tokens"
    finally:
        result.swaps[1] = True


def test_official_tokens_are_flagged_and_the_spatial_variant_is_drawn(official_result):
    model, result = official_result
    assert result.image_tokens == "official" and not result.keys_spatial("img")
    assert result.spatial is not None and result.spatial.image_tokens == "spatial"
    fig = attention.plot_attention(result, block=1, level=0)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("NOT spatial" in t for t in texts)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert any(label.startswith("spatial variant") for label in labels)
    assert "Block 1, level 0" in fig._suptitle.get_text()
    heads = model.config.num_heads
    titled = [ax.get_title() for ax in fig.axes if ax.get_title().startswith(("head ", "mean"))]
    assert len(titled) == 2 * (heads + 1)           # landmark row and spatial-variant row


def test_spatial_model_draws_face_maps_for_both_streams(face, tmp_path):
    torch.manual_seed(1)
    model = build_model("poster-nano", depth=2, image_tokens="spatial")
    result = attention.compute_attention(model, face)
    assert result.spatial is None
    fig = attention.plot_attention(result, block=0, level=2, save=tmp_path / "attention.png")
    assert (tmp_path / "attention.png").stat().st_size > 10_000
    assert not any("NOT spatial" in t.get_text() for ax in fig.axes for t in ax.texts)
    with pytest.raises(ValueError, match="block must be"):
        attention.plot_attention(result, block=5)


def test_overview_and_rollout_figures(official_result, tmp_path):
    model, result = official_result
    overview = attention.plot_attention_overview(result, stream="img", save=tmp_path / "overview.png")
    image_axes = [ax for ax in overview.axes if ax.get_images()]
    assert len(image_axes) == model.config.depth * len(model.config.pyramid_dims)
    assert "not spatial" in overview._suptitle.get_text()
    rollout = attention.plot_attention_rollout(result, save=tmp_path / "rollout.png")
    titles = " ".join(ax.get_title() for ax in rollout.axes)
    assert "landmark stream" in titles and "spatial variant" in titles and "not spatial" in titles
    assert (tmp_path / "rollout.png").exists()


def test_image_only_model_has_one_stream(face):
    torch.manual_seed(0)
    model = build_model("image-only-nano", depth=1)
    result = attention.compute_attention(model, face)
    assert {key[2] for key in result.maps} == {"img"}
    assert result.spatial is not None
    fig = attention.plot_attention(result)
    labels = [ax.get_ylabel().replace("\n", " ") for ax in fig.axes]
    assert labels.count("image cls → image tokens") == 1
    assert labels.count("spatial variant: image cls → image tokens") == 1
    assert any("NOT spatial" in t.get_text() for ax in fig.axes for t in ax.texts)
