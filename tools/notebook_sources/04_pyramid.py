# %% [markdown]
# # 04 · The pyramid: cross-fusion at three embedding sizes
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/poster-lite/poster-lite/blob/main/notebooks/04_pyramid.ipynb)
#
# > The embedding-axis pyramid (down with a strided Conv1d, up with a transposed one), POSTER-T/S/L assembled block by block, and the supplement's Tables 3 and 4 recomputed from the model itself.
#
# Notebook 03 built one cross-fusion block. POSTER does not simply stack such blocks: each of its
# "pyramid blocks" runs cross-fusion at three embedding sizes at once (512, 256 and 128) and
# passes what the small sizes found back up to the large one. This notebook takes that pyramid
# apart, puts it back together into the paper's three model sizes, and counts what it costs.
#
# **Learning goals.** After this notebook you can
# 1. say along which axis POSTER's pyramid runs, and why that is unlike an image pyramid;
# 2. write the pyramid's down step (a strided `Conv1d` whose channels are the tokens) and up step
#    (a `ConvTranspose1d`) as plain tensor arithmetic, and check them against PyTorch;
# 3. trace the shapes through one pyramid block and through POSTER-T, POSTER-S and POSTER;
# 4. count parameters and FLOPs the paper's way, reproduce the supplement's Tables 3 and 4, and
#    say where the compute goes, level by level.
#
# Time: about one lab hour. Runs on a laptop CPU in a few minutes (building the paper-size
# models to count them takes most of it).

# %% tags=["parameters"]
# Parameters: papermill and `make tour` override these (tools/tour.py -p NAME=VALUE).
SMOKE = 0                 # 1: the quickest run that still touches every cell (what the tests run)
DEVICE = "auto"           # "auto" (a GPU if there is one), "cpu" or "cuda"
DATA = "synthfer"         # unused here: this notebook needs no images (every notebook takes the same parameters)
MODEL = "poster-nano"     # size knob: the model traced in section 3 ("poster-l" for the paper's POSTER)
SIZE_TABLE = ["image-only", "poster-t", "poster-s", "poster-l"]   # rows of Tables 3 and 4 (SMOKE: first two)

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


import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.patches import FancyBboxPatch
from torch import nn

import poster_lite as pl
from poster_lite import lab_checks

# Seed, device ("auto": a GPU if there is one) and runs/04_pyramid/ for this notebook's figures and results.
device, ROOT, RUN_DIR = pl.notebook.setup("04_pyramid", DEVICE, seed=0)
print(f"SMOKE={SMOKE}")

# %% [markdown]
# ## 1 · A pyramid over the embedding axis
#
# The word *pyramid* usually means an image pyramid: the same picture at 224, 112, 56 pixels, a
# coarser grid at each level (as in a feature pyramid network). POSTER's pyramid is different.
# Its input is the fused sequence of notebook 03, $100 \times 512$ (image class token, 49 image
# tokens, landmark class token, 49 landmark tokens), and every level keeps **all 100 tokens**.
# What shrinks is the **embedding**: the large level describes each token with 512 numbers, the
# medium level with 256, the small one with 128.
#
# Why would that help? A transformer block costs about $N d^2$ for its projections and MLP and
# $N^2 d$ for the attention itself ($N$ tokens of size $d$). Halving $d$ cuts the first term by 4,
# so the two extra levels add only about a third to the compute of the large one, and each level
# gets its own cross-fusion block: its own norms, queries, keys and MLP, learning at its own
# granularity. The small levels' results flow back into the large level after every block, and
# only the large level reaches the classifier.
#
# ## 2 · Down and up: convolutions whose channels are tokens
#
# PyTorch's `Conv1d` expects $B \times C \times L$: channels, then a length to slide along. POSTER
# hands it the sequence as it is, $B \times 100 \times 512$, so the **100 tokens are the channels**
# and the kernel slides along the **embedding**. With kernel size = stride = $r$ the embedding
# axis is cut into $512 / r$ non-overlapping chunks of $r$ neighbouring entries, and output token
# $o$ at chunk $j$ is
#
# $$y_{o,j} = b_o + \sum_{t=1}^{100} \sum_{k=1}^{r} W_{o,t,k}\, x_{t,\, jr + k}.$$
#
# Two things follow. Every output token is a learned mix of **all 100 input tokens**, so after
# the down step the "image half" and "landmark half" of a small level are both blends of the
# two streams. And every chunk of $r$ embedding entries is squeezed into one number. The up
# step, `ConvTranspose1d(100, 100, kernel_size=r, stride=r)`, runs the other way: each entry of
# the small level is spread into $r$ entries of the larger one,
# $y_{o,\, jr+k} = b_o + \sum_t W_{t,o,k}\, x_{t,j}$ (note the weight's axes: in, out, kernel).

