"""Grad-CAM through pytorch-grad-cam: maps of the input's size, and the frozen net left frozen."""
import numpy as np
import pytest
import torch

from poster_lite import build_model
from poster_lite.errors import UserError
from poster_lite.viz import cam

# Tiny models on a 2-core machine: see the one_thread fixture in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def spatial_nano():
    torch.manual_seed(0)
    return build_model("poster-nano", depth=1, image_tokens="spatial")


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(1)
    return torch.randn(2, 3, 112, 112)


@pytest.mark.parametrize("target", list(cam.CAM_TARGETS))
def test_gradcam_gives_one_map_of_input_size_per_image(spatial_nano, batch, target):
    maps = cam.compute_cam(spatial_nano, batch, target, "gradcam", class_index=3)
    assert maps.shape == (2, 112, 112)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1 + 1e-6
    assert maps.max() > 0.5          # min-max scaled: a map that is not all zeros


def test_gradcam_plus_plus_and_predicted_class(spatial_nano, batch):
    maps = cam.compute_cam(spatial_nano, batch[:1], "landmark_backbone", "gradcam++")
    assert maps.shape == (1, 112, 112) and maps.max() > 0.5


def test_landmark_net_is_frozen_again_afterwards(spatial_nano, batch):
    model = spatial_nano
    model.train()
    head = model.head.weight
    head.grad = torch.full_like(head, 7.0)                    # a gradient the user had accumulated
    cam.compute_cam(model, batch[:1], "landmark_backbone", "gradcam", class_index=0)
    assert model.landmark_no_grad is True
    assert not any(p.requires_grad for p in model.landmark_backbone.parameters())
    assert all(p.grad is None for p in model.landmark_backbone.parameters())
    assert torch.equal(head.grad, torch.full_like(head, 7.0))
    assert model.training                                     # mode given back
    head.grad = None
    model.eval()


def test_the_explanation_needs_the_gradient_switch():
    torch.manual_seed(0)
    model = build_model("poster-nano", depth=1, image_tokens="spatial").eval()
    x = torch.randn(1, 3, 112, 112)
    with cam.gradients_through(model, model.landmark_backbone):
        features = model.landmark_backbone(x)
        assert features.requires_grad
    assert not model.landmark_backbone(x).requires_grad


def test_tokens_to_grid_puts_token_i_in_cell_i():
    tokens = torch.arange(2 * 50 * 3, dtype=torch.float32).reshape(2, 50, 3)
    grid = cam.tokens_to_grid(tokens)
    assert grid.shape == (2, 3, 7, 7)
    assert torch.equal(grid[1, :, 2, 5], tokens[1, 1 + 2 * 7 + 5])


def test_logits_only_unwraps_tuples():
    class Release(torch.nn.Module):
        def forward(self, x):
            return x * 2, x * 3
    assert torch.equal(cam.LogitsOnly(Release())(torch.ones(2)), torch.full((2,), 2.0))


def test_non_spatial_image_tokens_are_refused_with_a_reason(batch):
    model = build_model("poster-nano", depth=1)
    with pytest.raises(UserError, match="spatial"):
        cam.compute_cam(model, batch[:1], "image_tokens")
    with pytest.raises(UserError, match="unknown CAM method"):
        cam.compute_cam(model, batch[:1], "image_backbone", "magic")


def test_plot_cam_figure(spatial_nano, tmp_path):
    from poster_lite.data.synthfer import draw_face
    image, _ = draw_face({"AU4": 1.0}, identity=1)
    fig = cam.plot_cam(spatial_nano, image, methods=("gradcam",), save=tmp_path / "cam.png")
    titles = [ax.get_title() for ax in fig.axes]
    assert any("IR-50" in t for t in titles) and any("MobileFaceNet" in t for t in titles)
    assert any("image tokens" in t for t in titles)
    assert "Explaining" in fig._suptitle.get_text()
    assert (tmp_path / "cam.png").stat().st_size > 10_000
