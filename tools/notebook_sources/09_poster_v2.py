# %% [markdown]
# # 09 · POSTER V2: simpler and stronger
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/poster-lite/poster-lite/blob/main/notebooks/09_poster_v2.ipynb)
#
# > POSTER's successor (POSTER++) beside it: what changed and why, its window cross-attention and multi-scale tokens built by hand and checked against the package, attention maps that are maps of the face, sizes counted both papers' ways, and V1 against V2 at nano scale with one recipe.
#
# POSTER's authors, with others, followed it with **POSTER V2** ("POSTER++: a simpler and
# stronger facial expression recognition network", 2023). It keeps the two backbones and the
# idea that landmarks should tell the image network where to look, and throws away most of the
# rest: the landmark stream no longer gets updated by the image, the pyramid over embedding
# sizes is gone, and the fusion reads **three scales** of both backbones through a **window
# cross-attention**, then a two-block ViT. Its README reports 92.21 % on RAF-DB with 43.7M
# parameters and 8.4G FLOPs, against POSTER's 92.05 % with 71.8M and 15.7G. This notebook
# builds the new parts, checks them against `poster_lite`, and asks how much of "simpler and
# stronger" survives counting in one unit and training both models alike.
#
# **Learning goals.** After this notebook you can
# 1. draw V1 and V2 side by side and name what V2 removed, kept and added;
# 2. write the window cross-attention with its relative position bias and check it number for number against the package;
# 3. turn three maps of different sizes into one token sequence, as V2's embedders do;
# 4. read V2's attention maps on a face, and say why they are maps of the face where V1's mostly are not;
# 5. count parameters and FLOPs in both papers' conventions, and say why 8.4G and 15.7G are not comparable;
# 6. compare two models trained with one recipe on one test set with a paired bootstrap interval.
#
# Time: about one lab hour. On a CPU the notebook runs in a few minutes once both nano models
# exist: the suite ships (or caches) POSTER-nano, and the first run trains POSTER-V2-nano
# with the suite's default recipe (a progress bar; the README's table of times). `SMOKE=1`
# trains it for a few steps only.

# %% tags=["parameters"]
# Parameters: papermill and `make tour` override these (tools/tour.py -p NAME=VALUE).
SMOKE = 0                   # 1: the quickest run that still touches every cell (what the tests run)
DEVICE = "auto"             # "auto" (a GPU if there is one), "cpu" or "cuda"
DATA = "synthfer"           # the faces of sections 4 and 6: "synthfer" or a data set poster_lite.data knows
MODEL = "poster-v2-nano"    # size knob: "poster-v2-nano" trains on a CPU; "poster-v2" is the release's size
BASELINE = "poster-nano"    # the POSTER (V1) it is compared with, trained with the same recipe

# %%
# Setup. On Colab this installs poster-lite from an archive of the project's repository (or
# whatever pip requirement $POSTER_LITE_INSTALL names: a wheel, a tag's archive, a fork);
# locally, `make lab` has already installed it into the project's .venv.
import os
import sys

if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", os.environ.get(
        "POSTER_LITE_INSTALL", "https://github.com/poster-lite/poster-lite/archive/refs/heads/main.zip")], check=True)
    # Keep SynthFER and trained models on your Drive across runtimes (uncomment; Colab asks for access):
    # from google.colab import drive; drive.mount("/content/drive"); os.environ["POSTER_LITE_DATA"] = "/content/drive/MyDrive/poster-lite"

import copy
import math
import statistics
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torch import nn

import poster_lite as pl
from poster_lite import evidence, lab_checks

# Seed, device ("auto": a GPU if there is one) and runs/09_poster_v2/ for this notebook's figures and results.
device, ROOT, RUN_DIR = pl.notebook.setup("09_poster_v2", DEVICE, seed=0)
print(f"SMOKE={SMOKE}")

# %% [markdown]
# ## 1 · What changed, and why
#
# POSTER (V1, notebooks 02 to 04) spends its effort in one place: eight cross-fusion blocks,
# each running **two** attention branches (landmarks ask the image, the image asks the
# landmarks) at **three** embedding sizes, on the $7 \times 7$ and $14 \times 14$ maps of
# the last stage of each backbone. V2 makes three changes:
#
# 1. **One direction only.** The landmark maps ask, the image maps answer; nothing updates
#    the landmark stream (V1's image-to-landmark branch is gone). The landmark net is a frozen
#    detector anyway: its features say *where*, and they need no answer.
# 2. **Scales of the face instead of sizes of the embedding.** V1's pyramid ran the same 100
#    tokens at widths 512, 256 and 128. V2 instead reads the outputs of three stages of both
#    backbones: maps of $28 \times 28$, $14 \times 14$ and $7 \times 7$ cells, i.e. fine
#    and coarse places on the face, each fused at its own resolution.
# 3. **Window cross-attention, then a small ViT.** At each scale the landmark map's cells are
#    the queries and the image map's cells the keys and values, with a learned bias that
#    depends on the offset between the two cells. Each fused map becomes 49 tokens; the 147
#    tokens and a learned class token go through two plain ViT blocks.
#
# The diagram puts the two side by side (the release's sizes; grey: what V2 removed).

# %%
v1_cfg, v2_cfg = pl.make_config("poster-l"), pl.make_config("poster-v2")


def box(ax, x, y, w, h, text, color="#deebf7", edge="#3182bd", size=8, style="-"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.01,rounding_size=0.015",
                                fc=color, ec=edge, lw=1.2, ls=style))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size, wrap=True)


def arrow(ax, start, end, color="#555555", style="-|>"):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=9, color=color, lw=1.0))


def draw_v1(ax, cfg):
    box(ax, 0.02, 0.45, 0.12, 0.1, "face\n224 → 112\n(nearest)", "#f0f0f0", "#777777")
    box(ax, 0.20, 0.70, 0.2, 0.12, f"IR-50, stages 1-3\n{cfg.ir_widths[-1]} × 14 × 14")
    box(ax, 0.20, 0.18, 0.2, 0.12, f"MobileFaceNet (frozen)\n{cfg.landmark_channels} × 7 × 7", "#fee6ce", "#e6550d")
    box(ax, 0.46, 0.70, 0.16, 0.12, "49 image tokens\n+ mean class token")
    box(ax, 0.46, 0.18, 0.16, 0.12, "49 landmark tokens\n+ mean class token", "#fee6ce", "#e6550d")
    box(ax, 0.68, 0.30, 0.2, 0.4, f"cross-fusion × {cfg.depth}\nqueries swapped\nBOTH ways\n\npyramid of widths\n"
        + " / ".join(str(d) for d in cfg.pyramid_dims) + "\n(same 100 tokens)\n\ntoken mixer", "#efedf5", "#756bb1")
    box(ax, 0.90, 0.45, 0.09, 0.1, "class\ntoken\n→ SE\n→ logits", "#e5f5e0", "#31a354", size=7)
    arrow(ax, (0.14, 0.52), (0.20, 0.76))
    arrow(ax, (0.14, 0.48), (0.20, 0.24))
    arrow(ax, (0.40, 0.76), (0.46, 0.76))
    arrow(ax, (0.40, 0.24), (0.46, 0.24))
    arrow(ax, (0.62, 0.76), (0.68, 0.62))
    arrow(ax, (0.62, 0.24), (0.68, 0.38))
    arrow(ax, (0.88, 0.50), (0.90, 0.50))
    ax.text(0.78, 0.22, "landmark stream\nupdated too", ha="center", fontsize=7, color="#777777")
    ax.set_title(f"POSTER (V1): {cfg.depth} blocks × 3 widths × 2 branches", fontsize=11)


