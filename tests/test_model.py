"""Ablation switches, attention paths, the frozen landmark stream."""
import pytest
import torch

import poster_lite as pl
from poster_lite.models.fusion import GivenQueryAttention


def _forward_backward(model, batch=2):
    x = torch.randn(batch, 3, model.config.input_size, model.config.input_size)
    logits = model(x)
    assert logits.shape == (batch, model.config.num_classes)
    logits.sum().backward()
    assert model.head.weight.grad is not None and torch.isfinite(model.head.weight.grad).all()
    return logits


@pytest.mark.parametrize("dims", [(512,), (512, 256), (512, 256, 128), (512, 256, 128, 64)])
def test_pyramid_levels(dims):
    torch.manual_seed(0)
    model = pl.build_model("poster-nano", pyramid_dims=dims, num_heads=8, landmark_channels=512, depth=1)
    assert len(model.fusion.blocks[0].levels) == len(dims)
    assert len(model.fusion.downsample) == len(dims) - 1
    _forward_backward(model)


@pytest.mark.parametrize("swap_depth", range(0, 9))
def test_swap_depth(swap_depth):
    model = pl.build_model("poster-nano", depth=8, swap_depth=swap_depth)
    assert [b.swap for b in model.fusion.blocks] == [i < swap_depth for i in range(8)]
    _forward_backward(model, batch=1)


@pytest.mark.parametrize("depth", range(1, 9))
def test_depth(depth):
    model = pl.build_model("poster-nano", depth=depth)
    assert len(model.fusion.blocks) == depth
    rates = [b.levels[0].img.drop_path.p for b in model.fusion.blocks]
    # linspace(0, 0.1, depth): a single block gets rate 0, as in the release.
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.1 if depth > 1 else 0.0)
    _forward_backward(model, batch=1)


@pytest.mark.parametrize("mode", ["official", "spatial"])
@pytest.mark.parametrize("image_only", [False, True])
def test_token_modes_and_image_only(mode, image_only):
    model = pl.build_model("poster-nano", image_tokens=mode, image_only=image_only)
    assert (model.landmark_backbone is None) == image_only
    assert model.config.num_tokens == (50 if image_only else 100)
    _forward_backward(model)


def test_spatial_tokens_are_grid_cells():
    from poster_lite.models.poster import image_tokens_from_map
    fmap = torch.zeros(1, 256, 14, 14)
    fmap[0, :, 2:4, 4:6] = 1.0                     # the 2x2 patch of grid cell (1, 2)
    spatial = image_tokens_from_map(fmap, "spatial")
    assert spatial.shape == (1, 49, 1024)
    assert torch.nonzero(spatial.abs().sum(-1)[0]).flatten().tolist() == [1 * 7 + 2]
    official = image_tokens_from_map(fmap, "official")
    assert official.shape == (1, 49, 1024)
    # The release's reshape smears that patch over every token (each holds whole channel maps).
    assert (official.abs().sum(-1)[0] > 0).sum() > 40


def test_fused_and_explicit_attention_agree():
    torch.manual_seed(0)
    attn = GivenQueryAttention(64, 8)
    q, ctx = torch.randn(3, 50, 64), torch.randn(3, 50, 64)
    fused = attn(q, ctx)
    attn.fused = False
    explicit = attn(q, ctx)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)


def test_whole_model_fused_vs_explicit(nano):
    nano.eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        fused = nano(x)
        logits, maps = nano.forward_with_attention(x)
        explicit = nano.set_fused_attn(False)(x)
    torch.testing.assert_close(fused, explicit, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fused, logits, rtol=1e-5, atol=1e-5)
    cfg = nano.config
    assert len(maps) == cfg.depth * len(cfg.pyramid_dims) * 2
    w = maps[(0, 0, "img")]
    assert w.shape == (2, cfg.num_heads, 50, 50)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, cfg.num_heads, 50))
    # Recording is switched off again afterwards.
    assert all(not m.record and m.weights is None for m in nano.attention_modules().values())


def test_no_swap_keeps_streams_apart():
    """Without swap, token mixing and pyramid, the image class token never sees the landmark net.

    (The pyramid's Conv1d / ConvTranspose1d treat the 100 tokens as channels, so they
    mix the two streams too: a one-level pyramid is needed for full separation.)
    """
    torch.manual_seed(0)
    model = pl.build_model("poster-nano", swap_depth=0, mix_tokens=False, pyramid_dims=(128,),
                           drop_path_rate=0.0).eval()
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        before = model(x)
        for p in model.landmark_backbone.parameters():
            p.add_(0.5 * torch.randn_like(p))
        after = model(x)
    torch.testing.assert_close(before, after)
    swapping = pl.build_model("poster-nano", mix_tokens=False, pyramid_dims=(128,), drop_path_rate=0.0).eval()
    with torch.no_grad():
        before = swapping(x)
        for p in swapping.landmark_backbone.parameters():
            p.add_(0.5 * torch.randn_like(p))
        assert not torch.allclose(before, swapping(x))


def test_landmark_backbone_is_frozen(nano):
    nano.train()
    assert not nano.landmark_backbone.training
    assert all(not p.requires_grad for p in nano.landmark_backbone.parameters())
    nano(torch.randn(2, 3, 112, 112)).sum().backward()
    assert all(p.grad is None for p in nano.landmark_backbone.parameters())


def test_overrides_and_config_round_trip():
    model = pl.build_model("poster-l", num_classes=8, mix_tokens=False, swap_depth=2, pyramid_dims=(512, 256))
    cfg = model.config
    assert (cfg.num_classes, cfg.mix_tokens, cfg.swap_depth, cfg.pyramid_dims) == (8, False, 2, (512, 256))
    assert pl.PosterConfig.from_dict(cfg.to_dict()) == cfg


def test_nano_keeps_every_element(nano):
    cfg = nano.config
    assert nano.landmark_backbone is not None and len(cfg.pyramid_dims) >= 3
    assert cfg.swap_blocks == cfg.depth and cfg.mix_tokens
    assert sum(p.numel() for p in nano.parameters()) < 3_000_000
