"""Where the class tokens look: attention per block, pyramid level and head, and rollout.

Every cross-fusion block has two attention branches (`model.forward_with_attention`):
- "lm" updates the landmark stream: keys are landmark tokens; its queries are the
  IMAGE tokens when the block swaps (so row 0 is "the image class token asks the
  landmarks"), the landmark tokens otherwise.
- "img" updates the image stream: keys are image tokens; queries are the LANDMARK
  tokens when the block swaps, the image tokens otherwise.
Row 0 of a branch's 50 x 50 weights is its query class token; keys 1..49 are the 7x7
grid, so that row is a map over the face. Landmark tokens are always spatial. Image
tokens are spatial only with `image_tokens="spatial"`: the release's "official"
reshape makes image token i a run of whole channel maps (~5 in POSTER), so for such models the image
map is drawn by token index with a warning, and the spatial variant is drawn beside it.

Caveat for all maps past block 0: the RAF-DB release mixes the 100 tokens with a
Conv1d at the end of every block, so "token i" in a later block is position i of a
mixture, not purely cell i. The maps stay useful, but they are not pixel-exact.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .common import class_names, eval_mode, finish, model_input
from .faces import GRID, draw_token_grid

CMAP = "magma"
UNIFORM = 1 / 50                 # each of 50 keys when attention is spread evenly
NOT_SPATIAL = ("image_tokens = \"official\":\nimage tokens are NOT spatial\n"
               "(token i = a run of whole channel maps),\nso no map over the face")


@dataclass
class AttentionResult:
    """Attention weights of one face, as numpy arrays: {(block, level, stream): heads x 50 x 50}."""
    image: np.ndarray
    probabilities: np.ndarray
    classes: list
    maps: dict
    swaps: list
    pyramid_dims: tuple
    image_tokens: str
    image_only: bool
    spatial: "AttentionResult | None" = None
    spatial_note: str = ""
    extras: dict = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return len(self.swaps)

    @property
    def num_heads(self) -> int:
        return next(iter(self.maps.values())).shape[0]

    @property
    def prediction(self) -> str:
        k = int(np.argmax(self.probabilities))
        return f"{self.classes[k]} ({self.probabilities[k]:.0%})"

    def keys_spatial(self, stream: str) -> bool:
        return stream == "lm" or self.image_tokens == "spatial"

    def describe(self, stream: str, block: int) -> str:
        """'<query> class token -> <key> tokens' for this branch of this block."""
        keys = "landmark" if stream == "lm" else "image"
        other = "image" if stream == "lm" else "landmark"
        queries = other if self.swaps[block] else keys
        return f"{queries} cls → {keys} tokens"


def spatial_variant(model):
    """The same weights read with image_tokens="spatial" (same shapes, same parameter names)."""
    from ..models import build_model
    twin = build_model(model.config, image_tokens="spatial")
    twin.load_state_dict(model.state_dict())
    twin.meta = getattr(model, "meta", None)
    return twin.to(next(model.parameters()).device).eval()


@torch.no_grad()
def compute_attention(model, image, channel_order=None, spatial_model=None) -> AttentionResult:
    """Run one face through `model` recording every attention map.

    For a model with official (non-spatial) image tokens, the spatial variant is run
    too (`spatial_model` if given, e.g. one trained with spatial tokens; otherwise the
    same weights read spatially) and kept in `.spatial`.
    """
    batch, picture = model_input(model, image, channel_order)
    with eval_mode(model):
        logits, maps = model.forward_with_attention(batch)
    cfg = model.config
    result = AttentionResult(
        image=picture,
        probabilities=torch.softmax(logits[0].float(), -1).cpu().numpy(),
        classes=class_names(model, cfg.num_classes),
        maps={key: weights[0].float().cpu().numpy() for key, weights in maps.items()},
        swaps=[block.swap for block in model.fusion.blocks],
        pyramid_dims=tuple(cfg.pyramid_dims),
        image_tokens=cfg.image_tokens,
        image_only=cfg.image_only,
    )
    if cfg.image_tokens == "official":
        twin = spatial_model if spatial_model is not None else spatial_variant(model)
        result.spatial = compute_attention(twin, batch, channel_order)
        result.spatial.image = picture
        result.spatial_note = ("spatial model supplied" if spatial_model is not None else
                               "spatial variant: same weights read with image_tokens=\"spatial\" "
                               "(not how they were trained)")
    return result


def _result(source, image, channel_order=None, spatial_model=None) -> AttentionResult:
    if isinstance(source, AttentionResult):
        return source
    if image is None:
        raise ValueError("pass a face image together with the model (or an AttentionResult)")
    return compute_attention(source, image, channel_order, spatial_model)


def class_token_map(weights: np.ndarray, head="mean") -> np.ndarray:
    """Row 0 (the query class token) over keys 1..49, as a 7x7 grid.

    `weights`: heads x 50 x 50. `head`: an index, "mean" (head-averaged) or "all"
    (heads x 7 x 7). The weight on the key class token is left out of the grid.
    """
    row = np.asarray(weights)[:, 0, 1:1 + GRID * GRID]                 # heads x 49
    grids = row.reshape(-1, GRID, GRID)
    if head == "all":
        return grids
    if head == "mean":
        return grids.mean(axis=0)
    return grids[int(head)]


def attention_rollout(result: AttentionResult, stream: str = "img", level: int = 0,
                      residual: float = 0.5) -> np.ndarray:
    """How each token of the last block draws on the tokens entering the first (50 x 50).

    Within one stream, branch b mixes that stream's tokens with its head-averaged
    weights A_b (queries only decide the weights), and the residual keeps the rest:
    a step is residual * I + (1 - residual) * A_b. Rollout multiplies the steps,
    first block on the right. Rows sum to 1. It ignores what rollout cannot see: the
    MLPs, the token-mixing Conv1d and the adds between pyramid levels.
    """
    rollout = None
    for block in range(result.depth):
        weights = result.maps[(block, level, stream)].mean(axis=0)
        step = residual * np.eye(len(weights)) + (1 - residual) * weights
        step /= step.sum(axis=-1, keepdims=True)
        rollout = step if rollout is None else step @ rollout
    return rollout


# --------------------------------------------------------------------------- drawing
def overlay(ax, picture: np.ndarray, grid_map: np.ndarray, limits=None, grid: bool = False, cmap=CMAP):
    """The face with a 7x7 map over it (nearest: each cell is one token, not a blur).

    The colours span `limits` (default: the map's own min..max), because attention is
    often close to uniform (1/50 per token) and a 0-based scale would show one colour;
    the colour bar carries the real values.
    """
    height, width = picture.shape[:2]
    low, high = limits if limits is not None else (float(grid_map.min()), float(grid_map.max()))
    ax.imshow(picture)
    shown = ax.imshow(grid_map, cmap=cmap, alpha=0.6, extent=(0, width, height, 0),
                      interpolation="nearest", vmin=low, vmax=max(high, low + 1e-6))
    if grid:
        draw_token_grid(ax, height, width, numbers=False, color="white")
    ax.set_xticks([])
    ax.set_yticks([])
    return shown


def _colorbar(bar) -> None:
    """Mark 1/50, the weight of every token under uniform attention, when it is in range."""
    low, high = bar.mappable.get_clim()
    if low <= UNIFORM <= high:
        bar.ax.axhline(UNIFORM, color="white", linewidth=1.5)
        bar.ax.axhline(UNIFORM, color="black", linewidth=0.8, linestyle="--")
        bar.set_label((bar.ax.get_ylabel() or "weight") + "   (dashed: 1/50, uniform)", fontsize=7)


def _token_bars(ax, values: np.ndarray, title: str):
    ax.bar(np.arange(1, len(values) + 1), values, color="#6a51a3", width=0.8)
    ax.set_xlim(0.3, len(values) + 0.7)
    ax.set_xlabel("image token index (not a place on the face)", fontsize=8)
    ax.set_ylabel("weight", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)


def _note_inside(ax, text: str):
    """A warning box in the upper middle of an axes, with head room made for it."""
    ax.set_ylim(top=ax.get_ylim()[1] * 1.8)
    ax.text(0.5, 0.96, text, ha="center", va="top", fontsize=8, transform=ax.transAxes,
            bbox=dict(boxstyle="round", fc="#fff3cd", ec="#d39e00"))


def plot_attention(source, image=None, block: int = 0, level: int = 0, channel_order=None,
                   spatial_model=None, save=None):
    """One block and pyramid level: each head's class-token map and their mean, per branch.

    `source` is a model (then pass `image`) or an `AttentionResult`. Each row shares
    one colour scale; titles give the weight the class token keeps on the other
    class token ("cls"), which the 7x7 grid leaves out.
    """
    from matplotlib.figure import Figure

    result = _result(source, image, channel_order, spatial_model)
    if not 0 <= block < result.depth or not 0 <= level < len(result.pyramid_dims):
        raise ValueError(f"block must be in 0..{result.depth - 1} and level in "
                         f"0..{len(result.pyramid_dims) - 1}, got block={block}, level={level}")
    rows = [] if result.image_only else [("lm", result)]
    rows.append(("img", result))
    if result.spatial is not None:
        rows.append(("img", result.spatial))
    heads = result.num_heads
    fig = Figure(figsize=(1.8 * (heads + 2) + 0.7, 2.15 * len(rows) + 0.8), layout="constrained")
    # One subfigure per row, so that a bar chart in one row does not shift the others.
    for row_fig, (stream, res) in zip(fig.subfigures(len(rows), 1, squeeze=False)[:, 0], rows):
        weights = res.maps[(block, level, stream)]
        label = res.describe(stream, block) if not res.image_only else "image cls → image tokens"
        if res is result.spatial:
            label = "spatial variant:\n" + label
        spatial = res.keys_spatial(stream)
        grid = row_fig.add_gridspec(1, heads + 3, width_ratios=[1] * (heads + 2) + [0.08])
        face = row_fig.add_subplot(grid[0, 0])
        face.imshow(res.image)
        draw_token_grid(face, *res.image.shape[:2], numbers=False)
        face.set_xticks([])
        face.set_yticks([])
        face.set_ylabel(label.replace(" → ", " →\n"), fontsize=8)
        if not spatial:
            bars = row_fig.add_subplot(grid[0, 1:])
            _token_bars(bars, weights.mean(axis=0)[0, 1:], "head-averaged, by token index")
            _note_inside(bars, NOT_SPATIAL)
            continue
        maps = class_token_map(weights, "all")
        limits = (float(maps.min()), float(maps.max()))
        for h in range(heads + 1):
            ax = row_fig.add_subplot(grid[0, 1 + h])
            shown_map = maps[h] if h < heads else maps.mean(axis=0)
            cls_share = weights[h, 0, 0] if h < heads else weights[:, 0, 0].mean()
            shown = overlay(ax, res.image, shown_map, limits)
            ax.set_title(f"{'head ' + str(h + 1) if h < heads else 'mean'}  (cls {cls_share:.2f})", fontsize=8)
        _colorbar(row_fig.colorbar(shown, cax=row_fig.add_subplot(grid[0, -1])))
    swap = "swaps queries" if result.swaps[block] else "no swap (self-attention per stream)"
    title = (f"Block {block}, level {level} (dim {result.pyramid_dims[level]}, {heads} heads): {swap}"
             f"   ·   predicted {result.prediction}")
    if result.spatial is not None:
        title += f"\n{result.spatial_note}"
    fig.suptitle(title, fontsize=10)
    return finish(fig, save)


def plot_attention_overview(source, image=None, stream: str = "lm", channel_order=None,
                            spatial_model=None, into=None, save=None):
    """Head-averaged class-token maps of one branch for every block (columns) and level (rows)."""
    result = _result(source, image, channel_order, spatial_model)
    if result.image_only:
        stream = "img"
    note = ""
    if not result.keys_spatial(stream):
        note = ("\nimage tokens are not spatial (image_tokens=\"official\"); showing the\n"
                + result.spatial_note.replace(": ", ":\n", 1))
        result = result.spatial
    from .common import new_figure
    levels = len(result.pyramid_dims)
    fig, axes = new_figure(levels, result.depth, (max(1.9 * result.depth + 1.0, 6.0), 2.0 * levels + 1.1), into)
    maps = {(b, l): class_token_map(result.maps[(b, l, stream)]) for b in range(result.depth) for l in range(levels)}
    limits = (min(float(m.min()) for m in maps.values()), max(float(m.max()) for m in maps.values()))
    for (b, l), grid_map in maps.items():
        ax = axes[l, b]
        shown = overlay(ax, result.image, grid_map, limits)
        if l == 0:
            ax.set_title(f"block {b}\n{'swap' if result.swaps[b] else 'no swap'}", fontsize=9)
        if b == 0:
            ax.set_ylabel(f"level {l}\n(dim {result.pyramid_dims[l]})", fontsize=9)
    _colorbar(fig.colorbar(shown, ax=axes[:, -1].tolist(), shrink=0.8, label="weight (head mean)"))
    keys = "landmark" if stream == "lm" else "image"
    fig.suptitle(f"Class-token attention over {keys} tokens, head-averaged\n"
                 f"(the query is the other stream's class token in swap blocks, its own otherwise){note}",
                 fontsize=9)
    return finish(fig, save)


def plot_attention_rollout(source, image=None, level: int = 0, channel_order=None,
                           spatial_model=None, save=None):
    """Attention rollout across all blocks for each stream's class token."""
    from .common import new_figure
    result = _result(source, image, channel_order, spatial_model)
    panels = [("face", result, None)]
    if not result.image_only:
        panels.append(("landmark stream: class token ← landmark tokens", result, "lm"))
    panels.append(("image stream: class token ← image tokens", result, "img"))
    if result.spatial is not None:
        panels.append(("spatial variant, image stream", result.spatial, "img"))
    wide = [i for i, (_, res, stream) in enumerate(panels) if stream and not res.keys_spatial(stream)]
    fig, axes = new_figure(1, len(panels), (2.9 * len(panels) + 1.2 * len(wide), 3.4),
                           gridspec_kw=dict(width_ratios=[1.8 if i in wide else 1 for i in range(len(panels))]))
    for ax, (title, res, stream) in zip(axes[0], panels):
        if stream is None:
            ax.imshow(res.image)
            ax.axis("off")
            ax.set_title(f"predicted {res.prediction}", fontsize=9)
            continue
        rollout = attention_rollout(res, stream, level)
        if not res.keys_spatial(stream):
            _token_bars(ax, rollout[0, 1:], title + "\n(official tokens: not spatial)")
            continue
        shown = overlay(ax, res.image, rollout[0, 1:].reshape(GRID, GRID))
        ax.set_title(title.replace(": ", ":\n"), fontsize=9)
        _colorbar(fig.colorbar(shown, ax=ax, shrink=0.75))
    title = f"Attention rollout over {result.depth} blocks, level {level} (dim {result.pyramid_dims[level]})"
    if result.spatial is not None:
        title += f"\n{result.spatial_note}"
    fig.suptitle(title, fontsize=10)
    return finish(fig, save)
