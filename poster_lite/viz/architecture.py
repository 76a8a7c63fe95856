"""Board drawings of a configuration: which blocks swap queries, and the pyramid's levels."""
from __future__ import annotations

from matplotlib.patches import FancyArrowPatch, Rectangle

from .common import finish, new_figure

SWAP_COLOUR, SELF_COLOUR = "#fdae6b", "#9ecae1"


def _config(source):
    return getattr(source, "config", source)


def draw_block_schedule(ax, config) -> None:
    """Blocks left to right; inside each, the two streams' queries either cross (swap) or not."""
    depth, swaps = config.depth, config.swap_blocks
    for b in range(depth):
        swap = b < swaps
        ax.add_patch(Rectangle((b + 0.08, 0.1), 0.84, 0.8, fc=SWAP_COLOUR if swap else SELF_COLOUR,
                               ec="black", lw=0.8))
        ax.text(b + 0.5, 0.97, f"block {b}", ha="center", va="bottom", fontsize=8)
        if config.image_only:
            ax.annotate("", (b + 0.75, 0.5), (b + 0.25, 0.5), arrowprops=dict(arrowstyle="->", lw=1.2))
            continue
        ax.text(b + 0.5, 0.8, "img", ha="center", fontsize=7)
        ax.text(b + 0.5, 0.14, "lm", ha="center", fontsize=7)
        if swap:    # each stream's queries go to the other stream's attention
            ax.annotate("", (b + 0.75, 0.3), (b + 0.25, 0.7), arrowprops=dict(arrowstyle="->", lw=1.2))
            ax.annotate("", (b + 0.75, 0.7), (b + 0.25, 0.3), arrowprops=dict(arrowstyle="->", lw=1.2))
        else:
            ax.annotate("", (b + 0.75, 0.7), (b + 0.25, 0.7), arrowprops=dict(arrowstyle="->", lw=1.2))
            ax.annotate("", (b + 0.75, 0.3), (b + 0.25, 0.3), arrowprops=dict(arrowstyle="->", lw=1.2))
    ax.set_xlim(0, max(depth, 4))
    ax.set_ylim(0, 1.15)
    ax.axis("off")


def plot_block_schedule(source, caption: str = "", into=None, save=None):
    """The depth and swap depth of a config (or model): crossing arrows = queries swapped."""
    config = _config(source)
    fig, axes = new_figure(1, 1, (max(1.1 * config.depth, 5.0) + 0.4, 2.2 if not caption else 2.6), into)
    draw_block_schedule(axes[0, 0], config)
    kind = ("image only: self-attention" if config.image_only else
            f"{config.swap_blocks} of {config.depth} blocks swap queries (orange), "
            f"{config.depth - config.swap_blocks} attend within their stream (blue)")
    axes[0, 0].set_title(kind + (f"\n{caption}" if caption else ""), fontsize=9)
    return finish(fig, save)


def level_shapes(config) -> list:
    """One dict per pyramid level: tokens, dim, heads, head dim and how it is made and added back."""
    dims = tuple(config.pyramid_dims)
    rows = []
    for k, dim in enumerate(dims):
        down, up = (dims[0] // dim, dims[k - 1] // dim) if k else (1, 1)
        rows.append(dict(level=k, tokens=config.num_tokens, dim=dim, heads=config.num_heads,
                         head_dim=dim // config.num_heads,
                         made_by="input" if k == 0 else f"Conv1d(k={down}, s={down})",
                         added_back=("classifier reads it" if k == 0 else
                                     f"ConvTranspose1d(k={up}, s={up}) into level {k - 1}")))
    return rows


def plot_pyramid(source, caption: str = "", into=None, save=None):
    """The levels as bars whose width is the embedding size, with how each is made and fed back."""
    config = _config(source)
    rows = level_shapes(config)
    widest = rows[0]["dim"]
    fig, axes = new_figure(1, 1, (8.5, 0.95 * len(rows) + (1.4 if caption else 1.0)), into)
    ax = axes[0, 0]
    for r in rows:
        y = len(rows) - 1 - r["level"]
        width = r["dim"] / widest
        ax.add_patch(Rectangle((0, y + 0.15), width, 0.7, fc="#c6dbef", ec="#08519c"))
        ax.text(0.01, y + 0.5, f"level {r['level']}: {r['tokens']} x {r['dim']}", va="center", fontsize=9,
                fontweight="bold")
        ax.text(1.04, y + 0.5, f"{r['heads']} heads x {r['head_dim']}\nmade by {r['made_by']}\n"
                f"then {r['added_back']}", va="center", fontsize=7.5)
        if r["level"]:
            ax.add_patch(FancyArrowPatch((width + 0.02, y + 0.85), (width + 0.02, y + 1.15),
                                         arrowstyle="->", mutation_scale=10, color="#08519c"))
    ax.set_xlim(0, 1.75)
    ax.set_ylim(0, len(rows))
    ax.axis("off")
    ax.set_title(f"Pyramid over the embedding axis: {len(rows)} level(s), dims {list(config.pyramid_dims)}"
                 + (f"\n{caption}" if caption else ""), fontsize=9)
    return finish(fig, save)