def draw_v2(ax, cfg):
    sizes, widths = cfg.map_sizes, cfg.ir_widths
    rows = [0.80, 0.50, 0.20]
    box(ax, 0.00, 0.45, 0.08, 0.1, "face\n224 → 112\n(nearest)", "#f0f0f0", "#777777", size=7)
    for s, y in enumerate(rows):
        image = f"IR-50 stage {s + 1}\n{widths[s]}×{2 * sizes[s]}² → conv s2 → {sizes[s]}²"
        lm_channels = cfg.mfn_stages[s][0] if s < 2 else cfg.landmark_channels
        landmark = (f"MobileFaceNet {s + 1}" + (" (frozen)" if s == 0 else "") + f"\n{lm_channels}×{sizes[s]}²"
                    + (f" → conv → {widths[s]}" if s == 2 else ""))
        box(ax, 0.11, y + 0.02, 0.2, 0.09, image, size=7)
        box(ax, 0.11, y - 0.09, 0.2, 0.09, landmark, "#fee6ce", "#e6550d", size=7)
        box(ax, 0.35, y - 0.07, 0.19, 0.16, f"window cross-attn\nQ = landmark cells\nK, V = image cells\n"
            f"{cfg.window_heads[s]} heads, {sizes[s] ** 2} cells", "#efedf5", "#756bb1", size=7)
        box(ax, 0.58, y - 0.045, 0.11, 0.11, f"embed\n{sizes[s]}² → 7²\n49 tokens", size=7)
        arrow(ax, (0.08, 0.51), (0.11, y + 0.065))
        arrow(ax, (0.08, 0.49), (0.11, y - 0.045))
        arrow(ax, (0.31, y + 0.065), (0.35, y + 0.03))
        arrow(ax, (0.31, y - 0.045), (0.35, y - 0.01))
        arrow(ax, (0.54, y + 0.01), (0.58, y + 0.01))
        arrow(ax, (0.69, y + 0.01), (0.73, 0.50 + (y - 0.50) / 3))
    box(ax, 0.73, 0.30, 0.13, 0.4, f"{cfg.num_tokens - 1} tokens\n+ learned\nclass token\n\nViT × {cfg.depth}",
        "#efedf5", "#756bb1", size=8)
    box(ax, 0.89, 0.45, 0.09, 0.1, "class\ntoken\n→ SE\n→ logits", "#e5f5e0", "#31a354", size=7)
    arrow(ax, (0.86, 0.50), (0.89, 0.50))
    box(ax, 0.35, 0.93, 0.40, 0.06, "removed: image → landmark branch, pyramid of widths, token mixers",
        "#f7f7f7", "#bbbbbb", size=7, style="--")
    ax.set_title(f"POSTER V2: 3 scales × 1 direction, then a {cfg.depth}-block ViT", fontsize=11)


fig, axes = plt.subplots(1, 2, figsize=(15, 5.2), layout="constrained")
for ax, draw, cfg in [(axes[0], draw_v1, v1_cfg), (axes[1], draw_v2, v2_cfg)]:
    draw(ax, cfg)
    ax.set_xlim(0, 1)
    ax.set_ylim(0.05, 1.0)
    ax.axis("off")
fig.savefig(RUN_DIR / "v1_vs_v2.png", dpi=120)
plt.show()

# %% [markdown]
# The same comparison in numbers, read off the two configs (`pl.make_config`):

# %%
changes = pd.DataFrame({
    "POSTER (V1)": {
        "backbone maps fused": "1 per backbone (IR-50 14×14, MobileFaceNet 7×7)",
        "attention directions": "2 (queries swapped both ways)",
        "multi-scale how": f"embedding widths {v1_cfg.pyramid_dims} on the same tokens",
        "fusion blocks": f"{v1_cfg.depth} blocks × {len(v1_cfg.pyramid_dims)} widths",
        "tokens seen by the classifier's transformer": v1_cfg.num_tokens,
        "class token": "mean of each stream's tokens",
        "what the image tokens are": "raw reshape of the 14×14 map (channel slabs)",
    },
    "POSTER V2": {
        "backbone maps fused": f"{len(v2_cfg.scales)} per backbone (maps {', '.join(f'{m}×{m}' for m in v2_cfg.map_sizes)})",
        "attention directions": "1 (landmark cells ask image cells)",
        "multi-scale how": f"backbone stages at {len(v2_cfg.scales)} resolutions",
        "fusion blocks": f"1 window cross-attention per scale, then a {v2_cfg.depth}-block ViT",
        "tokens seen by the classifier's transformer": v2_cfg.num_tokens,
        "class token": "learned",
        "what the image tokens are": "cells of fused maps, embedded by strided convs",
    },
})
changes

# %% [markdown]
# ## 2 · Window cross-attention, built by hand
#
# At one scale the image map and the landmark map have the same size, $m \times m$ cells
# with $C$ channels each ($C$ = 64, 128, 256 at $m$ = 28, 14, 7 in the release). Read both
# as $N = m^2$ cells in row-major order (cell $p = (i_p, j_p)$ is number $i_p m + j_p$).
#
# - **Queries**: the landmark map's cells *as they are*: no LayerNorm, no projection. Head
#   $h$ takes channels $32h \dots 32h+31$ (the release keeps the head size at 32 at every scale).
# - **Keys and values**: the image map, LayerNormed per cell, through one
#   $\mathrm{Linear}(C, 2C)$ named `kv`: the first $C$ outputs are keys, the next $C$ values.
# - **Relative position bias**: a learned table $T$ with one row per possible offset between
#   two cells, $(2w-1)^2$ rows for a window of side $w$, and one column per head. The score of
#   query cell $p$ for key cell $q$ gets $T[\text{index}(p, q), h]$ added, with
#   $$\text{index}(p, q) = (i_p - i_q + w - 1)(2w - 1) + (j_p - j_q + w - 1),$$
#   so every pair of cells at the same offset (say "one row down, two columns left") shares
#   one learned number per head. This is Swin's bias; it lets the attention know *where* a key
#   lies relative to the query, which plain attention over cells does not.
#
# $$\mathrm{out} = \mathrm{proj}\Big(\mathrm{softmax}\big(\tfrac{Q K^\top}{\sqrt{d_h}} + B\big)\, V\Big),
# \qquad B_{h,p,q} = T[\text{index}(p, q), h].$$
#
# **The "window" is the whole map.** Swin cuts a map into $w \times w$ windows and attends
# inside each. In V2's release $w$ equals the map size (28, 14, 7), so each image has exactly
# one window: this is **global attention with a relative position bias**. The package keeps
# the window machinery (`window_sizes` in `PosterV2Config`) for the smaller-window ablation.
#
# The index for a $3 \times 3$ window, from the package (row: query cell, column: key cell):

# %%
from poster_lite.models.window_attention import (
    WindowCrossAttention,
    WindowCrossBlock,
    relative_position_index,
    window_partition,
)

