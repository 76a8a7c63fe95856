"""Attention maps: shapes, rows that sum to 1, the token grid, which maps are maps of the face, and the pictures."""
import numpy as np
import pytest
import torch

from poster_lite import build_model
from poster_lite.viz import attention

# Tiny models on a 2-core machine: see the one_thread fixture in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


def _sup_texts(fig) -> list:
    out = [getattr(fig, a).get_text() for a in ("_suptitle", "_supxlabel") if getattr(fig, a, None) is not None]
    for sub in getattr(fig, "subfigs", []):
        out += _sup_texts(sub)
    return out


def _texts(fig) -> str:
    """Every title, label, tick label and text of a figure and its subfigures, once each."""
    out = _sup_texts(fig)
    for ax in fig.axes:                      # a figure's axes include its subfigures' axes
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()] + [t.get_text() for t in ax.texts]
        out += [t.get_text() for t in ax.get_yticklabels()]
    return " ".join(out)


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
    np.testing.assert_allclose(attention.class_token_row(weights), grids.mean(axis=0).ravel(), atol=1e-7)


def test_swap_decides_which_class_token_asks(official_result):
    _, result = official_result
    assert result.describe("lm", 0) == "image cls → landmark tokens"
    assert result.describe("img", 0) == "landmark cls → image tokens"
    result.swaps[1] = False
    try:
        assert result.describe("img", 1) == "image cls → image tokens"
    finally:
        result.swaps[1] = True


def test_only_block_0_level_0_with_landmark_keys_is_a_map_of_the_face(official_result):
    model, result = official_result
    cfg = model.config
    faces = {(b, l, s) for b in range(cfg.depth) for l in range(len(cfg.pyramid_dims)) for s in ("lm", "img")
             if result.is_face_map(b, l, s)}
    assert faces == {(0, 0, "lm")}
    assert result.mixing_steps(0, 1) == ["down"]
    assert result.mixing_steps(1, 0) == ["mixer", "up-add"]
    assert result.mixing_steps(1, 2) == ["down", "mixer"]          # the smallest level gets no up-add
    assert result.why_not_a_face_map(1, 0, "lm").startswith(attention.MIXED)
    assert "channel maps" in result.why_not_a_face_map(0, 0, "img")
    assert result.why_not_a_face_map(0, 0, "lm") == ""


def test_without_mixer_and_pyramid_every_blocks_tokens_stay_cells():
    assert attention.mixing_steps(3, 0, levels=1, mix_tokens=False) == []
    assert attention.mixing_steps(3, 0, levels=3, mix_tokens=False) == ["up-add"]
    assert attention.mixing_steps(3, 0, levels=1, mix_tokens=True) == ["mixer"]


def test_the_token_axis_maps_mix_every_token():
    """The reason the figures give, checked on the layers: change one input token, and every
    output token of the down-projection, the token mixer and the up-add changes."""
    torch.manual_seed(0)
    model = build_model("poster-nano", depth=2).eval()
    fusion, first = model.fusion, model.fusion.blocks[0]
    x = torch.randn(1, 100, 128)
    nudged = x.clone()
    nudged[0, 60] += 1.0                                     # one landmark token
    small = torch.randn(1, 100, 64)
    nudged_small = small.clone()
    nudged_small[0, 60] += 1.0
    with torch.no_grad():
        for layer, a, b in [(fusion.downsample[0], x, nudged), (first.levels[0].token_mixer, x, nudged),
                            (first.upsample[0], small, nudged_small)]:
            changed = (layer(a) - layer(b)).abs().amax(dim=-1)[0]       # per output token
            assert (changed > 1e-6).all(), f"{layer}: some output tokens ignore input token 60"
    shares = {name: attention.own_token_share(m) for name, m in attention.token_mixing(model).items()}
    assert set(shares) == {"mixer", "down", "up-add"}
    assert all(share < 0.05 for share in shares.values())              # far from the identity's 1
    assert attention.own_token_share(np.eye(5)) == 1.0
    assert attention.own_token_share(np.ones((5, 5))) == pytest.approx(0.2)


