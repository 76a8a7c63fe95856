"""Where the class tokens look: attention per block, pyramid level and head, and which of it is a map of the face.

Every cross-fusion block has two attention branches (`model.forward_with_attention`):
- "lm" updates the landmark stream: keys are landmark tokens; its queries are the
  IMAGE tokens when the block swaps (so row 0 is "the image class token asks the
  landmarks"), the landmark tokens otherwise.
- "img" updates the image stream: keys are image tokens; queries are the LANDMARK
  tokens when the block swaps, the image tokens otherwise.
Row 0 of a branch's 50 x 50 weights is its query class token over keys 0..49.

Keys 1..49 are the cells of a 7 x 7 grid over the face only where nothing has mixed
the tokens yet. Landmark tokens enter the fusion as the cells of MobileFaceNet's 7 x 7
map; image tokens do only with `image_tokens="spatial"` (the release's reshape makes
image token i a slab of about five whole channel maps). Then three things mix all T
tokens (T = 100, or 50 for an image-only model), because each treats the token axis
as channels:
- "down": the smaller pyramid levels are made by Conv1d(T, T, r, stride r);
- "mixer": the RAF-DB release ends every block with a token mixer Conv1d(T, T, 1);
- "up-add": every block adds each smaller level into the next larger one with a
  ConvTranspose1d(T, T, r, stride r).
So in the release's layout exactly one (block, level) attends over grid cells: block
0, level 0 (the first block's largest level), with landmark keys. `mixing_steps`
names what mixed the tokens anywhere else; the plots draw only the grid-cell maps over
the face and every other map by token index, labelled "mixed tokens: not a map of
the face". `plot_token_mixing` shows the mixing weights themselves.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure

from .common import class_names, eval_mode, finish, model_input
from .faces import GRID, draw_token_grid

CMAP = "magma"
UNIFORM = 1 / 50                 # each of 50 keys when attention is spread evenly
MIXED = "mixed tokens: not a map of the face"
CHANNEL_SLABS = ("not a map of the face: image tokens are runs through the\n"
                 "channel maps (image_tokens=\"official\"), not grid cells")
STEP_WORDS = {
    "down": "the level is made by Conv1d(T, T, r, stride r) over the token axis",
    "mixer": "the previous block's token mixer Conv1d(T, T, 1)",
    "up-add": "the previous block's up-add ConvTranspose1d(T, T, r, stride r)",
}


def mixing_steps(block: int, level: int, levels: int, mix_tokens: bool) -> list:
    """What has mixed all tokens before (block, level) attends: [] means its keys are still the input tokens.

    "down": levels below the largest are made by a Conv1d over the token axis;
    "mixer": from the second block on, the previous block's token mixer (RAF-DB release);
    "up-add": from the second block on, the previous block added the next smaller level in.
    """
    steps = []
    if level > 0:
        steps.append("down")
    if block > 0 and mix_tokens:
        steps.append("mixer")
    if block > 0 and level < levels - 1:
        steps.append("up-add")
    return steps


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
    mix_tokens: bool

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
        """Whether this stream's tokens enter the fusion as cells of the 7 x 7 grid."""
        return stream == "lm" or self.image_tokens == "spatial"

    def mixing_steps(self, block: int, level: int) -> list:
        return mixing_steps(block, level, len(self.pyramid_dims), self.mix_tokens)

    def is_face_map(self, block: int, level: int, stream: str) -> bool:
        """True when the keys of this map are still the cells of the 7 x 7 grid."""
        return self.keys_spatial(stream) and not self.mixing_steps(block, level)

    def why_not_a_face_map(self, block: int, level: int, stream: str) -> str:
        """'' for a map of the face; otherwise the label and the reason, for a figure."""
        steps = self.mixing_steps(block, level)
        if steps:
            return MIXED + "\n(" + ";\n".join(STEP_WORDS[s] for s in steps) + ")"
        if not self.keys_spatial(stream):
            return CHANNEL_SLABS
        return ""

    def describe(self, stream: str, block: int) -> str:
        """'<query> cls → <key> tokens' for this branch of this block."""
        if self.image_only:
            return "image cls → image tokens"
        keys = "landmark" if stream == "lm" else "image"
        other = "image" if stream == "lm" else "landmark"
        queries = other if self.swaps[block] else keys
        return f"{queries} cls → {keys} tokens"