# %%
tokens = torch.randn(2, 100, 512)                       # B x tokens x embedding
down_2, down_4 = nn.Conv1d(100, 100, 2, stride=2), nn.Conv1d(100, 100, 4, stride=4)
up_2 = nn.ConvTranspose1d(100, 100, 2, stride=2)
medium, small = down_2(tokens), down_4(tokens)
back_up = up_2(medium)
for name, t in [("large (input)", tokens), ("medium = Conv1d r=2", medium), ("small = Conv1d r=4", small),
                ("ConvTranspose1d r=2 of medium", back_up)]:
    print(f"{name:32s} {tuple(t.shape)}")
print(f"weights: Conv1d r=2 {tuple(down_2.weight.shape)} ({sum(p.numel() for p in down_2.parameters()):,} params), "
      f"ConvTranspose1d r=2 {tuple(up_2.weight.shape)}")
assert medium.shape == (2, 100, 256) and small.shape == (2, 100, 128) and back_up.shape == tokens.shape

# %% [markdown]
# ### Exercise 3 · The two moves by hand
# Write `pyramid_down(x, weight, bias)` and `pyramid_up(x, weight, bias)` **without** `F.conv1d`
# or `F.conv_transpose1d`: a reshape and an `einsum` (or a matrix product) each. `x` is
# $B \times T \times d$; `weight` has the shape of the corresponding layer's weight, $T \times T
# \times r$, and the ratio is `r = weight.shape[-1]`. The down step returns $B \times T \times d/r$,
# the up step $B \times T \times dr$. Hint for the down step: view `x` as
# $B \times T \times (d/r) \times r$, so that the formula above becomes a sum over $t$ and $k$.

