"""Faces with their 68 landmarks (ground truth vs predicted) and the 7x7 token grid.

The landmark order is the standard 68-point (iBUG) one: 0-16 jaw, 17-26 brows,
27-35 nose, 36-47 eyes, 48-67 mouth. The token grid is what both backbones hand
the transformer: a 7x7 map, each cell one token (16x16 pixels of a 112 px face).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..data import face_geometry
from .common import as_image, finish, model_input, new_figure

GRID = 7            # the 7x7 grid of tokens both backbones end in

def normalised_mean_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """NME of one face (data.face_geometry's definition), as a float for figure titles."""
    return float(face_geometry.normalised_mean_error(np.asarray(predicted, float), np.asarray(truth, float)))


@torch.no_grad()
def predict_landmarks(model, images, channel_order=None) -> np.ndarray:
    """N x 68 x 2 landmarks from the landmark net's own head, in pixels.

    POSTER never uses this head (it reads the 7x7 feature map), but the head is what
    the landmark net was pretrained for; its 136 outputs are (x, y) pairs in [0, 1]
    units of the face. Accepts a batch tensor (pixels of the model input) or one
    image of any kind (pixels of that image, whatever its size).
    """
    backbone = getattr(model, "landmark_backbone", model)
    if backbone is None:
        raise ValueError("this model has no landmark backbone (image-only); nothing predicts landmarks")
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        batch = images.to(next(model.parameters()).device)
        width = height = images.shape[-1]
    else:
        batch, picture = model_input(model, images, channel_order)
        height, width = picture.shape[:2]
    config = getattr(model, "config", None)
    size = config.backbone_size if config is not None else 112
    if batch.shape[-1] != size:
        batch = F.interpolate(batch, size=size, mode=config.backbone_resize if config else "bilinear")
    was_training = backbone.training
    backbone.eval()
    try:
        points = backbone.landmarks(backbone(batch))
    finally:
        backbone.train(was_training)
    return points.reshape(len(batch), -1, 2).cpu().numpy() * np.array([width, height], dtype=np.float32)


def _as_list(value, count):
    if value is None:
        return [None] * count
    if isinstance(value, np.ndarray) and value.ndim == 2:
        return [value]
    return list(value)


def draw_landmarks(ax, truth=None, predicted=None, marker_size: float = 10) -> None:
    """Ground truth as green dots, predictions as red crosses joined to their truth."""
    if truth is not None:
        truth = np.asarray(truth)
        ax.scatter(truth[:, 0], truth[:, 1], s=marker_size, c="#2ca02c", edgecolors="white",
                   linewidths=0.4, label="ground truth", zorder=3)
    if predicted is not None:
        predicted = np.asarray(predicted)
        ax.scatter(predicted[:, 0], predicted[:, 1], s=marker_size * 1.6, c="#d62728", marker="x",
                   linewidths=1.0, label="predicted", zorder=4)
        if truth is not None:
            for (x0, y0), (x1, y1) in zip(truth, predicted):
                ax.plot([x0, x1], [y0, y1], color="#ffdd57", linewidth=0.6, zorder=2)


def plot_landmarks(images, landmarks=None, predicted=None, titles=None, ncols: int = 4,
                   panel_size: float = 2.6, save=None):
    """One panel per face: its ground-truth and/or predicted 68 landmarks.

    `images`: one image or a list (arrays, PIL images or tensors). `landmarks` and
    `predicted`: 68 x 2 arrays in the images' pixel coordinates (one, or a list).
    With both, each title gives the normalised mean error (inter-ocular).
    """
    single = not isinstance(images, (list, tuple)) and not (isinstance(images, torch.Tensor) and images.dim() == 4)
    images = [images] if single else list(images)
    truths, preds = _as_list(landmarks, len(images)), _as_list(predicted, len(images))
    ncols = min(ncols, len(images))
    nrows = math.ceil(len(images) / ncols)
    fig, axes = new_figure(nrows, ncols, (panel_size * ncols, panel_size * nrows + 0.4))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        picture = as_image(images[i])
        ax.imshow(picture)
        draw_landmarks(ax, truths[i], preds[i], marker_size=max(4, 900 / picture.shape[0]))
        title = titles[i] if titles else ""
        if truths[i] is not None and preds[i] is not None:
            title = f"{title}\nNME {normalised_mean_error(preds[i], truths[i]):.3f}".strip()
        ax.set_title(title, fontsize=9)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    return finish(fig, save)


def draw_token_grid(ax, height: int, width: int, grid: int = GRID, numbers: bool = True,
                    color: str = "white") -> None:
    for k in range(1, grid):
        ax.axhline(k * height / grid, color=color, linewidth=0.7, alpha=0.8)
        ax.axvline(k * width / grid, color=color, linewidth=0.7, alpha=0.8)
    if numbers:
        for row in range(grid):
            for col in range(grid):
                ax.text((col + 0.5) * width / grid, (row + 0.5) * height / grid, str(row * grid + col + 1),
                        ha="center", va="center", fontsize=7, color=color,
                        bbox=dict(boxstyle="round,pad=0.1", fc="black", alpha=0.35, lw=0))


def plot_token_grid(image, landmarks=None, grid: int = GRID, image_tokens: str = "spatial", save=None):
    """The face cut into the 7x7 grid of tokens, numbered as in the token sequence.

    Token 0 of each stream is the class token (the mean of the 49), so the cells are
    tokens 1..49. Landmark tokens always follow this grid. Image tokens follow it
    only with `image_tokens="spatial"`; the release's "official" reshape makes each
    image token a slab of about five whole channel maps instead, which the right
    panel says.
    """
    picture = as_image(image)
    height, width = picture.shape[:2]
    official = image_tokens == "official"
    fig, axes = new_figure(1, 2 if official else 1, (9.0 if official else 4.4, 4.9),
                           gridspec_kw=dict(width_ratios=[1, 1.15] if official else [1]))
    ax = axes[0, 0]
    ax.imshow(picture)
    draw_token_grid(ax, height, width, grid)
    draw_landmarks(ax, landmarks, marker_size=6)
    ax.set_title(f"{grid}x{grid} = {grid * grid} tokens (+ class token 0)\n"
                 f"each cell {height // grid}x{width // grid} px: landmark tokens"
                 + ("" if official else " and image tokens"), fontsize=9)
    ax.axis("off")
    if official:
        note = axes[0, 1]
        note.axis("off")
        note.text(0.02, 0.5,
                  "image_tokens = \"official\"\n\n"
                  "The release turns the IR-50's 256 x 14 x 14 map\n"
                  "into 49 tokens of 1024 with a raw reshape.\n"
                  "Token i is then the i-th run of 1024 numbers\n"
                  "in channel-major memory: about 5 whole\n"
                  "channel maps, NOT a cell of this grid.\n\n"
                  "Only the landmark tokens are spatial.\n"
                  "image_tokens=\"spatial\" (2x2 space-to-depth)\n"
                  "makes image token i this grid's cell i.",
                  va="center", fontsize=8.5, family="monospace")
    return finish(fig, save)