@torch.no_grad()
def compute_attention(model, image, channel_order=None) -> AttentionResult:
    """Run one face through `model` as it is wired now, recording every attention map."""
    batch, picture = model_input(model, image, channel_order)
    with eval_mode(model):
        logits, maps = model.forward_with_attention(batch)
    cfg = model.config
    return AttentionResult(
        image=picture,
        probabilities=torch.softmax(logits[0].float(), -1).cpu().numpy(),
        classes=class_names(model, cfg.num_classes),
        maps={key: weights[0].float().cpu().numpy() for key, weights in maps.items()},
        # The blocks' own flags, not the config's: a caller may have rewired them.
        swaps=[block.swap for block in model.fusion.blocks],
        pyramid_dims=tuple(cfg.pyramid_dims),
        image_tokens=cfg.image_tokens,
        image_only=cfg.image_only,
        mix_tokens=cfg.mix_tokens,
    )


def _result(source, image, channel_order=None) -> AttentionResult:
    if isinstance(source, AttentionResult):
        return source
    if image is None:
        raise ValueError("pass a face image together with the model (or an AttentionResult)")
    return compute_attention(source, image, channel_order)


def class_token_map(weights: np.ndarray, head="mean") -> np.ndarray:
    """Row 0 (the query class token) over keys 1..49, as a 7x7 grid.

    `weights`: heads x 50 x 50. `head`: an index, "mean" (head-averaged) or "all"
    (heads x 7 x 7). The weight on the key class token is left out of the grid.
    Only meaningful as a picture of the face where `AttentionResult.is_face_map` says so.
    """
    row = np.asarray(weights)[:, 0, 1:1 + GRID * GRID]                 # heads x 49
    grids = row.reshape(-1, GRID, GRID)                                 # heads x 7 x 7
    if head == "all":
        return grids
    if head == "mean":
        return grids.mean(axis=0)
    return grids[int(head)]


def class_token_row(weights: np.ndarray) -> np.ndarray:
    """Row 0 over keys 1..49, head-averaged: the class token's weights by token index."""
    return np.asarray(weights)[:, 0, 1:1 + GRID * GRID].mean(axis=0)


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
        line = bar.ax.axhline if bar.orientation == "vertical" else bar.ax.axvline
        line(UNIFORM, color="white", linewidth=1.5)
        line(UNIFORM, color="black", linewidth=0.8, linestyle="--")
        label = bar.ax.get_ylabel() if bar.orientation == "vertical" else bar.ax.get_xlabel()
        bar.set_label((label or "weight") + "   (dashed: 1/50, uniform)", fontsize=7)