# %% tags=["solution"]
def pyramid_down(x, weight, bias):
    """Conv1d(T, T, kernel_size=r, stride=r) over the embedding axis: B x T x d -> B x T x d/r."""
    B, T, d = x.shape
    r = weight.shape[-1]
    chunks = x.reshape(B, T, d // r, r)                            # chunk j holds entries jr .. jr+r-1
    return torch.einsum("btjk,otk->boj", chunks, weight) + bias[:, None]


def pyramid_up(x, weight, bias):
    """ConvTranspose1d(T, T, kernel_size=r, stride=r): B x T x d -> B x T x d*r."""
    B, T, d = x.shape
    r = weight.shape[-1]
    spread = torch.einsum("btj,tok->bojk", x, weight)             # entry j becomes r entries
    return spread.reshape(B, weight.shape[1], d * r) + bias[:, None]

# %% tags=["check"]
lab_checks.check_pyramid_updown(pyramid_down, pyramid_up)

# %% [markdown]
# A round trip down and up is **not** the identity: both maps are learned, and the up step of
# POSTER is *added* to the larger level rather than replacing it. The pyramid is not trying to
# compress and restore; it computes something at a coarser embedding and feeds it back as a
# correction.
#
# ## 3 · One pyramid block, and the whole transformer
#
# A pyramid block holds one cross-fusion block per level and one transposed convolution per
# pair of neighbouring levels. Its forward pass:
#
# 1. run each level's cross-fusion block on that level's tokens (the three are independent);
# 2. add the small level, brought up, into the medium one: $x_m \leftarrow x_m + \mathrm{up}_{s\to m}(x_s)$;
# 3. then the medium one into the large one: $x_l \leftarrow x_l + \mathrm{up}_{m\to l}(x_m)$.
#
# Smallest first, so that what the 128-level found reaches the 512-level within the same
# block. (The authors' code names these two layers crosswise, `upsample_s` for $s \to m$ and
# `upsample_m` for $m \to l$; `poster_lite` calls them `upsample[1]` and `upsample[0]`.)
#
# The levels are made **once**, before the first block, by the two down convolutions; after
# that each level lives its own life through all the blocks, receiving the smaller levels'
# corrections. At the end a LayerNorm, the image class token (position 0) of the large level,
# the SE gate and the classifier. The diagram shows this for the model in the parameters.

# %%
def draw_pyramid(config, ax):
    """Levels as rows, blocks as columns: down convolutions on the left, up arrows in each block."""
    dims, depth = config.pyramid_dims, config.depth
    shown = min(depth, 4)                                    # draw at most four blocks, elide the rest
    row_y = {d: len(dims) - 1 - i for i, d in enumerate(dims)}
    box = dict(boxstyle="round,pad=0.02,rounding_size=0.08", linewidth=1.2)
    ax.add_patch(FancyBboxPatch((-0.4, row_y[dims[0]] - 0.3), 0.8, 0.6, fc="#eef", ec="#447", **box))
    ax.text(0, row_y[dims[0]], f"tokens\n{config.num_tokens}×{dims[0]}", ha="center", va="center", fontsize=8)
    for d in dims[1:]:
        ax.annotate("", xy=(1.0, row_y[d]), xytext=(0.3, row_y[dims[0]] - 0.25),
                    arrowprops=dict(arrowstyle="->", color="#447"))
        ax.text(0.55, (row_y[d] + row_y[dims[0]]) / 2 - 0.1, f"Conv1d\nr={dims[0] // d}", fontsize=7, color="#447")
    for b in range(shown):
        x = 1.4 + 1.5 * b
        label = b + 1 if (b < shown - 1 or shown == depth) else depth
        for d in dims:
            ax.add_patch(FancyBboxPatch((x - 0.45, row_y[d] - 0.25), 0.9, 0.5, fc="#fde", ec="#a35", **box))
            ax.text(x, row_y[d], f"cross-fusion\nd={d}", ha="center", va="center", fontsize=7)
        for small, large in zip(dims[1:][::-1], dims[:-1][::-1]):
            ax.annotate("", xy=(x + 0.6, row_y[large] - 0.05), xytext=(x + 0.6, row_y[small] + 0.05),
                        arrowprops=dict(arrowstyle="->", color="#a35", lw=1.4))
            ax.text(x + 0.64, (row_y[small] + row_y[large]) / 2, "+up", fontsize=7, color="#a35", va="center")
        ax.text(x, len(dims) - 0.45, f"block {label}", ha="center", fontsize=8)
        if b == shown - 2 and shown < depth:
            ax.text(x + 0.75, len(dims) - 0.45, "…", ha="center", fontsize=12)
    x_end = 1.4 + 1.5 * shown
    ax.annotate("", xy=(x_end + 0.1, row_y[dims[0]]), xytext=(x_end - 0.8, row_y[dims[0]]),
                arrowprops=dict(arrowstyle="->"))
    ax.text(x_end + 0.15, row_y[dims[0]], "LayerNorm → image class token\n→ SE gate → classifier",
            va="center", fontsize=8)
    ax.set_xlim(-0.6, x_end + 2.6)
    ax.set_ylim(-0.5, len(dims))
    ax.axis("off")
    ax.set_title(f"{MODEL}: {depth} pyramid blocks over embedding sizes {tuple(dims)}", fontsize=10)


config = pl.make_config(MODEL)
fig, ax = plt.subplots(figsize=(10, 1.2 + 0.9 * len(config.pyramid_dims)), constrained_layout=True)
draw_pyramid(config, ax)
fig.savefig(RUN_DIR / "pyramid_diagram.png", dpi=120)
plt.show()

# %% [markdown]
# Now the real thing: we build the model chosen in the parameters and record, with forward
# hooks, the shape of everything that enters and leaves the pyramid during one forward pass.

# %%
model = pl.build_model(MODEL).eval()
fusion = model.fusion
shapes = []


def record(name):
    def hook(module, inputs, output):
        shapes.append({"module": name, "in": tuple(inputs[0].shape) if isinstance(inputs[0], torch.Tensor)
                       else [tuple(t.shape) for t in inputs[0]],
                       "out": tuple(output.shape) if isinstance(output, torch.Tensor)
                       else [tuple(t.shape) for t in output]})
    return hook


handles = [m.register_forward_hook(record(f"fusion.{n}")) for n, m in fusion.named_modules()
           if n.startswith("downsample.") or n.count(".") == 3 and n.startswith("blocks.0.")
           or n in ("blocks.0", "norm")]
size = model.config.input_size
with torch.no_grad():
    logits = model(torch.randn(1, 3, size, size))
for h in handles:
    h.remove()
pd.set_option("display.max_colwidth", 60)
trace = pd.DataFrame(shapes)
trace

# %%
dims, T = model.config.pyramid_dims, model.config.num_tokens
block_out = next(row["out"] for row in shapes if row["module"] == "fusion.blocks.0")
assert block_out == [(1, T, d) for d in dims], block_out
assert logits.shape == (1, model.config.num_classes)
print(f"one pyramid block maps {len(dims)} levels {[(T, d) for d in dims]} to the same shapes; "
      f"logits {tuple(logits.shape)}")

# %% [markdown]
# POSTER-T, POSTER-S and POSTER differ **only** in the number of pyramid blocks: 4, 6 and 8.
# Backbones, tokens, pyramid sizes, head: all identical. (The authors' code calls them small,
# base and large; `poster_lite` names them `poster-t`, `poster-s` and `poster-l`.) The baseline
# of Table 4, *image only*, drops the landmark stream and runs 8 ordinary single-stream blocks
# over the 50 image tokens.

# %%
variants = pd.DataFrame([{"preset": name, **{k: getattr(c, k) for k in ("depth", "pyramid_dims", "num_heads", "image_only")},
                          "tokens per level": c.num_tokens}
                         for name in ["poster-t", "poster-s", "poster-l", "image-only", MODEL]
                         for c in [pl.make_config(name)]]).drop_duplicates("preset").set_index("preset")
variants

# %% [markdown]
# ## 4 · Tables 3 and 4: parameters and FLOPs
#
# The supplement reports, for each model, the parameters and FLOPs of the transformer part
# (the pyramid) and of the whole network *including both backbones*. `pl.size_table()` builds
# each preset (no weights are read: counting needs only the architecture), counts parameters
# exactly, and counts FLOPs on one $224 \times 224$ image with PyTorch's own FLOP counter, as
# **2 × multiply-adds** (the paper's convention). Building the paper-size models takes a little
# while on a CPU.

# %%
presets = SIZE_TABLE[:2] if SMOKE else SIZE_TABLE
table = pl.size_table(presets, show=False)
table

# %%
PAPER_PARAMS = {"poster-t": 52_229_135, "poster-s": 62_039_767, "poster-l": 71_850_399}   # the release's exact counts
rows = []
for name in presets:
    ours = table.loc[name]
    rows.append({"model": name,
                 "params, ours": f"{int(ours[('', 'exact params')]):,}",
                 "params, paper": f"{PAPER_PARAMS[name]:,}" if name in PAPER_PARAMS else f"{ours[('params (M)', 'paper')]}M",
                 "GFLOPs, ours": ours[("FLOPs (G)", "ours")], "GFLOPs, paper": ours[("FLOPs (G)", "paper")],
                 "transformer GFLOPs, ours": ours[("transformer FLOPs (G)", "ours")],
                 "transformer GFLOPs, paper": ours[("transformer FLOPs (G)", "paper")],
                 "transformer gap": ours[("transformer FLOPs (G)", "paper")] - ours[("transformer FLOPs (G)", "ours")]})
    if name in PAPER_PARAMS:
        assert int(ours[("", "exact params")]) == PAPER_PARAMS[name], name
pd.DataFrame(rows).set_index("model")

# %%
largest = presets[-1]
ours = table.loc[largest]
print(f"HEADLINE: {largest} has {int(ours[('', 'exact params')]):,} parameters (paper {ours[('params (M)', 'paper')]}M) "
      f"and {ours[('FLOPs (G)', 'ours')]:.1f} GFLOPs (paper {ours[('FLOPs (G)', 'paper')]}G)")

# %% [markdown]
# **How close is close?** The parameter counts are exact to the last digit for all three
# POSTERs: the architecture is the authors'. The *image only* row is the paper's number within
# 0.25M; the paper does not say exactly how that baseline was built (we keep the release's
# layers and drop the landmark stream). The total FLOPs agree to about 1%. The transformer
# column is where we differ: ours is a few tenths of a GFLOP below the paper's in every row
# (the gap column), and the gap does not grow with the depth. The paper does not say which tool it used or where it drew
# the line between "transformer" and the rest; FLOP counters also disagree on what to count
# (normalisations, activations, softmax). Ours counts convolutions, linear layers and the
# attention matrix products, per module, and nothing else. The *ranking* and the *ratios* of the
# rows, which are what the tables are for, are the same.
#
# Note also what the two columns say together: the backbones (31.5M parameters and 11.4
# GFLOPs) dominate the compute, and the transformer dominates the parameters. Going from
# POSTER-T to POSTER adds 19.6M parameters but only 15% more FLOPs.

# %%
parts = {}
for name in ["poster-t", "poster-s", "poster-l"] if not SMOKE else ["poster-t"]:
    c = pl.complexity(pl.build_model(name))
    parts[name] = {part: v for part, v in c["parts"].items()}
fig, axes = plt.subplots(1, 2, figsize=(10, 1.6 + 0.6 * len(parts)), layout="constrained")
colours = {"image_backbone": "#4c72b0", "landmark_backbone": "#55a868", "transformer": "#c44e52", "head": "#8172b2"}
for ax, key, unit, scale in [(axes[0], "params", "parameters (M)", 1e6), (axes[1], "flops", "GFLOPs (one 224×224 image)", 1e9)]:
    left = np.zeros(len(parts))
    for part, colour in colours.items():
        values = np.array([parts[m][part][key] / scale for m in parts])
        ax.barh(list(parts), values, left=left, color=colour, label=part.replace("_", " "))
        left += values
    ax.set_xlabel(unit)
    ax.invert_yaxis()
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=4, fontsize=9)
axes[0].set_title("where the parameters are")
axes[1].set_title("where the compute is")
fig.savefig(RUN_DIR / "parts.png", dpi=120)
plt.show()