index3 = relative_position_index(3)
print(f"3x3 window: {index3.shape[0]} cells, {(2 * 3 - 1) ** 2} offsets, index shape {tuple(index3.shape)}")
print(pd.DataFrame(index3.numpy(), index=[f"q{p}" for p in range(9)], columns=[f"k{q}" for q in range(9)]))
print("the diagonal (a cell with itself, offset (0, 0)) is always the middle row of the table:",
      sorted(set(index3.diagonal().tolist())), "=", (2 * 3 - 1) ** 2 // 2)

# %% [markdown]
# ### Exercise 1 · The window cross-attention
# Write `WindowCrossAttentionFromScratch(dim, num_heads, window)`, whose
# `forward(queries, context)` maps windows $\times\, w^2 \times C$ (landmark cells, image cells
# after the LayerNorm) to windows $\times\, w^2 \times C$. Use the package's names, so that its
# weights load into yours:
#
# - `relative_position_bias_table`: an `nn.Parameter` of $(2w-1)^2 \times$ `num_heads`;
# - `relative_position_index`: the $w^2 \times w^2$ index above, a **buffer**
#   (`self.register_buffer`): the release's checkpoints hold it;
# - `kv`: `nn.Linear(dim, 2 * dim)`, keys first; `proj`: `nn.Linear(dim, dim)`.
#
# Scale the scores by $d_h^{-1/2}$ with $d_h$ = `dim // num_heads`. The check loads the
# package's `WindowCrossAttention` weights (with a random bias table) into yours at three
# sizes and compares the outputs; it names the usual slips.

# %% tags=["solution"]
class WindowCrossAttentionFromScratch(nn.Module):
    """softmax(q k^T / sqrt(d_h) + relative position bias) v over the w*w cells of each window."""

    def __init__(self, dim, num_heads, window):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        rows, cols = rows.flatten(), cols.flatten()                   # cell p = (rows[p], cols[p]), row-major
        row_offset = rows[:, None] - rows[None, :] + window - 1       # N x N, query row - key row, from 0
        col_offset = cols[:, None] - cols[None, :] + window - 1
        self.register_buffer("relative_position_index", row_offset * (2 * window - 1) + col_offset)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries, context):
        B, N, C = context.shape
        h = self.num_heads
        q = queries.reshape(B, N, h, C // h).transpose(1, 2)                       # B x h x N x d_h
        k, v = self.kv(context).reshape(B, N, 2, h, C // h).permute(2, 0, 3, 1, 4)  # each B x h x N x d_h
        bias = self.relative_position_bias_table[self.relative_position_index]      # N x N x h
        scores = q @ k.transpose(-2, -1) * self.scale + bias.permute(2, 0, 1)       # B x h x N x N
        out = scores.softmax(dim=-1) @ v                                            # B x h x N x d_h
        return self.proj(out.transpose(1, 2).reshape(B, N, C))                      # heads side by side

# %% tags=["check"]
lab_checks.check_window_cross_attention(WindowCrossAttentionFromScratch)

# %% [markdown]
# The check used small windows. Now the release's finest scale: $C = 64$, 2 heads, a
# $28 \times 28$ window of 784 cells. We fill the package module's bias table with random
# numbers (it starts at zero, which would hide a wrong index), load its weights **strictly**
# into ours and compare the outputs.

# %%
torch.manual_seed(1)
dim, heads, window = v2_cfg.ir_widths[0], v2_cfg.window_heads[0], v2_cfg.window_sizes[0]
theirs = WindowCrossAttention(dim, heads, window, fused=False).eval()
with torch.no_grad():
    theirs.relative_position_bias_table.normal_()
landmark_cells, image_cells = torch.randn(2, window * window, dim), torch.randn(2, window * window, dim)
try:
    mine = WindowCrossAttentionFromScratch(dim, heads, window).eval()
    assert torch.equal(mine.relative_position_index, theirs.relative_position_index), "the index differs"
    mine.load_state_dict(theirs.state_dict())                 # strict: every name and shape must agree
    built = "built by hand"
except NotImplementedError:                                   # the student version before exercise 1
    mine, built = copy.deepcopy(theirs), "poster_lite's own (exercise 1 is not done yet)"
    print("Exercise 1 is not done yet: this cell and the next use poster_lite's module in place of yours.")
with torch.no_grad():
    attention_difference = (mine(landmark_cells, image_cells) - theirs(landmark_cells, image_cells)).abs().max().item()
print(f"queries and keys {tuple(landmark_cells.shape)} -> output {tuple(mine(landmark_cells, image_cells).shape)}")
print(f"bias table {tuple(mine.relative_position_bias_table.shape)}, index {tuple(mine.relative_position_index.shape)}")
print(f"largest difference between the outputs: {attention_difference:.2e}")
assert attention_difference < 1e-5
print(f"window cross-attention {built} matches poster_lite's to {attention_difference:.1e}")

# %% [markdown]
# How much does the whole-map window cost, and what would local windows save? Per head, a
# window of $w^2$ cells compares every query with $w^2$ keys. With the release's whole-map
# windows every cell sees all $m^2$ cells; with $7 \times 7$ windows (the ablation the
# config allows, `window_sizes=(7, 7, 7)`) it sees 49 of them, and the bias table shrinks.

# %%
rows = []
for s in v2_cfg.scales:
    m, heads_s = v2_cfg.map_sizes[s], v2_cfg.window_heads[s]
    for w in dict.fromkeys([v2_cfg.window_sizes[s], 7]):
        windows = (m // w) ** 2
        x = torch.zeros(1, m, m, v2_cfg.ir_widths[s])
        rows.append({"scale": s, "map": f"{m}×{m}", "window": f"{w}×{w}" + (" (release)" if w == v2_cfg.window_sizes[s] else ""),
                     "windows per image": window_partition(x, w).shape[0], "keys per query": w * w,
                     "score entries per head": windows * (w * w) ** 2,
                     "bias table": f"{(2 * w - 1) ** 2} × {heads_s}"})
pd.DataFrame(rows).set_index(["scale", "map", "window"])

# %% [markdown]
# ### The whole block at one scale
# The attention is one part of a block (the release's `window_s`, `attn_s` and `ffn_s`):
#
# $$X = \mathrm{LN}(\text{image map}), \quad Y = X + \gamma_1 \odot \mathrm{Attn}(\text{landmark map}, X), \quad Z = Y + \gamma_2 \odot \mathrm{MLP}(\mathrm{LN}(Y)).$$
#
# Two details differ from a textbook transformer block. The shortcut starts at the
# **LayerNormed** map $X$, not at the map itself. And both branches are multiplied by
# per-channel **layer-scale** vectors $\gamma_1, \gamma_2$ that start at $10^{-5}$, so a
# fresh block passes $X$ through almost unchanged and learns how much to add. We build the
# block from our attention and check it against the package's `WindowCrossBlock` at the
# release's middle scale ($C = 128$, 4 heads, $14 \times 14$), with random $\gamma$s and norms
# so that every part counts.

# %%
class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))            # exact (erf) GELU, as the release


class WindowCrossBlockFromScratch(nn.Module):
    """B x C x m x m image map, B x C x m x m landmark map -> B x C x m x m (one window per map)."""

    def __init__(self, dim, num_heads, window, mlp_ratio=4.0, attention=WindowCrossAttentionFromScratch):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-5)          # torch's default eps (the ViT's are 1e-6)
        self.attn = attention(dim, num_heads, window)
        self.gamma_attn = nn.Parameter(torch.full((dim,), 1e-5))
        self.mlp_norm = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma_mlp = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, image_map, landmark_map):
        B, C, H, W = image_map.shape
        x = self.norm(image_map.permute(0, 2, 3, 1).reshape(B, H * W, C))   # B x N x C, row-major cells
        q = landmark_map.permute(0, 2, 3, 1).reshape(B, H * W, C)           # B x N x C, not normed
        x = x + self.gamma_attn * self.attn(q, x)
        x = x + self.gamma_mlp * self.mlp(self.mlp_norm(x))
        return x.transpose(1, 2).reshape(B, C, H, W)                        # back to B x C x m x m


torch.manual_seed(2)
dim, heads, window = v2_cfg.ir_widths[1], v2_cfg.window_heads[1], v2_cfg.window_sizes[1]
theirs_block = WindowCrossBlock(dim, heads, window, fused=False).eval()
with torch.no_grad():
    for name, p in theirs_block.named_parameters():
        if "gamma" in name or "norm" in name or "bias_table" in name:
            p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.5 * torch.randn_like(p))
image_map, landmark_map = torch.randn(2, dim, window, window), torch.randn(2, dim, window, window)
try:
    mine_block = WindowCrossBlockFromScratch(dim, heads, window).eval()
except NotImplementedError:                                     # exercise 1 not done: the package's attention
    mine_block = WindowCrossBlockFromScratch(dim, heads, window, attention=WindowCrossAttention).eval()
    print("Exercise 1 is not done yet: this block uses poster_lite's attention in place of yours.")
mine_block.load_state_dict(theirs_block.state_dict())           # strict
with torch.no_grad():
    block_difference = (mine_block(image_map, landmark_map) - theirs_block(image_map, landmark_map)).abs().max().item()
print(f"block at C={dim}, {heads} heads, {window}x{window}: largest difference {block_difference:.2e}")
assert block_difference < 1e-5

fresh = WindowCrossBlock(dim, heads, window).eval()          # gammas at their initial 1e-5
with torch.no_grad():
    normed = F.layer_norm(image_map.permute(0, 2, 3, 1), (dim,), eps=1e-5).permute(0, 3, 1, 2)
    start_change = (fresh(image_map, landmark_map) - normed).abs().max().item()
print(f"a fresh block changes LayerNorm(image map) by at most {start_change:.1e}: it starts as (almost) the identity")