def _token_bars(ax, values: np.ndarray, title: str):
    ax.bar(np.arange(1, len(values) + 1), values, color="#6a51a3", width=0.8)
    ax.axhline(UNIFORM, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlim(0.3, len(values) + 0.7)
    ax.set_xlabel("key token index (not a place on the face)", fontsize=8)
    ax.set_ylabel("weight", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title, fontsize=9)


def _note_inside(ax, text: str):
    """A warning box in the upper middle of an axes, with head room made for it."""
    ax.set_ylim(top=ax.get_ylim()[1] * 2.0)
    ax.text(0.5, 0.96, text, ha="center", va="top", fontsize=8, transform=ax.transAxes,
            bbox=dict(boxstyle="round", fc="#fff3cd", ec="#d39e00"))


def plot_attention(source, image=None, block: int = 0, level: int = 0, channel_order=None, save=None):
    """One block and pyramid level, per branch: each head's class-token map and their mean.

    `source` is a model (then pass `image`) or an `AttentionResult`. The default, block
    0 and level 0, is the one place whose landmark keys are grid cells; a branch whose
    keys are not (mixed tokens, or the release's image tokens) is drawn as head-averaged
    bars by token index with the reason. Each row shares one colour scale; titles give
    the weight the class token keeps on the other class token ("cls"), which the 7x7
    grid leaves out.
    """
    result = _result(source, image, channel_order)
    if not 0 <= block < result.depth or not 0 <= level < len(result.pyramid_dims):
        raise ValueError(f"block must be in 0..{result.depth - 1} and level in "
                         f"0..{len(result.pyramid_dims) - 1}, got block={block}, level={level}")
    streams = ["img"] if result.image_only else ["lm", "img"]
    heads = result.num_heads
    fig = Figure(figsize=(1.8 * (heads + 2) + 0.7, 2.3 * len(streams) + 0.8), layout="constrained")
    # One subfigure per row, so that a bar chart in one row does not shift the others.
    for row_fig, stream in zip(fig.subfigures(len(streams), 1, squeeze=False)[:, 0], streams):
        weights = result.maps[(block, level, stream)]
        grid = row_fig.add_gridspec(1, heads + 3, width_ratios=[1] * (heads + 2) + [0.08])
        problem = result.why_not_a_face_map(block, level, stream)
        face = row_fig.add_subplot(grid[0, 0])
        face.imshow(result.image)
        if not problem:                 # the 7 x 7 cells the keys stand for
            draw_token_grid(face, *result.image.shape[:2], numbers=False)
        face.set_xticks([])
        face.set_yticks([])
        face.set_ylabel(result.describe(stream, block).replace(" → ", " →\n"), fontsize=8)
        if problem:
            bars = row_fig.add_subplot(grid[0, 1:])
            _token_bars(bars, class_token_row(weights), "head-averaged, by token index")
            _note_inside(bars, problem)
            continue
        maps = class_token_map(weights, "all")
        limits = (float(maps.min()), float(maps.max()))
        for h in range(heads + 1):
            ax = row_fig.add_subplot(grid[0, 1 + h])
            shown_map = maps[h] if h < heads else maps.mean(axis=0)
            cls_share = weights[h, 0, 0] if h < heads else weights[:, 0, 0].mean()
            shown = overlay(ax, result.image, shown_map, limits)
            ax.set_title(f"{'head ' + str(h + 1) if h < heads else 'mean'}  (cls {cls_share:.2f})", fontsize=8)
        _colorbar(row_fig.colorbar(shown, cax=row_fig.add_subplot(grid[0, -1])))
    swap = "swaps queries" if result.swaps[block] else "no swap (self-attention per stream)"
    fig.suptitle(f"Block {block}, level {level} (dim {result.pyramid_dims[level]}, {heads} heads): {swap}"
                 f"   ·   predicted {result.prediction}", fontsize=10)
    return finish(fig, save)


def plot_attention_overview(source, image=None, stream: str = "lm", channel_order=None, into=None, save=None):
    """One branch's class-token attention at every block and level, head-averaged.

    Left: block 0, level 0 over the face when its keys are grid cells. Right: every
    (block, level) as one row of weights by token index, marked "grid cells" or
    "mixed": the rows past block 0, level 0 are mixtures of all tokens, so they are
    not drawn over the face.
    """
    result = _result(source, image, channel_order)
    if result.image_only:
        stream = "img"
    levels = len(result.pyramid_dims)
    keys = [(b, l) for b in range(result.depth) for l in range(levels)]
    rows = np.stack([class_token_row(result.maps[(b, l, stream)]) for b, l in keys])   # (blocks*levels) x 49
    fig = into if into is not None else _figure((11.0, max(3.4, 0.32 * len(keys) + 1.9)))
    left, right = fig.subfigures(1, 2, width_ratios=[1, 2.6])
    face_ax = left.subplots()
    if result.is_face_map(0, 0, stream):
        shown = overlay(face_ax, result.image, class_token_map(result.maps[(0, 0, stream)]))
        _colorbar(left.colorbar(shown, ax=face_ax, shrink=0.8, location="bottom", label="weight"))
        face_ax.set_title("block 0, level 0: grid cells,\na map of the face", fontsize=9)
    else:
        face_ax.imshow(result.image)
        face_ax.set_xticks([])
        face_ax.set_yticks([])
        face_ax.set_title("image tokens are slabs of channel\nmaps: no map of the face", fontsize=9)
    ax = right.subplots()
    shown = ax.imshow(rows, aspect="auto", cmap=CMAP, interpolation="nearest")
    labels = []
    for b, l in keys:
        kind = "grid cells" if result.is_face_map(b, l, stream) else (
            "mixed" if result.mixing_steps(b, l) else "channel slabs")
        swap = "" if result.image_only else (", swap" if result.swaps[b] else ", no swap")
        labels.append(f"block {b}, level {l} (d {result.pyramid_dims[l]}{swap}): {kind}")
    ax.set_yticks(range(len(keys)), labels, fontsize=7)
    for tick, (b, l) in zip(ax.get_yticklabels(), keys):
        tick.set_color("#006d2c" if result.is_face_map(b, l, stream) else "#555555")
    ax.set_xticks([0, 8, 16, 24, 32, 40, 48], [1, 9, 17, 25, 33, 41, 49], fontsize=7)
    ax.set_xlabel("key token index (a grid cell only in the green rows)", fontsize=8)
    right.colorbar(shown, ax=ax, shrink=0.9, label="weight (head mean)")
    key_name = "landmark" if stream == "lm" else "image"
    fig.suptitle(f"Class-token attention over {key_name} tokens, head-averaged; only grid-cell rows are maps "
                 f"of the face,\nthe others attend over mixed tokens (token mixer, token-axis convolutions, "
                 f"up-adds)   ·   predicted {result.prediction}", fontsize=9)
    return finish(fig, save)


def _figure(size) -> Figure:
    return Figure(figsize=size, layout="constrained")


# ------------------------------------------------------------------ why tokens stop being cells
def _abs_out_in(weight: torch.Tensor, transposed: bool = False) -> np.ndarray:
    """|weight| summed over the kernel, as output token x input token."""
    w = weight.detach().float().abs().sum(-1).cpu().numpy()
    return w.T if transposed else w


def own_token_share(matrix: np.ndarray) -> float:
    """How much of each output token comes from the same input token, averaged: 1 for the
    identity (no mixing), 1/T for an even mix of all T tokens. `matrix`: |weights|, out x in."""
    matrix = np.asarray(matrix, dtype=np.float64)
    return float(np.mean(np.diag(matrix) / matrix.sum(axis=1)))


def token_mixing(model) -> dict:
    """The three token-axis maps of a model, as |weights| (out x in, summed over the kernel):
    {"mixer": block 0's level-0 token mixer, "down": the first down-projection,
    "up-add": block 0's first up-add}; a map the model does not have is left out."""
    fusion = model.fusion
    first = fusion.blocks[0]
    maps = {}
    mixer = first.levels[0].token_mixer
    if mixer is not None:
        maps["mixer"] = _abs_out_in(mixer.weight)
    if len(fusion.downsample):
        maps["down"] = _abs_out_in(fusion.downsample[0].weight)
    if len(first.upsample):
        maps["up-add"] = _abs_out_in(first.upsample[0].weight, transposed=True)   # ConvTranspose: in x out
    return maps


def plot_token_mixing(model, stream: str = "lm", save=None):
    """Which (block, level) attends over grid cells, and the token-axis weights that mix the rest.

    Left: blocks x levels, green where the keys of `stream` are still the 7 x 7 grid
    cells, grey with what mixed them otherwise. Right: the model's own mixing weights
    (|w|, output token x input token) with the share each output token takes from its
    own input token (1 = no mixing, 1/T = an even mix).
    """
    cfg = model.config
    levels, depth = len(cfg.pyramid_dims), cfg.depth
    spatial_keys = stream == "lm" or cfg.image_tokens == "spatial"
    if cfg.image_only:
        stream, spatial_keys = "img", cfg.image_tokens == "spatial"
    maps = token_mixing(model)
    fig = _figure((3.6 + 2.9 * len(maps), 3.9))
    grid = fig.add_gridspec(1, 1 + len(maps), width_ratios=[max(1.3, 0.55 * depth)] + [1] * len(maps))
    ax = fig.add_subplot(grid[0, 0])
    short = {"down": "↓conv", "mixer": "mixer", "up-add": "up-add"}
    for b in range(depth):
        for l in range(levels):
            steps = mixing_steps(b, l, levels, cfg.mix_tokens)
            cell = spatial_keys and not steps
            ax.add_patch(_rectangle(b, l, "#a1d99b" if cell else "#d9d9d9"))
            text = "grid\ncells" if cell else ("\n".join(short[s] for s in steps) if steps else "channel\nslabs")
            ax.text(b + 0.5, l + 0.5, text, ha="center", va="center", fontsize=6.5 if depth > 4 else 7.5)
    ax.set_xlim(0, depth)
    ax.set_ylim(levels, 0)
    ax.set_xticks(np.arange(depth) + 0.5, [str(b) for b in range(depth)], fontsize=8)
    ax.set_yticks(np.arange(levels) + 0.5, [f"{l}\n(d {d})" for l, d in enumerate(cfg.pyramid_dims)], fontsize=8)
    ax.set_xlabel("block")
    ax.set_ylabel("level")
    keys = "landmark" if stream == "lm" else "image"
    ax.set_title(f"keys = {keys} tokens:\ngreen = a map of the face", fontsize=9)
    T = cfg.num_tokens
    r = cfg.pyramid_dims[0] // cfg.pyramid_dims[1] if levels > 1 else 1
    titles = {"mixer": f"block 0's token mixer\nConv1d({T}, {T}, 1)",
              "down": f"level 1 made by\nConv1d({T}, {T}, {r}, stride {r})",
              "up-add": f"block 0's up-add, level 1 → 0\nConvTranspose1d({T}, {T}, {r}, stride {r})"}
    for k, (name, matrix) in enumerate(maps.items()):
        mx = fig.add_subplot(grid[0, 1 + k])
        shown = mx.imshow(matrix, cmap="Greys", interpolation="nearest")
        if not cfg.image_only:                       # the image | landmark halves
            mx.axhline(T / 2 - 0.5, color="#e6550d", lw=0.8)
            mx.axvline(T / 2 - 0.5, color="#e6550d", lw=0.8)
        mx.set_xlabel("input token", fontsize=8)
        mx.set_ylabel("output token", fontsize=8)
        mx.tick_params(labelsize=7)
        mx.set_title(f"{titles[name]}\nown-token share {own_token_share(matrix):.1%} "
                     f"(identity 100%, even {1 / T:.0%})", fontsize=8)
        fig.colorbar(shown, ax=mx, shrink=0.7).ax.tick_params(labelsize=6)
    halves = "" if cfg.image_only else ", orange lines: image | landmark halves"
    fig.suptitle("Where tokens stop being grid cells: each map on the right makes every output token "
                 f"from all {T} input tokens (|weight|{halves})", fontsize=9)
    fig.supxlabel("↓conv: the level is made by a Conv1d over the token axis;  mixer: the previous block's "
                  "token mixer;  up-add: the previous block's ConvTranspose1d from the next smaller level",
                  fontsize=7.5)
    return finish(fig, save)


def _rectangle(b, l, colour):
    from matplotlib.patches import Rectangle
    return Rectangle((b + 0.04, l + 0.04), 0.92, 0.92, fc=colour, ec="black", lw=0.6)