# %% [markdown]
# ## 5 · Where the pyramid's compute goes, level by level
#
# Counting by hand is a good check on understanding. One cross-fusion block at embedding size
# $d$ has two branches, each with 50 queries and 50 keys:
#
# | piece | multiply-adds |
# |---|---|
# | key-value projections, 2 branches × 50 tokens × $d \times 2d$ | $200\,d^2$ |
# | output projections, 2 × 50 × $d \times d$ | $100\,d^2$ |
# | MLPs, 2 × 50 × ($d \times 2d$ + $2d \times d$) | $400\,d^2$ |
# | attention products $QK^\top$ and weights × $V$, 2 × 2 × 50 × 50 × $d$ | $10\,000\,d$ |
# | token mixer, 100 × 100 × $d$ | $10\,000\,d$ |
#
# The $d^2$ terms dominate at $d=512$, so the 256-level costs about a quarter of the 512-level
# and the 128-level about a sixteenth. The next cell compares the formula with PyTorch's
# counter on a real block, then draws the cost per level for POSTER's pyramid and a fourth
# level of 64 (the extra row of Table 1). One catch: on a CPU the counter does not see inside
# PyTorch's fused attention kernel (`scaled_dot_product_attention`) and would miss the attention
# products, so we count the block on its explicit softmax path, which does the same arithmetic
# in plain matrix products.