# %% [markdown]
# ## 3 · Three scales into one token sequence
#
# After the fusion V2 has three refined image maps, $C_s \times m_s \times m_s$ with
# $(C_s, m_s)$ = (64, 28), (128, 14), (256, 7). Each becomes a $d \times 7 \times 7$ grid
# of tokens ($d$ = 768 in the release) by stride-2 $3 \times 3$ convolutions: two at
# $28 \times 28$ (28 → 14 → 7, the release's `embed_q`), one at $14 \times 14$ (`embed_k`),
# and a $1 \times 1$ convolution at $7 \times 7$ (`embed_v`; the release's names are
# misleading: these are per-scale embedders, not queries, keys and values). No norm or
# activation sits between the two convolutions of `embed_q`. Each grid is read row by row
# into 49 tokens, and the three are concatenated **finest scale first**: $3 \times 49 = 147$
# tokens. The ViT then prepends a learned class token and adds a learned position embedding
# to all 148.
#
# Below we build the embedders by hand, load the weights of a (randomly initialised)
# `poster-v2-nano` strictly into them, feed them the package's own fused maps and compare with
# the package's `model.tokens(x)`; then we push our tokens through the package's ViT, SE gate
# and classifier and compare with the model's logits.

# %%
def strided_embedder(channels, dim, map_size, grid=7):
    """C x m x m -> dim x 7 x 7: stride-2 3x3 convs until the map is 7 x 7 (a 1x1 conv if it already is)."""
    layers = []
    while map_size > grid:
        layers.append(nn.Conv2d(channels, dim, 3, stride=2, padding=1))
        channels, map_size = dim, (map_size + 1) // 2
    return nn.Sequential(*(layers or [nn.Conv2d(channels, dim, 1)]))


class MultiScaleTokens(nn.Module):
    """[B x C_s x m_s x m_s per scale] -> B x 49·S x dim, finest scale first, each grid row-major."""

    def __init__(self, widths, map_sizes, dim):
        super().__init__()
        self.embedders = nn.ModuleList(strided_embedder(c, dim, m) for c, m in zip(widths, map_sizes))

    def forward(self, maps):
        grids = [embed(m) for embed, m in zip(self.embedders, maps)]        # each B x dim x 7 x 7
        return torch.cat([g.flatten(2).transpose(1, 2) for g in grids], 1)  # B x 147 x dim


torch.manual_seed(3)
nano = pl.build_model("poster-v2-nano").eval()
cfg = nano.config
faces = torch.randn(2, 3, cfg.input_size, cfg.input_size)
mine_tokens = MultiScaleTokens([cfg.ir_widths[s] for s in cfg.scales], [cfg.map_sizes[s] for s in cfg.scales],
                               cfg.embed_dim).eval()
mine_tokens.embedders.load_state_dict(nano.token_embed.state_dict())        # strict
with torch.no_grad():
    fused = [cross(image, landmark) for (image, landmark), cross in zip(nano.scale_maps(faces), nano.cross)]
    for s, f in zip(cfg.scales, fused):
        print(f"scale {s}: fused map {tuple(f.shape)} -> {len(mine_tokens.embedders[s])} conv(s) -> 49 tokens")
    tokens_mine, tokens_theirs = mine_tokens(fused), nano.tokens(faces)
    token_difference = (tokens_mine - tokens_theirs).abs().max().item()
    logits_mine = nano.head(nano.se(nano.vit(tokens_mine)))
    logit_difference = (logits_mine - nano(faces)).abs().max().item()
print(f"tokens {tuple(tokens_mine.shape)}: largest difference from model.tokens(x) {token_difference:.2e}")
print(f"ViT input with the class token: {cfg.num_tokens} tokens (position embedding {tuple(nano.vit.pos_embed.shape)})")
print(f"logits through the package's ViT, SE gate and head: largest difference {logit_difference:.2e}")
assert token_difference < 1e-5 and logit_difference < 1e-5

# %% [markdown]
# ## 4 · Attention on a face: here the maps ARE maps
#
# `model.forward_with_attention(x)` returns V2's attention weights: for each scale $s$, key
# `("window", s)`, a tensor $B \times \text{heads} \times m^2 \times m^2$ (one window per image),
# and for each ViT block $b$, key `("vit", b)`, $B \times \text{heads} \times 148 \times 148$.
#
# **Why the window attention is a map of the face.** Row $p$ of scale $s$ is the landmark
# map's cell $p$ asking, and its $m^2$ weights are over the image map's cells. Both maps are
# convolutional feature maps of the same face at the same resolution, so cell $(i, j)$ of
# either lies over the same patch of the face; between the backbones and this attention there
# are only convolutions (the stride-2 conv of the image map, the $3 \times 3$ conv of the last
# landmark map), which keep every cell in its place. Nothing mixes cells from all over the map
# first: no token mixer, no convolution over the token axis, no mean class token among the
# keys. So the $m^2$ weights of a row fold back onto the $m \times m$ grid over the face.
# (One caveat: a deep cell *sees* a large part of the face through its receptive field; the
# map says which cell's features were read, centred where the cell sits.)
#
# **V1 is different** (notebook 03): its only attention map of the face is block 0, level 0 of
# the landmark branch. The pyramid's down-convolutions over the token axis, the token mixers
# and the up-adds make every later key a mixture of all tokens of both streams, and the image
# tokens are channel slabs of the map, not places, even in block 0.
#
# We load the trained V2 nano model (`pl.trained_model`: the one trained here if cached, else
# the one shipped with the package, else trained now with the default recipe), say how well
# it recognises expressions, take a test face, and draw for each scale the attention row of
# the landmark cell under the mouth's left corner (as seen) and of the cell under the eye on
# the left of the picture. A model that has not learned (a `SMOKE` run's few steps, or a
# model no better than chance) shows what nearly random projections of the two backbones'
# features happen to match (often strong edges such as the hairline), not what a working
# model looks for; the cell says which case this is.

# %%
from poster_lite.data.transforms import denormalize, eval_transform

v2_model = pl.trained_model(MODEL, smoke=bool(SMOKE), device=device).eval()
test_set = pl.data.load(DATA, "test")
wanted = test_set.classes.index("Happiness") if "Happiness" in test_set.classes else test_set.targets[0]
index = test_set.targets.index(wanted)
picture, label = test_set[index]
channel_order = v2_model.meta.get("channel_order", "rgb")
x = eval_transform(v2_model.config.input_size, channel_order)(picture)[None].to(device)
with torch.no_grad():
    logits, maps = v2_model.forward_with_attention(x)
probabilities = logits.softmax(-1)[0].cpu()
classes = v2_model.meta.get("classes", test_set.classes)
print(f"true expression {test_set.classes[label]}; {MODEL}: " + ", ".join(
    f"{classes[i]} {p:.0%}" for p, i in zip(*probabilities.topk(3))))
recorded = v2_model.meta.get("metrics", {}).get("test_accuracy")
if recorded is not None:
    above = recorded > 1 / len(classes) + 2 * math.sqrt((1 / len(classes)) * (1 - 1 / len(classes)) / len(test_set))
    print(f"{MODEL}'s recorded test accuracy: {recorded:.1%} (chance {1 / len(classes):.1%}): " + (
        "the maps below are those of a model that has learned something" if above else
        "it has NOT learned to tell the expressions apart, so the maps below show what its barely trained "
        "projections match, not where a working model looks (section 6 measures why)"))
for key, w in maps.items():
    assert torch.allclose(w.sum(-1), torch.ones_like(w.sum(-1)), atol=1e-4)    # every row a distribution
    print(f"{key}: {tuple(w.shape)}")

# %%
face = denormalize(x[0].cpu(), channel_order)
size = face.shape[0]
marks = test_set.landmarks[index] * size / picture.size[0] if test_set.landmarks is not None else None
# 68-point layout: 48 is the left corner of the mouth (as seen), 36-41 the eye on the left of the picture.
points = {"mouth corner": marks[48] if marks is not None else np.array([0.35, 0.72]) * size,
          "eye": marks[36:42].mean(0) if marks is not None else np.array([0.35, 0.4]) * size}


def cell_of(point, m):
    """The row-major index of the cell of an m x m grid over the face that holds `point` (x, y pixels)."""
    col, row = (np.clip(point, 0, size - 1) * m / size).astype(int)
    return int(row * m + col)


fig, axes = plt.subplots(2, 1 + len(v2_model.config.scales), figsize=(3.0 * (1 + len(v2_model.config.scales)), 6.4),
                         layout="constrained")