def test_plot_attention_draws_grid_cells_over_the_face_and_the_rest_by_index(official_result, tmp_path):
    model, result = official_result
    heads = model.config.num_heads
    fig = attention.plot_attention(result, save=tmp_path / "attention.png")        # default: block 0, level 0
    assert (tmp_path / "attention.png").stat().st_size > 10_000
    titled = [ax.get_title() for ax in fig.axes if ax.get_title().startswith(("head ", "mean"))]
    assert len(titled) == heads + 1                                    # the landmark row only
    text = _texts(fig)
    assert "Block 0, level 0" in text and "not a map of the face" in text and "channel maps" in text
    later = attention.plot_attention(result, block=1, level=0)
    assert not [ax for ax in later.axes if ax.get_title().startswith("head ")]
    assert _texts(later).count(attention.MIXED) == 2                   # both branches, labelled
    with pytest.raises(ValueError, match="block must be"):
        attention.plot_attention(result, block=5)


def test_spatial_model_draws_face_maps_for_both_streams_at_block_0_level_0(face):
    torch.manual_seed(1)
    model = build_model("poster-nano", depth=2, image_tokens="spatial")
    result = attention.compute_attention(model, face)
    assert result.is_face_map(0, 0, "img") and result.is_face_map(0, 0, "lm")
    fig = attention.plot_attention(result)
    assert len([ax for ax in fig.axes if ax.get_title().startswith("mean")]) == 2
    assert "not a map of the face" not in _texts(fig)
    assert _texts(attention.plot_attention(result, block=0, level=2)).count(attention.MIXED) == 2


def test_overview_puts_one_map_on_the_face_and_every_level_by_token_index(official_result, tmp_path):
    model, result = official_result
    cfg = model.config
    overview = attention.plot_attention_overview(result, save=tmp_path / "overview.png")
    matrix = [ax for ax in overview.axes if ax.get_images() and ax.get_images()[0].get_array().shape[1] == 49]
    assert len(matrix) == 1 and matrix[0].get_images()[0].get_array().shape[0] == cfg.depth * len(cfg.pyramid_dims)
    labels = [t.get_text() for t in matrix[0].get_yticklabels()]
    assert sum(label.endswith("grid cells") for label in labels) == 1 and labels[0].startswith("block 0, level 0")
    assert "a map of the face" in _texts(overview)
    image_stream = attention.plot_attention_overview(result, stream="img")
    assert "no map of the face" in _texts(image_stream)
    assert not any(t.get_text().endswith("grid cells") for ax in image_stream.axes for t in ax.get_yticklabels())


def test_token_mixing_figure_marks_one_grid_cell_place(official_result, tmp_path):
    model, _ = official_result
    fig = attention.plot_token_mixing(model, save=tmp_path / "mixing.png")
    schematic = fig.axes[0]
    assert [t.get_text() for t in schematic.texts].count("grid\ncells") == 1
    assert "own-token share" in _texts(fig)
    assert (tmp_path / "mixing.png").exists()
    official_image = attention.plot_token_mixing(model, stream="img")
    assert [t.get_text() for t in official_image.axes[0].texts].count("grid\ncells") == 0


def test_image_only_model_has_one_stream_and_no_map_of_the_face(face):
    torch.manual_seed(0)
    model = build_model("image-only-nano", depth=1)
    result = attention.compute_attention(model, face)
    assert {key[2] for key in result.maps} == {"img"}
    assert not result.is_face_map(0, 0, "img")
    fig = attention.plot_attention(result)
    labels = [ax.get_ylabel().replace("\n", " ") for ax in fig.axes]
    assert labels.count("image cls → image tokens") == 1
    assert "not a map of the face" in _texts(fig)
    mixing = attention.plot_token_mixing(model)
    assert "50 input tokens" in _texts(mixing) or "all 50" in _texts(mixing)