# %%
from torch.utils.flop_counter import FlopCounterMode
from poster_lite.models.fusion import CrossFusionBlock


def block_macs(d, tokens_per_stream=50):
    n = tokens_per_stream
    return {"kv + output projections": 2 * n * 3 * d * d, "MLP": 2 * n * 4 * d * d,
            "attention products": 2 * 2 * n * n * d, "token mixer": (2 * n) ** 2 * d}


rows = []
for d in (512, 256, 128, 64):
    block = CrossFusionBlock(d, 8, 2.0, 100, fused=False).eval()   # the explicit path: see below
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        block(torch.randn(1, 100, d))
    formula = block_macs(d)
    rows.append({"level d": d, **{k: 2 * v / 1e6 for k, v in formula.items()},
                 "formula total": 2 * sum(formula.values()) / 1e6, "counted": counter.get_total_flops() / 1e6})
levels = pd.DataFrame(rows).set_index("level d")
assert np.allclose(levels["formula total"], levels["counted"], rtol=0.01), levels
print("MFLOPs of one cross-fusion block per level (formula vs PyTorch's FlopCounterMode):")
levels.round(1)

# %%
fig, ax = plt.subplots(figsize=(7, 3.2), constrained_layout=True)
pieces = ["MLP", "kv + output projections", "attention products", "token mixer"]
bottom = np.zeros(len(levels))
for piece, colour in zip(pieces, ["#c44e52", "#dd8452", "#4c72b0", "#937860"]):
    ax.bar([str(d) for d in levels.index], levels[piece], bottom=bottom, color=colour, label=piece)
    bottom += levels[piece].to_numpy()
for i, total in enumerate(levels["counted"]):
    ax.text(i, total * 1.02, f"{total:.0f}", ha="center", fontsize=9)
