"""Grad-CAM and friends on POSTER's backbones, through the `grad-cam` package.

Class activation maps weight a layer's channels by how much they matter for one
class (Grad-CAM: the mean gradient; Grad-CAM++: a positive-gradient weighting;
Score-CAM: the class score when the input is masked by each channel, no gradients;
LayerCAM: gradients per position) and show the weighted sum over the face.

POSTER needs three adapters for the package:
- a model that returns logits only (the authors' release returns (logits, features));
- a reshape transform for token layers, which the package expects as B x C x H x W;
- gradients through the FROZEN landmark net, which normally runs under no_grad with
  requires_grad off: switched on for the explanation only, then put back exactly.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .common import class_names, eval_mode, finish, model_input, new_figure
from .faces import GRID

CAM_TARGETS = {
    "image_backbone": "IR-50 last stage (14x14)",
    "landmark_backbone": "MobileFaceNet conv_6_sep (7x7)",
    "image_tokens": "projected image tokens (7x7)",
}


def cam_methods() -> dict:
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM
    return {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM, "layercam": LayerCAM}


class LogitsOnly(nn.Module):
    """Wraps a model so that calling it gives logits only, whatever it returns."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, (tuple, list)) else out


def tokens_to_grid(tokens: torch.Tensor, grid: int = GRID) -> torch.Tensor:
    """B x N x C tokens (the last grid*grid are the cells) -> B x C x grid x grid."""
    cells = tokens[:, -grid * grid:]
    return cells.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], grid, grid)


def target_layer(model, target: str):
    """(layer to hook, reshape transform or None, module whose weights must pass gradients)."""
    if target not in CAM_TARGETS:
        raise UserError(f"unknown Grad-CAM target {target!r}; choose one of {', '.join(CAM_TARGETS)}")
    if target == "image_backbone":
        return model.image_backbone.stages[-1], None, model.image_backbone
    if target == "landmark_backbone":
        if model.landmark_backbone is None:
            raise UserError("target 'landmark_backbone' needs a landmark stream; this model is image-only")
        return model.landmark_backbone.features, None, model.landmark_backbone
    if model.config.image_tokens != "spatial":
        raise UserError("target 'image_tokens' needs spatial image tokens: with image_tokens='official' "
                        "token i is a run of whole channel maps, not a place on the face, so a map over "
                        "the face would mislead. Use 'image_backbone' or a model with image_tokens='spatial'.")
    return model.image_proj, tokens_to_grid, model.image_proj


@contextlib.contextmanager
def gradients_through(model, module: nn.Module):
    """Let gradients reach `module` (e.g. the frozen landmark net) for a while, then restore.

    Restores `model.landmark_no_grad`, every parameter's requires_grad flag and any
    gradients already accumulated (the package zeroes them), so that explaining in
    the middle of training changes nothing.
    """
    params = list(model.parameters())
    saved_flags = [p.requires_grad for p in params]
    saved_grads = [p.grad for p in params]
    saved_no_grad = getattr(model, "landmark_no_grad", None)
    try:
        if saved_no_grad is not None:
            model.landmark_no_grad = False
        module.requires_grad_(True)
        yield
    finally:
        if saved_no_grad is not None:
            model.landmark_no_grad = saved_no_grad
        for p, flag, grad in zip(params, saved_flags, saved_grads):
            p.requires_grad_(flag)
            p.grad = grad


def compute_cam(model, images, target: str = "image_backbone", method: str = "gradcam",
                class_index=None, channel_order=None) -> np.ndarray:
    """N x H x W maps in [0, 1] at the input's size, one per image.

    `images`: a normalised batch (N x 3 x S x S) or one image of any kind.
    `class_index`: the class to explain (int, or one per image); None = the predicted one.
    """
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    methods = cam_methods()
    if method not in methods:
        raise UserError(f"unknown CAM method {method!r}; choose one of {', '.join(methods)}")
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        batch = images.to(next(model.parameters()).device)
    else:
        batch, _ = model_input(model, images, channel_order)
    layer, reshape, owner = target_layer(model, target)
    if class_index is None:
        targets = None
    else:
        indices = [class_index] * len(batch) if np.isscalar(class_index) else list(class_index)
        targets = [ClassifierOutputTarget(int(k)) for k in indices]
    with eval_mode(model), gradients_through(model, owner):
        with methods[method](model=LogitsOnly(model), target_layers=[layer], reshape_transform=reshape) as cam:
            maps = cam(input_tensor=batch, targets=targets)
    return np.asarray(maps, dtype=np.float32)


def plot_cam(model, image, targets=None, methods=("gradcam", "gradcam++"), class_index=None,
             channel_order=None, save=None):
    """Rows: CAM methods; columns: the face, then one map per target layer.

    By default every target that is meaningful for this model: both backbones, and the
    image tokens only when they are spatial.
    """
    if targets is None:
        targets = [t for t in CAM_TARGETS
                   if not (t == "landmark_backbone" and model.landmark_backbone is None)
                   and not (t == "image_tokens" and model.config.image_tokens != "spatial")]
    batch, picture = model_input(model, image, channel_order)
    with torch.no_grad(), eval_mode(model):
        probabilities = torch.softmax(LogitsOnly(model)(batch)[0].float(), -1).cpu().numpy()
    explained = int(np.argmax(probabilities)) if class_index is None else int(class_index)
    names = class_names(model, len(probabilities))
    fig, axes = new_figure(len(methods), len(targets) + 1, (2.6 * (len(targets) + 1), 2.7 * len(methods) + 0.5))
    for r, method in enumerate(methods):
        axes[r, 0].imshow(picture)
        axes[r, 0].set_ylabel(method, fontsize=10)
        axes[r, 0].set_xticks([])
        axes[r, 0].set_yticks([])
        for c, target in enumerate(targets, start=1):
            heat = compute_cam(model, batch, target, method, explained)[0]
            ax = axes[r, c]
            ax.imshow(picture)
            shown = ax.imshow(heat, cmap="jet", alpha=0.45, vmin=0, vmax=1,
                              extent=(0, picture.shape[1], picture.shape[0], 0))
            ax.axis("off")
            if r == 0:
                ax.set_title(CAM_TARGETS[target].replace(" (", "\n("), fontsize=9)
    fig.colorbar(shown, ax=axes[:, -1].tolist(), shrink=0.7, label="relevance (min-max per map)")
    fig.suptitle(f"Explaining \"{names[explained]}\" (p = {probabilities[explained]:.2f}); "
                 f"predicted {names[int(np.argmax(probabilities))]}", fontsize=10)
    return finish(fig, save)