for r, (where, point) in enumerate(points.items()):
    axes[r, 0].imshow(face)
    if marks is not None:
        axes[r, 0].scatter(*marks.T, s=3, c="cyan")
    axes[r, 0].scatter(*point, s=60, facecolors="none", edgecolors="red", linewidths=1.5)
    axes[r, 0].set_title(f"query: the {where}", fontsize=9)
    axes[r, 0].axis("off")
    for c, s in enumerate(v2_model.config.scales, start=1):
        weights = maps[("window", s)][0].mean(0).cpu()                 # head average: N x N
        m = v2_model.config.map_sizes[s]
        p = cell_of(point, m)
        row = weights[p].reshape(m, m)
        ax = axes[r, c]
        ax.imshow(face)
        shown = ax.imshow(row, cmap="magma", alpha=0.6, extent=(0, size, size, 0), interpolation="nearest")
        qi, qj = divmod(p, m)
        ax.add_patch(plt.Rectangle((qj * size / m, qi * size / m), size / m, size / m, fill=False, ec="red", lw=1.2))
        ax.set_title(f"scale {s}: {m}×{m} cells\nmax {row.max():.3f} (uniform {1 / m ** 2:.4f})", fontsize=8)
        ax.axis("off")
        fig.colorbar(shown, ax=ax, shrink=0.7)
fig.suptitle("V2 window cross-attention: one landmark cell (red square) asks every image cell, head average",
             fontsize=10)
fig.savefig(RUN_DIR / "window_attention_on_face.png", dpi=120)
plt.show()

# %% [markdown]
# Does the attention stay near its query, as a relative position bias could make it? The
# cell below measures, for every query cell and scale, the attention-weighted distance to the
# key cells (in face widths), averaged over queries and heads, and compares it with the same
# distance under uniform attention. A ratio well below 1 says the model looks near the place
# that asks; near 1, it looks everywhere.

# %%
locality = []
for s in v2_model.config.scales:
    m = v2_model.config.map_sizes[s]
    centres = torch.stack(torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij"), -1).reshape(-1, 2).float()
    distance = torch.cdist(centres, centres) / m                            # N x N, in face widths
    weights = maps[("window", s)][0].cpu()                                  # heads x N x N
    attended = (weights * distance).sum(-1).mean().item()
    uniform = distance.mean().item()
    locality.append({"scale": s, "map": f"{m}×{m}", "attended distance": attended,
                     "uniform distance": uniform, "ratio": attended / uniform})
locality = pd.DataFrame(locality).set_index("scale")
for s, row in locality.iterrows():
    verdict = ("looks near the asking cell" if row.ratio < 0.8 else
               "looks away from the asking cell" if row.ratio > 1.2 else "looks about as far as uniform attention")
    print(f"scale {s} ({row['map']}): attended distance {row['attended distance']:.3f} vs uniform "
          f"{row['uniform distance']:.3f} face widths (ratio {row.ratio:.2f}): {verdict}")
locality.round(3)

# %% [markdown]
# **And the ViT?** Its first block sees the 147 embedded tokens before any of them has been
# mixed with another: each is still a cell of one of three $7 \times 7$ grids (a strided
# convolution of a spatial map, plus a position embedding). So in **block 0** the class
# token's row, without its own column, folds into three $7 \times 7$ maps, one per scale. From
# block 1 on every token has already gathered from all the others (self-attention), and a row
# is attention over mixtures, as in any ViT: we draw only block 0.

# %%
vit0 = maps[("vit", 0)][0].mean(0)[0, 1:].cpu()                        # class token -> 147 tokens, head average
grids = vit0.reshape(len(v2_model.config.scales), 7, 7)
fig, axes = plt.subplots(1, len(grids), figsize=(3.0 * len(grids), 3.2), layout="constrained")
for ax, s, grid in zip(np.atleast_1d(axes), v2_model.config.scales, grids):
    ax.imshow(face)
    shown = ax.imshow(grid, cmap="magma", alpha=0.6, vmin=0, vmax=float(grids.max()), extent=(0, size, size, 0),
                      interpolation="nearest")
    ax.set_title(f"tokens of scale {s}: share {grid.sum():.0%}", fontsize=9)
    ax.axis("off")
fig.colorbar(shown, ax=np.atleast_1d(axes).tolist(), shrink=0.8, label="weight")
fig.suptitle("ViT block 0: the class token's attention over the 3 × 49 tokens (uniform: "
             f"{1 / v2_model.config.num_tokens:.4f} each)", fontsize=10)
fig.savefig(RUN_DIR / "vit_block0_on_face.png", dpi=120)
plt.show()
print("share of the class token's attention per scale (its own column aside): "
      + ", ".join(f"scale {s} {g.sum():.1%}" for s, g in zip(v2_model.config.scales, grids))
      + f"; on itself {maps[('vit', 0)][0].mean(0)[0, 0]:.1%}")

# %% [markdown]
# ## 5 · Parameters and FLOPs, counted both ways
#
# The two papers count differently, so their headline numbers cannot be set side by side:
#
# - **POSTER** counts every stored parameter (71.8M, including IR-50's never-run embedding
#   head) and FLOPs as **2 × multiply-adds**, attention products included (15.7G).
# - **POSTER V2** used thop: parameters of the modules that *ran* (43.7M: no never-run layers,
#   no free parameters such as the class token or the bias tables) and **multiply-adds**
#   that cannot see the attention products (8.4G).
#
# `pl.complexity` reports both for any model: `params` and `flops` in V1's convention,
# `active_params` and `macs` in V2's (`conventions` says exactly what each counts). The
# paper-size models are built only outside `SMOKE` mode (about a minute on a CPU).

# %%
PAPERS = {   # POSTER: supplement Tables 3 and 1; POSTER V2: its README. Params in M, FLOPs/MACs in G.
    "poster-l": {"paper params (M)": 71.8, "paper FLOPs (G)": 15.7, "paper unit": "stored, 2 × MAC"},
    "poster-v2": {"paper params (M)": 43.7, "paper FLOPs (G)": 8.4, "paper unit": "active (thop), MAC"},
}
sized = [BASELINE, MODEL] if SMOKE else ["poster-l", "poster-v2", BASELINE, MODEL]
counts = {}
for name in dict.fromkeys(sized):
    model = pl.build_model(name)
    counts[name] = pl.complexity(model)
    del model
size_rows = pd.DataFrame({name: {
    "stored params (M)": c["params"] / 1e6, "active params (M)": c["active_params"] / 1e6,
    "FLOPs, 2×MAC with attention (G)": c["flops"] / 1e9, "MACs, thop (G)": c["macs"] / 1e9,
    **PAPERS.get(name, {})} for name, c in counts.items()}).T
size_rows.round(3)

# %%
def compare_sizes(v1, v2):
    a, b = counts[v1], counts[v2]
    print(f"{v2} vs {v1}, each in one unit:")
    print(f"  stored parameters {b['params'] / 1e6:.2f}M vs {a['params'] / 1e6:.2f}M: "
          f"{b['params'] / a['params'] - 1:+.0%}")
    print(f"  active parameters {b['active_params'] / 1e6:.2f}M vs {a['active_params'] / 1e6:.2f}M: "
          f"{b['active_params'] / a['active_params'] - 1:+.0%}")
    print(f"  FLOPs (2×MAC, attention included) {b['flops'] / 1e9:.3f}G vs {a['flops'] / 1e9:.3f}G: "
          f"{b['flops'] / a['flops'] - 1:+.0%}: V2 is {'cheaper' if b['flops'] < a['flops'] else 'MORE expensive'}")


if "poster-l" in counts:
    compare_sizes("poster-l", "poster-v2")
    v2_paper_in_v1_unit = 2 * PAPERS["poster-v2"]["paper FLOPs (G)"]
    print(f"V2's '8.4G' is multiply-adds: {v2_paper_in_v1_unit:.1f}G in POSTER's unit, beside its 15.7G; "
          f"we count {counts['poster-v2']['flops'] / 1e9:.2f}G with the attention products thop missed.")
compare_sizes(BASELINE, MODEL)

# %% [markdown]
# Where do V2's parameters and FLOPs go? The figure splits them by part (`pl.complexity`'s
# `parts`), and the cell after it names the largest part of each and the window fusion's share.

# %%
v2_name = "poster-v2" if "poster-v2" in counts else MODEL
parts = pd.DataFrame(counts[v2_name]["parts"]).T
parts = parts.assign(**{"params (M)": parts["params"] / 1e6, "FLOPs (G)": parts["flops"] / 1e9})
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), layout="constrained")
for ax, column in zip(axes, ["params (M)", "FLOPs (G)"]):
    ax.barh(parts.index, parts[column], color="#756bb1")
    ax.set_xlabel(column)
    ax.invert_yaxis()
    for i, value in enumerate(parts[column]):
        ax.text(value, i, f" {value:.2f}", va="center", fontsize=8)
