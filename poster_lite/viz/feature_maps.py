"""The backbones' feature maps: what each stage of the IR-50 and the landmark net sees.

Each row is one layer; the first panel is the mean absolute activation over all its
channels (where the layer responds), the others its most active channels. The last
IR-50 stage (14x14) is what becomes the image tokens; the landmark net's 7x7 map is
the landmark tokens, one per cell.
"""
from __future__ import annotations

import numpy as np
import torch
from matplotlib.patches import Rectangle

from .common import eval_mode, finish, model_input, new_figure


@torch.no_grad()
def feature_maps(model, image, channel_order=None) -> dict:
    """{layer name: C x H x W numpy activations} for one face, from forward hooks."""
    layers = {f"IR-50 stage {k + 1}": stage for k, stage in enumerate(model.image_backbone.stages)}
    if model.landmark_backbone is not None:
        layers["MobileFaceNet conv_6_sep"] = model.landmark_backbone.features
    batch, _ = model_input(model, image, channel_order)
    captured, handles = {}, []
    for name, layer in layers.items():
        handles.append(layer.register_forward_hook(
            lambda module, inputs, output, name=name: captured.__setitem__(name, output[0].float().cpu().numpy())))
    try:
        with eval_mode(model):
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return {name: captured[name] for name in layers}


def plot_feature_maps(model, image, channels: int = 6, channel_order=None, save=None):
    """Rows: backbone layers; columns: the face, mean |activation|, the most active channels."""
    maps = feature_maps(model, image, channel_order)
    _, picture = model_input(model, image, channel_order)
    fig, axes = new_figure(len(maps), channels + 2, (1.55 * (channels + 2) + 0.4, 1.7 * len(maps) + 0.6))
    for row, (name, activation) in zip(axes, maps.items()):
        row[0].imshow(picture)
        row[0].set_ylabel(f"{name}\n{' x '.join(map(str, activation.shape))}", fontsize=8)
        strength = np.abs(activation).mean(axis=(1, 2))
        row[1].imshow(np.abs(activation).mean(axis=0), cmap="viridis")
        row[1].set_title("mean |act.|", fontsize=8)
        for ax, channel in zip(row[2:], np.argsort(-strength)[:channels]):
            ax.imshow(activation[channel], cmap="viridis")
            ax.set_title(f"channel {channel}", fontsize=8)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Backbone feature maps (each panel on its own colour scale)", fontsize=10)
    return finish(fig, save)


def official_token_channels(token: int, channels: int = 256, grid: int = 14) -> list:
    """Which channels the release's raw reshape puts into image token `token` (0..48).

    The C x 14 x 14 map is read in memory order and cut into 49 runs of 4C numbers,
    so a token holds 4C / 196 consecutive whole channels (about 5 in POSTER), not a place.
    """
    per_token = 4 * channels
    first, last = token * per_token, (token + 1) * per_token - 1
    return list(range(first // (grid * grid), last // (grid * grid) + 1))


def plot_token_sources(model, image, token: int = 24, channel_order=None, save=None):
    """Where image token `token` (0..48) comes from: a 2x2 patch (spatial) or whole channels (official).

    Middle: the channel maps the official token reads, with the cells it does not
    include greyed out (its run of numbers starts and ends inside a channel). Right:
    the map in memory order (channels x positions), the token's run highlighted.
    """
    maps = feature_maps(model, image, channel_order)
    last = maps[f"IR-50 stage {len(model.image_backbone.stages)}"]          # C x 14 x 14
    channels, size = last.shape[0], last.shape[1]
    cells = size * size
    sources = official_token_channels(token, channels, size)
    run = np.zeros(channels * cells, bool)
    run[token * 4 * channels:(token + 1) * 4 * channels] = True
    inside = run.reshape(channels, size, size)
    fig, axes = new_figure(1, 3, (12.5, 3.9), gridspec_kw=dict(width_ratios=[1, 2.6, 1.1]))
    axes[0, 0].imshow(np.abs(last).mean(axis=0), cmap="Greys_r")
    row, col = divmod(token, size // 2)
    axes[0, 0].add_patch(Rectangle((2 * col - 0.5, 2 * row - 0.5), 2, 2, fill=False, edgecolor="#e6550d",
                                   linewidth=2.5))
    axes[0, 0].set_title(f"spatial: token {token + 1} = this 2x2 patch\nof all {channels} channels", fontsize=9)
    strips = np.concatenate([np.where(inside[c], last[c], np.nan) for c in sources], axis=1)
    axes[0, 1].imshow(np.ma.masked_invalid(strips), cmap="viridis")
    axes[0, 1].set_facecolor("#d9d9d9")
    for k in range(1, len(sources)):
        axes[0, 1].axvline(k * size - 0.5, color="white", linewidth=2)
    axes[0, 1].set_xticks([size * (k + 0.5) - 0.5 for k in range(len(sources))], [str(c) for c in sources],
                          fontsize=8)
    axes[0, 1].set_xlabel("channel (grey: cells outside the token's run)")
    axes[0, 1].set_title(f"official: token {token + 1} = {4 * channels} numbers in memory order:\n"
                         f"parts of the maps of channels {sources[0]}..{sources[-1]}, no place on the face", fontsize=9)
    axes[0, 2].imshow(run.reshape(channels, cells), cmap="Oranges", aspect="auto", interpolation="nearest")
    axes[0, 2].set_xlabel(f"position (0..{cells - 1})")
    axes[0, 2].set_ylabel("channel")
    axes[0, 2].set_title("memory layout: the token's run", fontsize=9)
    for ax in axes[0, :2]:
        ax.set_yticks([])
    axes[0, 0].set_xticks([])
    fig.suptitle(f"One image token, two readings (sequence position {token + 1}; 0 is the class token)",
                 fontsize=10)
    return finish(fig, save)


__all__ = ["feature_maps", "plot_feature_maps", "official_token_channels", "plot_token_sources"]
