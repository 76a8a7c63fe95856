"""The frozen-backbone ablation protocol: cached features must give the model's own logits."""
import pytest
import torch

from poster_lite import build_model
from poster_lite.ablation import ROW_IDS, FeatureSplit, FusionOnFeatures, _pack, find_row, run_row
from poster_lite.errors import UserError


def _net_for(model):
    image_channels = model.config.image_token_dim // 4
    return FusionOnFeatures(model, image_channels, model.config.landmark_channels)


@pytest.mark.parametrize("overrides", [{}, {"depth": 4, "swap_depth": 1}, {"image_tokens": "spatial"}])
def test_fusion_on_features_equals_the_full_model(overrides, one_thread):
    torch.manual_seed(0)
    model = build_model("poster-nano", **overrides).eval()
    x = torch.randn(3, 3, 112, 112)
    with torch.no_grad():
        expected = model(x)
        got = _net_for(model)(_pack(model, x))
    assert got.shape == expected.shape == (3, 7)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_image_only_row_reads_only_the_image_part(one_thread):
    torch.manual_seed(0)
    two_streams = build_model("poster-nano").eval()
    image_only = build_model("image-only-nano").eval()
    image_only.image_backbone.load_state_dict(two_streams.image_backbone.state_dict())
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        packed = _pack(two_streams, x)
        expected = image_only(x)
        got = _net_for(image_only)(packed)
        # the landmark part of the features must not matter to an image-only model
        scrambled = packed.clone()
        scrambled[:, 64 * 196:] = torch.randn_like(scrambled[:, 64 * 196:])
        again = _net_for(image_only)(scrambled)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again, expected, atol=1e-5, rtol=1e-5)


def _tiny_features(n=32):
    torch.manual_seed(0)
    model = build_model("poster-nano").eval()
    labels = torch.arange(n) % 7
    x = torch.randn(n, 3, 112, 112) + labels.view(-1, 1, 1, 1) * 0.3
    packed = _pack(model, x).to(torch.bfloat16)
    classes = [f"c{i}" for i in range(7)]
    train = FeatureSplit(torch.stack([packed, packed]), labels, classes)     # two "views"
    held = FeatureSplit(packed[None], labels, classes)
    return {"train": train, "val": held, "test": held}


def test_run_row_trains_only_the_fusion_part(one_thread):
    features = _tiny_features()
    result = run_row("swap0", features, seed=0, epochs=2, batch_size=16, progress=False, sam=False)
    model = result["model"]
    assert model.config.swap_depth == 0 and model.config.depth == 4
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["best_epoch"] in (1, 2)
    assert len(result["history"]) == 2
    assert 0 < result["trained_params"] < result["params"]
    assert all(not p.requires_grad for p in model.image_backbone.parameters())
    # the trained count is exactly the projection, fusion, SE gate and head
    parts = (model.image_proj, model.fusion, model.se, model.head)
    assert result["trained_params"] == sum(p.numel() for part in parts for p in part.parameters())


def test_feature_split_draws_among_views():
    views = torch.stack([torch.zeros(5, 3), torch.ones(5, 3)])
    split = FeatureSplit(views, torch.zeros(5, dtype=torch.long), ["a"])
    seen = {float(split[0][0][0]) for _ in range(50)}
    assert seen == {0.0, 1.0} and len(split) == 5


def test_unknown_row_names_the_known_ones():
    with pytest.raises(UserError, match="known rows: image-only-nano"):
        find_row("swap9")
    assert len(ROW_IDS) == 11


def test_missing_backbones_say_how_to_make_them(tmp_path, monkeypatch):
    from poster_lite import ablation, pretrain

    monkeypatch.setattr(pretrain, "backbone_folders", lambda config: [tmp_path / "none"])
    with pytest.raises(UserError, match="pretrain-backbones poster-nano"):
        ablation.cached_features("poster-nano")