fig.suptitle(f"{v2_name}: stored parameters and FLOPs (2×MAC with attention) by part", fontsize=10)
fig.savefig(RUN_DIR / "v2_parts.png", dpi=120)
plt.show()

# %%
shares = parts[["params", "flops"]] / parts[["params", "flops"]].sum()
print(f"{v2_name}: the largest part is {shares['params'].idxmax()} in parameters ({shares['params'].max():.0%}) and "
      f"{shares['flops'].idxmax()} in FLOPs ({shares['flops'].max():.0%}); the window fusion (landmark conv, image "
      f"downsampling convs, the three cross-attention blocks) holds {shares.loc['window_fusion', 'params']:.1%} of "
      f"the parameters and costs {shares.loc['window_fusion', 'flops']:.1%} of the FLOPs")

# %% [markdown]
# ## 6 · V1 against V2 at nano scale, one recipe
#
# The papers compare V2 with V1 across two publications, different code and different
# training runs. Here both nano models come from `pl.trained_model`, with one recipe (SAM around
# Adam, CE + 2 × label-smoothed CE, exponential decay, the same batch size and learning rate),
# from the pretrained nano backbones (V2-nano's backbones are POSTER-nano's exactly, and both look
# for the files in the same cache; the cell checks that the two frozen landmark nets are the
# same), on the same SynthFER training faces, the best epoch picked on the validation faces.
# (V2's release trains with plain cross-entropy; we keep one recipe so that only the architecture
# differs.) The *budget* is the one thing that may differ: `pl.trained_model` now trains until
# validation accuracy stops improving (`poster_lite.model_cache.RUN_SETTINGS`), and a shipped model
# made before that rule trained a fixed number of epochs. The table prints, per model, the epochs
# it trained and what ended its run (its manifest, `meta["command"]` and `meta["history"]`); read
# the comparison with it. Both are then scored on the same test faces.

# %%
from poster_lite.data.subset import Subset
from poster_lite.model_cache import RUN_SETTINGS

v1_model = pl.trained_model(BASELINE, smoke=bool(SMOKE), device=device).eval()
trained = {BASELINE: v1_model, MODEL: v2_model}
print("recipe and budget:", RUN_SETTINGS["smoke" if SMOKE else "default"])
print(pd.DataFrame({name: {"epoch chosen": m.meta.get("epoch"), "epochs trained": len(m.meta.get("history") or []) or "-",
                           "ended by": evidence.shipped_model_convergence(m.meta)[0] or "the cap (fixed epochs)",
                           "batch": m.meta.get("batch_size"),
                           "lr": m.meta.get("recipe", {}).get("lr"), "SAM": m.meta.get("recipe", {}).get("sam"),
                           "source": m.meta.get("source", "trained here"), "made by": m.meta.get("command", "-")}
                    for name, m in trained.items()}).T.to_string())

v1_lm, v2_lm = v1_model.landmark_backbone.state_dict(), v2_model.landmark_backbone.state_dict()
same_landmarks = v1_lm.keys() == v2_lm.keys() and all(
    torch.allclose(v1_lm[k].float().cpu(), v2_lm[k].float().cpu(), rtol=1e-3, atol=1e-4) for k in v1_lm)
print("the same frozen landmark backbone in both (to float16 rounding: shipped weights are float16):",
      same_landmarks)

scored = Subset(test_set, 48) if SMOKE else test_set
results = {name: pl.evaluate(pl.fast(m, device=device), scored) for name, m in trained.items()}
pd.DataFrame({name: {"accuracy (%)": 100 * r["accuracy"], "mean class accuracy (%)": 100 * r["mean_class_accuracy"],
                     "macro F1 (%)": 100 * r["macro_f1"]} for name, r in results.items()}).T.round(2)

# %% [markdown]
# **Is the difference real?** Both models saw the same faces, so we bootstrap the *paired*
# difference, as notebook 06 does: draw the test faces again with replacement, recompute both
# accuracies on each draw, and read the 2.5th and 97.5th percentiles of their difference.

# %%
def paired_bootstrap(result_a, result_b, draws=2000, seed=0):
    """Accuracy of b minus accuracy of a, in points: the estimate and a 95 % interval."""
    correct_a = result_a["predictions"] == result_a["targets"]
    correct_b = result_b["predictions"] == result_b["targets"]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(correct_a), size=(draws, len(correct_a)))
    differences = 100 * (correct_b[picks].mean(axis=1) - correct_a[picks].mean(axis=1))
    return 100 * (correct_b.mean() - correct_a.mean()), np.percentile(differences, [2.5, 97.5])


gain, (low, high) = paired_bootstrap(results[BASELINE], results[MODEL])
accuracy_verdict = (f"{MODEL} is more accurate" if low > 0 else f"{BASELINE} is more accurate" if high < 0
                    else "the difference is within the noise of this test set")
print(f"{MODEL} minus {BASELINE}: {gain:+.2f} points on {len(scored)} test faces, "
      f"95 % interval [{low:+.2f}, {high:+.2f}]: {accuracy_verdict}")
endings = {name: evidence.shipped_model_convergence(m.meta)[1] for name, m in trained.items()}
if len(set(evidence.shipped_model_convergence(m.meta)[0] for m in trained.values())) > 1:
    print("the two runs ended differently (" + "; ".join(f"{n}: {e}" for n, e in endings.items())
          + "): the difference mixes the architecture with the training budget")

# %% [markdown]
# And the cost: parameters and FLOPs from section 5, and speed through `pl.fast` (the suite's
# inference path: bfloat16 where the hardware has it, BatchNorm folded). The two models take
# turns on the same batch, several rounds, and we keep the median.