ax.set_ylim(0, levels["counted"].max() * 1.12)
ax.set_xlabel("pyramid level (embedding size d)")
ax.set_ylabel("MFLOPs per block")
ax.set_title("one cross-fusion block: the cost falls roughly with d²")
ax.legend(fontsize=8)
fig.savefig(RUN_DIR / "flops_per_level.png", dpi=120)
plt.show()
share = levels["counted"] / levels["counted"].iloc[0]
print("cost relative to the 512 level:", ", ".join(f"{d}: {s:.2f}" for d, s in share.items()))

# %% [markdown]
# The medium and small levels together add about a third to the large level's compute; a
# fourth level of 64 would add about 2% more. In parameters it is the same story. Table 1 of the
# supplement found that the fourth level buys nothing in accuracy (92.04 vs 92.05), and three
# levels beat one by 0.4 points. The **pyramid explorer** (from `poster_lite.widgets`) lets you
# tick levels on and off and watch shapes and counts change; below it, the same numbers as a
# static table for every row of Table 1, built and counted here.

# %%
PAPER_TABLE_1 = {(512,): (91.63, 85.01), (512, 256): (91.77, 85.49),
                 (512, 256, 128): (92.05, 86.03), (512, 256, 128, 64): (92.04, 85.97)}
base = "poster-l" if not SMOKE else MODEL        # SMOKE: count the small model's variants instead
try:
    from poster_lite.widgets import PyramidExplorer
    display(PyramidExplorer(preset=base, size_presets=(MODEL,) if SMOKE else tuple(presets)))
except ImportError:          # an older poster-lite without the widgets: the table below stands in
    print("poster_lite.widgets is not available; the table below shows the same counts.")

top = pl.make_config(base).pyramid_dims[0]
rows = []
for n_levels in range(1, 5):
    dims = tuple(top // 2 ** i for i in range(n_levels))
    counted = pl.complexity(pl.build_model(base, pyramid_dims=dims))
    paper = PAPER_TABLE_1.get(dims, (None, None)) if base == "poster-l" else (None, None)
    rows.append({"pyramid_dims": str(dims), "transformer params (M)": counted["parts"]["transformer"]["params"] / 1e6,
                 "transformer GFLOPs": counted["parts"]["transformer"]["flops"] / 1e9,
                 "total params (M)": counted["params"] / 1e6, "paper acc": paper[0], "paper mAcc": paper[1]})
print(f"Table 1's pyramids, built on {base}:")
pd.DataFrame(rows).set_index("pyramid_dims").round(2)

# %% [markdown]
# ## Summary
#
# - POSTER's pyramid runs over the **embedding** axis: all 100 tokens are kept at every level,
#   described with 512, 256 and 128 numbers.
# - The levels are made once by `Conv1d(100, 100, r, stride=r)` with the tokens as channels:
#   each output token mixes all input tokens, and chunks of $r$ embedding entries are squeezed
#   into one. `ConvTranspose1d` brings a level back up, and its result is **added** to the
#   larger level, smallest level first, after every block.
# - POSTER-T, POSTER-S and POSTER are 4, 6 and 8 such blocks; nothing else differs. Their
#   parameter counts come out exactly as the authors' (52,229,135 / 62,039,767 / 71,850,399),
#   the total FLOPs within about 1%.
# - Most parameters sit in the transformer, most compute in the backbones; inside the pyramid
#   the cost falls with $d^2$, so the extra levels are cheap.
#
# Next: notebook 05 trains the whole model.
#
# ## Exercises
#
# 1. *(code, checked above)* `pyramid_down` and `pyramid_up`.
# 2. From the table of section 5, predict the transformer FLOPs of a POSTER with 12 blocks
#    (remember the down convolutions, once, and the up convolutions, in every block). Check
#    with `pl.complexity(pl.build_model("poster-l", depth=12))`.
# 3. Replace the down step by averaging neighbouring embedding entries
#    (`x.reshape(B, T, d // r, r).mean(-1)`): no parameters and no token mixing. How many
#    parameters does POSTER lose? What can the learned version do that averaging cannot?
# 4. The pyramid adds the small level into the medium one *before* the medium one into the
#    large one. Write out what reaches the 512-level within one block if the order is reversed.
# 5. *Image only* runs 8 single-stream blocks and POSTER-T 4 two-stream blocks, and the paper
#    gives both 2.4 transformer GFLOPs. Explain why with the formula of section 5, then check
#    our counts in the table.
# 6. Build `pl.build_model("poster-l", pyramid_dims=(512, 128))`: a pyramid that skips a level.
#    Which layer's shape changes? Does the model still run?