# %%
def images_per_second(models, batch=8 if SMOKE else 32, rounds=2 if SMOKE else 7):
    fast = {name: pl.fast(m, device=device) for name, m in models.items()}
    size = next(iter(models.values())).config.input_size
    images = torch.randn(batch, 3, size, size)
    rates = {name: [] for name in fast}
    for f in fast.values():
        f(images)                                                         # warm up
    for _ in range(rounds):
        for name, f in fast.items():
            start = time.perf_counter()
            f(images)
            if device.type == "cuda":
                torch.cuda.synchronize()
            rates[name].append(batch / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


speed = images_per_second(trained)
nano_table = pd.DataFrame({name: {
    "test accuracy (%)": 100 * results[name]["accuracy"],
    "stored params (M)": counts[name]["params"] / 1e6, "active params (M)": counts[name]["active_params"] / 1e6,
    "FLOPs, 2×MAC (G)": counts[name]["flops"] / 1e9, "MACs, thop (G)": counts[name]["macs"] / 1e9,
    "images/s (pl.fast)": speed[name]} for name in trained}).T
print(f"device {device}, {torch.get_num_threads()} threads, batch {8 if SMOKE else 32}")
nano_table.round(3)

# %% [markdown]
# The published numbers beside ours. RAF-DB's test set has 3,068 faces and AffectNet's
# validation set (its test set) 500 per class, so even a single model's accuracy carries a
# sampling error; the last column gives the noise bar of notebook 07 for a difference between
# two models scored on that many faces (twice the standard error of a difference,
# $2\sqrt{2}\sqrt{p(1-p)/n}$; the papers publish no per-face predictions, so no paired
# interval is possible for them).

# %%
from poster_lite.data.labels import RAF_DB_COUNTS

published = pd.DataFrame({
    "POSTER (V1)": {"RAF-DB": 92.05, "AffectNet-7": 67.31, "AffectNet-8": 63.34},     # POSTER_FACTS.md / paper
    "POSTER V2": {"RAF-DB": 92.21, "AffectNet-7": 67.49, "AffectNet-8": 63.77},       # POSTER_V2_FACTS.md / README
})
test_faces = {"RAF-DB": sum(RAF_DB_COUNTS["test"]), "AffectNet-7": 7 * 500, "AffectNet-8": 8 * 500}
published["V2 - V1 (points)"] = published["POSTER V2"] - published["POSTER (V1)"]
published["test faces"] = pd.Series(test_faces)
published["noise bar (points)"] = [
    100 * 2 * math.sqrt(2) * math.sqrt((p / 100) * (1 - p / 100) / test_faces[k])
    for k, p in published["POSTER (V1)"].items()]
for data_set, row in published.iterrows():
    word = "within" if abs(row["V2 - V1 (points)"]) <= row["noise bar (points)"] else "beyond"
    print(f"{data_set}: V2 {row['V2 - V1 (points)']:+.2f} points over V1, {word} the noise bar of "
          f"{row['noise bar (points)']:.2f} for {int(row['test faces']):,} test faces")
published.round(2)

# %%
v1_c, v2_c = counts[BASELINE], counts[MODEL]
print(f"At nano scale on SynthFER, one recipe ({endings[MODEL]} vs {endings[BASELINE]}): {MODEL} {100 * results[MODEL]['accuracy']:.1f}% vs "
      f"{BASELINE} {100 * results[BASELINE]['accuracy']:.1f}% ({gain:+.1f} points, 95 % interval "
      f"[{low:+.1f}, {high:+.1f}]: {accuracy_verdict}); "
      f"{v2_c['params'] / v1_c['params'] - 1:+.0%} stored parameters, {v2_c['flops'] / v1_c['flops'] - 1:+.0%} FLOPs, "
      f"{speed[MODEL] / speed[BASELINE]:.2f}x the images per second.")
if SMOKE:
    print(f"(SMOKE: {MODEL} took a few training steps on a few dozen faces, {BASELINE} is "
          f"{v1_model.meta.get('source', 'trained here')}, and both were scored on 48 faces: these numbers mean nothing.)")
print(f"HEADLINE: V2-nano minus V1-nano {gain:+.1f} points [{low:+.1f}, {high:+.1f}], "
      f"{v2_c['flops'] / v1_c['flops']:.2f}x FLOPs, {speed[MODEL] / speed[BASELINE]:.2f}x speed")

# %% [markdown]
# ### What can each model read before its attention has learned anything?
#
# A newly built model's class-token attention is close to uniform (the release's ViT starts
# its projections at a standard deviation of 0.01), so at first V2's class token reads about
# the **mean of its 147 tokens**, and every token is one *place* of the face: the average
# keeps what features fired but not where. POSTER (V1) also averages, but its image tokens
# are runs of the channel-major feature map (the release's raw reshape, notebook 03), so the
# numbers inside a token are laid out by place, and their average keeps part of the layout.
# (V1's landmark tokens are places, like V2's.) On SynthFER the expression is a matter of
# where the mouth corners and brows sit, so this difference can decide how fast each model
# gets off the ground.
#
# The cell measures it: both models are built fresh from the same pretrained nano backbones
# (no fusion weight trained), each face is turned into the average of the tokens its class
# token would read at the start, and a logistic regression (scikit-learn) learns the
# expression from that average on training faces and is scored on test faces. For scale, the
# same regression on V2's landmark map of scale 2 *without* averaging (every place kept).
# Chance is 1/7 = 14.3 %.

# %%
from sklearn.linear_model import LogisticRegression

from poster_lite.pretrain import load_pretrained_backbones

probe_train = pl.data.load(DATA, "train", transform=eval_transform(v2_model.config.input_size))
probe_test = pl.data.load(DATA, "test", transform=eval_transform(v2_model.config.input_size))
n_fit, n_score = (96, 48) if SMOKE else (640, 320)


def stacked(data, n):
    images, labels = zip(*(data[i] for i in range(n)))
    return torch.stack(images), np.array(labels)


fresh = {name: pl.build_model(name, num_classes=len(probe_train.classes)).eval() for name in (BASELINE, MODEL)}
for fresh_model in fresh.values():
    load_pretrained_backbones(fresh_model)


@torch.no_grad()
def start_views(images):
    """What each fresh model's class token can read at the start: token averages, and V2's last landmark map."""
    v1, v2 = fresh[BASELINE], fresh[MODEL]
    views = {"POSTER (V1): mean of the 49 image tokens (runs of the map)": [],
             "POSTER (V1): mean of the 49 landmark tokens (places)": [],
             "POSTER V2: mean of the 147 tokens (places)": [],
             "POSTER V2: the scale-2 landmark map, every place kept": []}
    for batch in images.split(128):
        views["POSTER (V1): mean of the 49 image tokens (runs of the map)"].append(v1.image_tokens(batch).mean(1))
        views["POSTER (V1): mean of the 49 landmark tokens (places)"].append(v1.landmark_tokens(batch).mean(1))
        views["POSTER V2: mean of the 147 tokens (places)"].append(v2.tokens(batch).mean(1))      # B x d
        views["POSTER V2: the scale-2 landmark map, every place kept"].append(
            v2.scale_maps(batch)[-1][1].flatten(1))                                                # B x (C * 7 * 7)
    return {k: torch.cat(v).float().numpy() for k, v in views.items()}


fit_images, fit_labels = stacked(probe_train, n_fit)
score_images, score_labels = stacked(probe_test, n_score)
fit_views, score_views = start_views(fit_images), start_views(score_images)
probe = {}
for view in fit_views:
    mean, spread = fit_views[view].mean(0), fit_views[view].std(0) + 1e-6
    regression = LogisticRegression(max_iter=3000).fit((fit_views[view] - mean) / spread, fit_labels)
    probe[view] = 100 * regression.score((score_views[view] - mean) / spread, score_labels)
probe = pd.Series(probe, name=f"test accuracy of a linear read-out (%), {n_fit} training faces, {n_score} test faces")
# A binomial noise bar for one accuracy on n_score faces (two standard errors at chance).
chance = 100 / len(probe_train.classes)
chance_bar = 2 * 100 * math.sqrt((chance / 100) * (1 - chance / 100) / n_score)
for view, accuracy in probe.items():
    state = "no better than chance" if accuracy <= chance + chance_bar else "above chance"
    print(f"{view}: {accuracy:.1f} % ({state}: chance {chance:.1f} % ± {chance_bar:.1f})")
probe.round(1).to_frame()

# %%
v2_accuracy, v1_accuracy = 100 * results[MODEL]["accuracy"], 100 * results[BASELINE]["accuracy"]
v2_learned = v2_accuracy > chance + 2 * 100 * math.sqrt((chance / 100) * (1 - chance / 100) / len(scored))
v2_average, v1_average = (probe[k] for k in ("POSTER V2: mean of the 147 tokens (places)",
                                             "POSTER (V1): mean of the 49 image tokens (runs of the map)"))
v1_reads, v2_reads = v1_average > chance + chance_bar, v2_average > chance + chance_bar
print(f"{MODEL} after the shared budget: {v2_accuracy:.1f} % on {len(scored)} test faces "
      f"({'above' if v2_learned else 'not above'} chance, {chance:.1f} %); {BASELINE}: {v1_accuracy:.1f} %.")
start = (f"At the start, a linear read-out of the averaged tokens reaches {v1_average:.1f} % for V1's image tokens "
         f"and {v2_average:.1f} % for V2's tokens (chance {chance:.1f} % ± {chance_bar:.1f})")
if v1_reads and v1_average > v2_average + chance_bar:
    print(start + f": V1's average already carries some of the expression and V2's "
          f"{'does not' if not v2_reads else 'carries less'}, so V2 has to learn *where to look* (its attention) "
          "before its class token sees the expression.")
elif not v1_reads and not v2_reads:
    print(start + ": neither average carries the expression measurably at this sample size.")
else:
    print(start + f": {v1_average - v2_average:+.1f} points apart, within the noise bar of {chance_bar:.1f}, so "
          "how the tokens are averaged at the start does not explain the gap measured above.")
if SMOKE:
    print("(SMOKE: a few dozen faces and a barely trained model; these numbers mean nothing.)")

# %% [markdown]
# ### What keeps a trained model at chance: a shut gate
#
# Both models end in the same squeeze-and-excitation gate before the classifier,
# `x * sigmoid(fc2(relu(fc1(x))))` (notebook 04). Each of its numbers opens between 0 (shut) and
# 1 (open), and the gradient that reaches everything before it is scaled by the gate's slope,
# `gate * (1 - gate)`. A freshly built model's gate stands at about 0.5 (its weights start near
# zero). A gate near 0 keeps a model at chance whatever else it has learned: the classifier sees
# almost nothing, every prediction is nearly uniform, and almost no gradient flows back through
# it, so training cannot easily open it again. The cell measures, on test faces, how wide each
# trained model's gate is open and how much its class token (the gate's input) differs from face
# to face. *Why* a gate shut is not measured here; one candidate: while the class token hardly
# differs between faces, making every prediction uniform is the quickest way to lower the loss,
# and shutting the gate does exactly that (exercise 8 tests it).

# %%
@torch.no_grad()
def gate_report(model, images):
    """(mean gate opening, spread of the gate's input between faces relative to its size)."""
    seen = {}
    hook = model.se.register_forward_hook(lambda module, inputs, output: seen.update(token=inputs[0].float()))
    try:
        model(images.to(device))
    finally:
        hook.remove()
    token = seen["token"]                                                          # B x d
    gate = model.se.gate(token.to(model.se.fc1.weight.dtype)).float()                  # B x d, in (0, 1)
    return gate.mean().item(), (token.std(0).mean() / token.abs().mean()).item()


gate_faces = score_images[:64]
for name, checked in ((BASELINE, v1_model), (MODEL, v2_model)):
    opening, spread = gate_report(checked.eval(), gate_faces)
    state = "shut: almost nothing reaches the classifier, and almost no gradient flows back" if opening < 0.05 \
        else "open"
    print(f"{name}: mean SE gate opening {opening:.4f} on {len(gate_faces)} test faces ({state}); its input differs "
          f"between faces by {spread:.1%} of its size")
if SMOKE:
    print("(SMOKE: both models trained for a few steps on a few dozen faces.)")

# %% [markdown]
# What to take from the numbers: "simpler" holds for the *design* (one attention direction,
# no pyramid, no token mixers, two ViT blocks instead of eight double-branch blocks). In one
# unit the paper-size V2 has fewer stored parameters than POSTER (58.3M against 71.8M) but,
# with the attention products counted, not fewer FLOPs (17.18G against 15.71G); section 5
# recounts both outside `SMOKE` mode, and `POSTER_V2_FACTS.md` (the project's reference sheet)
# has the same figures from the authors' own model. The 8.4G beside 15.7G compares
# multiply-adds with FLOPs. Whether "stronger" is a finding, the published-numbers cell says
# per data set, against the noise bar of its test set; at nano scale on SynthFER the cells
# above give this suite's own measurement, with a paired interval.
#
# **Label orders.** A checkpoint's class order matters when you load the authors' files
# (notebook 08). For V2 the repository never names its class folders: the confusion matrix it
# ships fits RAF-DB's own order (Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral),
# which `pl.load_checkpoint` assumes for the 7-class files; **AffectNet-8's order is not
# settled** by the release, so the 8-class file's label names are an assumption to verify on
# a few faces before you trust them.

# %% [markdown]
# ## Summary
#
# - POSTER V2 keeps POSTER's two backbones and its "landmarks ask the image" idea, and drops
#   the image-to-landmark branch, the pyramid over embedding widths and the token mixers. It
#   fuses **three scales** of both backbones, one window cross-attention per scale, and ends
#   in a two-block ViT with a learned class token.
# - The window cross-attention: queries are the raw landmark cells, keys and values one
#   `Linear(C, 2C)` of the LayerNormed image cells, plus a learned bias per head for every
#   offset between two cells. In the release the window is the whole map: global attention
#   with a relative position bias. You built it and the block around it (LayerNormed shortcut,
#   layer scale) and matched the package to float precision (section 2 printed the differences).
# - Each fused map becomes 49 tokens through strided convolutions; 147 tokens, finest scale
#   first, plus a class token enter the ViT. Your embedders gave the package's tokens and logits.
# - V2's window attention maps are maps of the face at every scale, because landmark and
#   image cells are aligned places and nothing mixes them before the attention; in V1 only
#   block 0, level 0 of the landmark branch is.
# - Counted in one unit, the paper-size V2 has fewer stored parameters than POSTER but not
#   fewer FLOPs (section 5); "43.7M and 8.4G" are thop's active parameters and multiply-adds.
# - Section 6 set the published gains beside the noise bars of their test sets, and measured
#   V2 against V1 at nano scale on SynthFER (one recipe; each run's budget printed), with a paired bootstrap interval,
#   and what each model's class token can read before its attention has learned anything (a
#   linear read-out of the averaged tokens): V2's tokens are places, so an average of them
#   loses where on the face each feature fired.
#
# ## Exercises
#
# 1. *(code, checked by `lab_checks` above)* `WindowCrossAttentionFromScratch`.
# 2. Build `pl.build_model(MODEL, window_sizes=(7, 7, 7))`: Swin-style local windows at the
#    two finer scales. How many parameters does it have fewer than `MODEL`, and where exactly
#    are they? How do the FLOPs change (`pl.complexity`)? *Hint:* only the bias tables depend
#    on the window, $(2w-1)^2 \times$ heads each; the attention products scale with the number
#    of windows times $(w^2)^2$.
# 3. In a $28 \times 28$ window, how many query-key pairs share the offset (0, 0), and how
#    many the offset (27, 27)? What does that say about how well the table's corner entries
#    can be learned? *Hint:* count with `relative_position_index(28)` and `torch.bincount`.
# 4. Set the finest scale's bias table of the trained model to zero (in a `copy.deepcopy`) and
#    score it with `pl.evaluate` on the test faces. Does the accuracy drop beyond the bootstrap
#    interval of section 6? *Hint:* `model.cross[0].attn.relative_position_bias_table.zero_()`
#    under `torch.no_grad()`, then `paired_bootstrap` against the unchanged model's results.
# 5. *(open)* The V2 paper's multi-scale claim: train a single-scale V2-nano,
#    `pl.trained_model(MODEL, scales=(2,))` (only the $7 \times 7$ maps, 49 tokens; it is
#    cached apart), and compare it with the three-scale model with `paired_bootstrap`. Is the
#    gain a finding at this test-set size? *Hint:* notebook 07's
#    `lab_checks.check_test_faces_needed` exercise tells you how many test faces a gap of that
#    size would need.
# 6. *(open)* V2's release trains with plain cross-entropy and no weight decay, at a learning
#    rate of 3.5e-5 on RAF-DB (`POSTER_V2_FACTS.md`), POSTER with CE + 2 × label-smoothed CE.
#    Which would you keep for a fair comparison, and why? Try `pl.train` with
#    `smoothing=0` for V2-nano. *Hint:* a fair comparison changes one thing at a time; decide
#    which thing you want to measure.
# 7. *(open)* Section 6's read-out says how much of the expression V2's class token can see
#    before its attention learns where to look. Train `MODEL` with a longer budget
#    (`pl.train(..., epochs=20, patience=4)`) and, from its `history`, find the epoch at which
#    its validation accuracy first leaves chance by more than the noise bar. Then rerun the
#    read-out of section 6 on the *trained* model's tokens (`v2_model.tokens`) and on the
#    class token itself (`v2_model.vit`): where has the expression gone? A second suspect to
#    test: in V2 the landmark stream reaches the tokens only through the cross-attention
#    branch, which layer scale multiplies by `config.layer_scale_init` (1e-5) at the start,
#    while V1 feeds its landmark tokens in directly. Compare `pl.build_model(MODEL,
#    layer_scale_init=1.0)` trained for the same budget.
# 8. *(open)* Watch the gate of section 6 shut. Build a fresh `MODEL` with the pretrained
#    backbones, train it for one epoch with a forward hook on `model.se` that records the mean
#    gate opening at every step, and plot it against the step. When does it fall below 0.05,
#    and how different are the class tokens of different faces at that step? Then repeat with
#    the release's learning rate (`lr=3.5e-5`): does the gate stay open, and does validation
#    accuracy leave chance? *Hint:* the gate is `model.se.gate(x)` for the hook's input `x`;
#    `gate_report` above does the measuring.
