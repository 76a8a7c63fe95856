# %% [markdown]
# # 03 · Cross-fusion: attention that swaps its questions
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/poster-lite/poster-lite/blob/main/notebooks/03_cross_fusion.ipynb)
#
# > Attention from scratch, self- versus cross-attention and POSTER's query swap: build one cross-fusion block by hand and prove it is the package's.
#
# POSTER has two views of every face: an **image stream** (IR-50 features, "what the skin and
# muscles look like") and a **landmark stream** (MobileFaceNet features, "where the eyes, brows
# and mouth are"). Notebook 02 turned both into 50 tokens each. This notebook is about the one
# idea that joins them: a transformer block in which each stream asks the *other* stream's
# questions.
#
# **Learning goals.** After this notebook you can
# 1. compute multi-head scaled dot-product attention by hand and name every shape on the way;
# 2. say what changes between self-attention and cross-attention, and which stream an output belongs to;
# 3. write POSTER's cross-fusion block (query swap, no query projection, token mixer) and check it number for number against `poster_lite`;
# 4. explain what `swap_depth` changes in a model (the computation) and what it does not (parameters, FLOPs);
# 5. read the attention weights of a model on a face, and know which of them are maps of the face and which are not.
#
# Time: about one lab hour. On a laptop CPU the notebook runs in minutes: the suite's small
# trained model ships with poster-lite and loads in seconds (training it yourself,
# `pl.trained_model(MODEL, retrain=True)`, takes 2.2 minutes for the backbones on an idle 2-core
# machine and, with early stopping, 105 minutes for the model, as the README reports).
# With a GPU, `MODEL = "poster-l"` shows the paper-size model instead, or pass the
# authors' weights as `CHECKPOINT`.

# %% tags=["parameters"]
# Parameters: papermill and `make tour` override these (tools/tour.py -p NAME=VALUE).
SMOKE = 0                # 1: the quickest run that still touches every cell (what the tests run)
DEVICE = "auto"          # "auto" (a GPU if there is one), "cpu" or "cuda"
DATA = "synthfer"        # where the face of section 5 comes from: "synthfer" or a data set poster_lite.data knows
MODEL = "poster-nano"    # size knob: "poster-nano" runs anywhere; "poster-l" is the paper's POSTER
CHECKPOINT = ""          # a trained checkpoint for section 5; "" looks for the suite's own, else trains a small one

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

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

import poster_lite as pl
from poster_lite import lab_checks

# Seed, device ("auto": a GPU if there is one) and runs/03_cross_fusion/ for this notebook's figures and results.
device, ROOT, RUN_DIR = pl.notebook.setup("03_cross_fusion", DEVICE, seed=0)
print(f"SMOKE={SMOKE}")

# %% [markdown]
# ## 1 · Attention from scratch
#
# Attention lets every token gather information from all the others, in proportions it decides
# itself. Each token plays three roles:
#
# - a **query** $q$: what this token is looking for;
# - a **key** $k$: the label under which it can be found;
# - a **value** $v$: what it hands over when it is found.
#
# A query is compared with every key by a dot product; a softmax turns the scores into weights
# that are positive and sum to one; the output is the weighted mix of the values:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_h}}\right) V .$$
#
# With $N_q$ queries, $N_k$ keys and head size $d_h$: $Q$ is $N_q \times d_h$, $K$ and $V$ are
# $N_k \times d_h$, the weights are $N_q \times N_k$ and the output is $N_q \times d_h$.
# **The output has one row per query.** Keep that in mind; it is the whole trick of section 3.

# %%
torch.manual_seed(0)
Nq, Nk, d_h = 4, 6, 8
q, k, v = torch.randn(Nq, d_h), torch.randn(Nk, d_h), torch.randn(Nk, d_h)

scores = q @ k.T / math.sqrt(d_h)      # Nq x Nk: how well each query matches each key
weights = scores.softmax(dim=-1)       # each row: a probability distribution over the keys
out = weights @ v                      # Nq x d_h: per query, a weighted mix of the values

print("q", tuple(q.shape), " k", tuple(k.shape), " scores", tuple(scores.shape), " out", tuple(out.shape))
print("each row of weights sums to", weights.sum(dim=-1).numpy().round(6))
assert out.shape == (Nq, d_h) and torch.allclose(weights.sum(dim=-1), torch.ones(Nq))

# %% [markdown]
# **Why divide by $\sqrt{d_h}$?** A dot product of two random vectors with unit-variance
# entries has variance $d_h$: the longer the vectors, the larger the scores, and a softmax of
# large scores puts almost all weight on one key, whose gradient is then almost zero.
# Dividing by $\sqrt{d_h}$ brings the scores back to unit spread at any head size. The cell
# below measures it: the spread of raw scores grows like $\sqrt{d_h}$, and without the scaling
# the largest softmax weight over 50 keys creeps towards 1.

# %%
torch.manual_seed(0)
rows = []
for size in (4, 16, 64, 256):
    qs, ks = torch.randn(500, size), torch.randn(50, size)
    raw = qs @ ks.T
    rows.append({"head size d_h": size, "std of q·k": raw.std().item(),
                 "max weight, unscaled": raw.softmax(-1).max(-1).values.mean().item(),
                 "max weight, scaled": (raw / math.sqrt(size)).softmax(-1).max(-1).values.mean().item()})
pd.DataFrame(rows).round(3)

# %% [markdown]
# **Heads.** POSTER uses 8 heads at every pyramid level. The $d$ numbers of each token are cut
# into 8 slices of $d_h = d/8$ (64 at $d=512$, 16 at $d=128$); every head runs the formula above
# on its own slice, so different heads can match tokens on different features; the 8 outputs
# are put back side by side. In tensor terms: reshape $B \times N \times d$ to
# $B \times N \times h \times d_h$, move the head axis forward to $B \times h \times N \times d_h$,
# attend (the `@` operator batches over the leading axes), and undo the reshape.
#
# ### Exercise 1 · Multi-head attention
# Write `attention(q, k, v, num_heads)` for batched tokens: `q` is $B \times N_q \times d$, `k`
# and `v` are $B \times N_k \times d$, and the result is $B \times N_q \times d$. No learned
# weights here: only the mechanism. The check below tries 1, 4 and 8 heads and queries and keys
# of different lengths, and compares with PyTorch's `scaled_dot_product_attention`.

# %% tags=["solution"]
def attention(q, k, v, num_heads):
    """Multi-head scaled dot-product attention without projections.

    q: B x Nq x d; k, v: B x Nk x d; d divisible by num_heads. Returns B x Nq x d.
    """
    B, Nq, d = q.shape
    head_dim = d // num_heads

    def split_heads(t):                                   # B x N x d -> B x heads x N x head_dim
        return t.reshape(B, t.shape[1], num_heads, head_dim).transpose(1, 2)

    q, k, v = split_heads(q), split_heads(k), split_heads(v)
    weights = (q @ k.transpose(-2, -1) / math.sqrt(head_dim)).softmax(dim=-1)   # B x heads x Nq x Nk
    out = weights @ v                                                          # B x heads x Nq x head_dim
    return out.transpose(1, 2).reshape(B, Nq, d)                               # heads side by side again

# %% tags=["check"]
lab_checks.check_attention(attention)

# %% [markdown]
# ## 2 · Self-attention and cross-attention
#
# In **self-attention** queries, keys and values all come from the same set of tokens: a
# stream talks to itself. In **cross-attention** the queries come from somewhere else. Because
# the output has one row per query but is made of the *values*, cross-attention reads the
# content of one set of tokens *as requested by* another.
#
# A toy makes this concrete. Four image tokens describe four regions of a face; their keys
# point in four different directions (one per region) and their values are simply one-hot
# "region ids", so an output row shows which regions it read. Four landmark tokens each carry a
# question: the first one noticed the lip corners move, the second the brows go up, and so on.

# %%
regions = ["eyes", "brows", "mouth", "jaw"]
image_keys = 4.0 * torch.eye(4)                  # region i is found along direction i
image_values = torch.eye(4)                      # what a region hands over: its id
landmark_questions = 4.0 * torch.tensor([
    [0.0, 0.0, 1.0, 0.0],                        # "lip corners moved": look at the mouth
    [0.0, 1.0, 0.0, 0.0],                        # "brows went up": look at the brows
    [0.0, 0.0, 0.7, 0.7],                        # "jaw dropped": mouth and jaw
    [0.7, 0.7, 0.0, 0.0],                        # "eyes narrowed": eyes and brows
])
landmark_names = ["lip corners", "brow raise", "jaw drop", "eye squint"]


def attention_weights(queries, keys):
    return (queries @ keys.T / math.sqrt(keys.shape[-1])).softmax(dim=-1)


self_w = attention_weights(image_keys, image_keys)            # the image stream asks itself
cross_w = attention_weights(landmark_questions, image_keys)   # the landmarks ask the image
print("cross-attention output (one row per landmark question, columns = regions read):")
print(pd.DataFrame((cross_w @ image_values).numpy().round(2), index=landmark_names, columns=regions))

fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), constrained_layout=True)
for ax, w, asks, title in [(axes[0], self_w, regions, "self-attention: image asks image"),
                           (axes[1], cross_w, landmark_names, "cross-attention: landmarks ask image")]:
    ax.imshow(w.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(4), regions)
    ax.set_yticks(range(4), asks)
    ax.set_xlabel("keys and values: image tokens")
    ax.set_ylabel("queries")
    ax.set_title(title, fontsize=11)
    for (i, j), value in np.ndenumerate(w.numpy()):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value > 0.5 else "black")
fig.savefig(RUN_DIR / "self_vs_cross.png", dpi=120)
plt.show()

# %% [markdown]
# On the left each region mostly reads itself. On the right every row is a landmark question
# and the image answers it: the "lip corners" question reads the mouth, the "jaw drop" question
# reads mouth and jaw half and half. The answers are image content, so in POSTER they are added
# back into the **image** stream, at the position of the token that asked.

# %% [markdown]
# ## 3 · The query swap: POSTER's cross-fusion block
#
# The block sees one sequence of 100 tokens of size $d$: image class token, 49 image tokens,
# landmark class token, 49 landmark tokens (each class token is the mean of its stream's 49
# tokens, not a learned token: notebook 04 builds that step of the model and explains why). It has
# two pre-norm transformer branches, one per stream, and each takes its
# queries from the **other** stream:
#
# | branch | queries | keys and values | the output updates |
# |---|---|---|---|
# | image | landmark half of $\mathrm{LN}_1(x)$, **not projected** | image half of $\mathrm{LN}_1(x)$, through one $\mathrm{Linear}(d, 2d)$ | the 50 image tokens |
# | landmark | image half of $\mathrm{LN}_3(x)$, **not projected** | landmark half of $\mathrm{LN}_3(x)$, through its own $\mathrm{Linear}(d, 2d)$ | the 50 landmark tokens |
#
# In formulas, for the image branch (the landmark branch mirrors it with its own layers):
#
# $$x_{img} \leftarrow x_{img} + \mathrm{proj}\big(\mathrm{Attention}(n_{lm},\; n_{img}W_k,\; n_{img}W_v)\big), \qquad n = \mathrm{LN}_1(x)$$
# $$x_{img} \leftarrow x_{img} + \mathrm{MLP}_1\big(\mathrm{LN}_2(x_{img})\big)$$
#
# Three details are easy to get wrong, and they matter for loading the authors' weights:
#
# - **No query projection.** A standard transformer computes $Q = nW_q$. Here the other
#   stream's normed tokens *are* the queries; only keys, values and the output are projected.
#   The keys learn to answer questions posed in the other network's raw feature space.
# - **Each branch norms the whole 100-token sequence** with its own LayerNorm, then splits it.
# - **Token mixer.** The RAF-DB release ends every block with `Conv1d(100, 100, kernel_size=1)`
#   over the token axis: each output token is a learned mix of all 100 tokens. (The AffectNet
#   release has no mixer; `mix_tokens=False`.)
#
# With the swap switched off (`swap=False`) each branch takes its queries from its own stream:
# the same parameters now do plain self-attention per stream. That is the "no swap" row of the
# paper's Table 2.
#
# ### Exercise 2 · Build the block
# Write `CrossFusionFromScratch(dim, num_heads, mlp_ratio, num_tokens, swap=True, mix_tokens=True)`.
# Use your `attention` from exercise 1. Give the layers these names, so that the check can load
# the weights of `poster_lite`'s `CrossFusionBlock` into yours and compare outputs:
#
# - per stream, `img` and `lm`: `norm` (LayerNorm, eps $10^{-6}$), `attn.kv` (Linear $d \to 2d$:
#   the first $d$ outputs are keys, the last $d$ values), `attn.proj` (Linear $d \to d$),
#   `mlp_norm` (LayerNorm), `mlp.fc1` (Linear $d \to$ `mlp_ratio` $\cdot d$), GELU, `mlp.fc2`;
# - `token_mixer`: `Conv1d(num_tokens, num_tokens, 1)`, or `None` when `mix_tokens=False`.
#
# (The check also accepts a function `f(x, block)` that computes the output from the layers of a
# `poster_lite` block, if you would rather not build the layers.)

# %% tags=["solution"]
class KeyValueAttention(nn.Module):
    """Attention whose queries arrive ready-made: only keys, values and the output are projected."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries, context):
        keys, values = self.kv(context).chunk(2, dim=-1)
        return self.proj(attention(queries, keys, values, self.num_heads))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Branch(nn.Module):
    """The layers that update one stream."""

    def __init__(self, dim, num_heads, mlp_ratio):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = KeyValueAttention(dim, num_heads)
        self.mlp_norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x_own, normed_own, queries):
        x_own = x_own + self.attn(queries, normed_own)
        return x_own + self.mlp(self.mlp_norm(x_own))


class CrossFusionFromScratch(nn.Module):
    """B x 2N x d -> B x 2N x d; the first N tokens are the image stream, the last N the landmarks."""

    def __init__(self, dim, num_heads, mlp_ratio, num_tokens, swap=True, mix_tokens=True):
        super().__init__()
        self.swap = swap
        self.img = Branch(dim, num_heads, mlp_ratio)
        self.lm = Branch(dim, num_heads, mlp_ratio)
        self.token_mixer = nn.Conv1d(num_tokens, num_tokens, 1) if mix_tokens else None

    def forward(self, x):
        half = x.shape[1] // 2
        x_img, x_lm = x[:, :half], x[:, half:]
        n_img, n_lm = self.img.norm(x).split(half, dim=1)       # the image branch's norm of ALL tokens
        new_img = self.img(x_img, n_img, queries=n_lm if self.swap else n_img)
        n_img, n_lm = self.lm.norm(x).split(half, dim=1)        # the landmark branch's own norm
        new_lm = self.lm(x_lm, n_lm, queries=n_img if self.swap else n_lm)
        x = torch.cat([new_img, new_lm], dim=1)
        return self.token_mixer(x) if self.token_mixer is not None else x

# %% tags=["check"]
lab_checks.check_cross_fusion_block(CrossFusionFromScratch)

# %% [markdown]
# The check used a small block. Here is the real size, the largest pyramid level of POSTER:
# $d = 512$, 8 heads, 100 tokens. We copy the package block's weights into ours and compare
# outputs and parameter counts.

# %%
from poster_lite.models.fusion import CrossFusionBlock

torch.manual_seed(1)
theirs = CrossFusionBlock(dim=512, num_heads=8, mlp_ratio=2.0, num_tokens=100).eval()
tokens = torch.randn(2, 100, 512)
try:
    mine = CrossFusionFromScratch(dim=512, num_heads=8, mlp_ratio=2.0, num_tokens=100).eval()
    mine.load_state_dict(theirs.state_dict())                # strict: every name and shape must agree
    with torch.no_grad():
        mine(tokens)
    built = "built from scratch"
except NotImplementedError:                                  # the student version before exercise 2
    mine, built = copy.deepcopy(theirs), "poster_lite's own (exercise 2 is not done yet)"
    print("Exercise 2 is not done yet: this cell and the next use poster_lite's block in place of yours.")

with torch.no_grad():
    difference = (mine(tokens) - theirs(tokens)).abs().max().item()
params = sum(p.numel() for p in mine.parameters())
print(f"input {tuple(tokens.shape)} -> output {tuple(mine(tokens).shape)}")
print(f"parameters: mine {params:,}, poster_lite {sum(p.numel() for p in theirs.parameters()):,}")
print(f"largest difference between the outputs: {difference:.2e}")
assert mine(tokens).shape == tokens.shape and difference < 1e-4
print(f"HEADLINE: block {built} matches poster_lite's to {difference:.1e}")

# %% [markdown]
# Where do the parameters of one block go? Per branch: the key-value projection holds $2d^2$
# weights, the output projection $d^2$ and the MLP (hidden size $2d$) $4d^2$: about $7d^2$, where
# a standard transformer block with a query projection would have $8d^2$. At $d = 512$ that is
# 1.84M per branch, 3.67M for two, plus biases, norms and the token mixer's $100 \times 100$
# weights. Counting confirms it:

# %%
by_part = {}
for name, p in mine.named_parameters():
    part = name.split(".")[0] + ("." + name.split(".")[1] if name.startswith(("img", "lm")) else "")
    by_part[part] = by_part.get(part, 0) + p.numel()
pd.Series(by_part, name="parameters").to_frame().assign(
    share=lambda t: (t.parameters / t.parameters.sum()).round(3))

# %% [markdown]
# ## 4 · What the swap changes, and what it does not
#
# Switching the swap off changes **who asks**, nothing else: the block has exactly the same
# parameters, and the same arithmetic (a query matrix of the same size meets the same keys).
# So the swap is free in parameters and FLOPs; only the function changes. The cell below takes
# one block, computes it with and without the swap on the same weights, and compares.

# %%
torch.manual_seed(2)
with_swap = CrossFusionBlock(128, 4, 2.0, 100, swap=True).eval()
without_swap = CrossFusionBlock(128, 4, 2.0, 100, swap=False).eval()
without_swap.load_state_dict(with_swap.state_dict())     # the very same weights
x = torch.randn(1, 100, 128)
with torch.no_grad():
    a, b = with_swap(x), without_swap(x)
same_keys = with_swap.state_dict().keys() == without_swap.state_dict().keys()
print(f"same parameter names and shapes: {same_keys}")
print(f"outputs differ by up to {(a - b).abs().max():.3f} (mean |x| is {x.abs().mean():.3f})")
assert same_keys and (a - b).abs().max() > 1e-3

# %% [markdown]
# A whole POSTER stacks `depth` pyramid blocks. `swap_depth` says how many of the *leading*
# blocks swap; the rest do self-attention per stream. The paper's Table 2 tried 0, 1, 2, 4 and 8
# of POSTER's 8 blocks and found that swapping everywhere is best, by 0.8 points of accuracy
# over no swap at all. The table below builds each variant of the paper-size model and of the
# one chosen in the parameters, and shows which blocks swap (■) and their size.

# %%
PAPER_TABLE_2 = {0: (91.27, 85.66), 1: (91.68, 85.71), 2: (91.89, 85.88), 4: (91.91, 85.86), 8: (92.05, 86.03)}
rows = []
for name in dict.fromkeys([MODEL] if SMOKE else ["poster-l", MODEL]):     # SMOKE: skip the big builds
    depth = pl.make_config(name).depth
    settings = sorted(set(PAPER_TABLE_2) | {depth}) if name == "poster-l" else range(depth + 1)
    for swap_depth in settings:
        if swap_depth > depth:
            continue
        variant = pl.build_model(name, swap_depth=swap_depth)
        swaps = [block.swap for block in variant.fusion.blocks]
        acc, macc = PAPER_TABLE_2.get(swap_depth, (None, None)) if name == "poster-l" else (None, None)
        rows.append({"model": name, "swap_depth": swap_depth,
                     "blocks": "".join("■" if s else "□" for s in swaps),
                     "params": sum(p.numel() for p in variant.parameters()),
                     "paper acc": acc, "paper mAcc": macc})
        del variant
swap_table = pd.DataFrame(rows)
swap_table

# %% [markdown]
# The parameter counts agree down to the last digit within each model: the swap is a choice
# of wiring, not of weights. Notebook 07 trains these variants at nano scale and puts our
# accuracies beside the paper's column. At the end of section 5 an explorer rewires a trained
# model live.

# %% [markdown]
# ## 5 · Attention on a face
#
# `model.forward_with_attention(x)` runs the model with the explicit softmax path and returns,
# besides the logits, every attention matrix: a dict keyed by `(block, level, stream)` with
# tensors of shape $B \times \text{heads} \times 50 \times 50$. Read the stream key as *the
# branch that updates that stream*:
#
# - `"img"`: keys and values are the image tokens; with the swap, the queries (rows) are the
#   landmark tokens. Row 0 is the landmark class token asking the image.
# - `"lm"`: keys and values are the landmark tokens, queries are the image tokens. **Row 0 is
#   the image class token asking the landmark stream.**
#
# Is row 0 a map over the face? Only where its keys are still the tokens that entered the
# fusion. The landmark tokens enter as the 49 cells of MobileFaceNet's $7 \times 7$ feature
# map, so in **block 0, level 0** (the first block's largest level) the 49 weights of row 0
# fold back onto that grid: a real map over the face. Everywhere else the keys are mixtures,
# and the cell after the map says why. The image tokens are no map even there in the release's
# layout: they are a raw reshape of the IR-50 feature map, each token a slab of about five whole
# channel maps (notebook 02); with `image_tokens="spatial"` they enter as grid cells too.
#
# A randomly initialised model attends almost uniformly (its queries and keys are nearly
# orthogonal), so we want a trained one. With a `CHECKPOINT` the next cell loads it; otherwise
# it asks `pl.trained_model` for the suite's shared model: loaded in a second from
# `data/cache/models/` when an earlier notebook trained it, else trained now on SynthFER, once,
# from the pretrained backbones of notebook 02, which it makes first if they are missing (the
# times are in the README). In `SMOKE` mode it is trained for one short epoch on a few dozen
# images: enough to run every cell, not to learn anything, so expect near-uniform maps then.

# %%
from poster_lite.data import load
from poster_lite.data.transforms import denormalize, eval_transform

if CHECKPOINT:
    model, origin = pl.load_checkpoint(CHECKPOINT, device=device), f"the checkpoint {CHECKPOINT}"
else:
    # The suite's shared model: loaded from data/cache/models/ if any notebook trained it before,
    # else trained now on SynthFER (with a progress bar) and cached for the others.
    model, origin = pl.trained_model(MODEL, smoke=bool(SMOKE), device=device), f"the suite's trained {MODEL}"
model.eval()
metrics = model.meta.get("metrics", {})
shown = {k: f"{v:.1%}" for k, v in metrics.items() if isinstance(v, float) and "acc" in k}
print(f"using {origin}: {model.config.input_size} px input; {shown or 'no metrics recorded'}")

# %%
test_set = load(DATA, "test")
wanted = test_set.classes.index("Happiness") if "Happiness" in test_set.classes else test_set.targets[0]
index = test_set.targets.index(wanted)
picture, label = test_set[index]
channel_order = model.meta.get("channel_order", "rgb")
x = eval_transform(model.config.input_size, channel_order)(picture)[None].to(device)

with torch.no_grad():
    logits, maps = model.forward_with_attention(x)
probabilities = logits.softmax(dim=-1)[0].cpu()
classes = model.meta.get("classes", test_set.classes)
top3 = probabilities.topk(3)
print(f"true expression: {test_set.classes[label]}; model: " +
      ", ".join(f"{classes[i]} {p:.0%}" for p, i in zip(top3.values.tolist(), top3.indices.tolist())))
key = (model.config.depth - 1, 0, "lm")
print(f"{len(maps)} attention matrices, e.g. {key}: {tuple(maps[key].shape)}  (batch x heads x queries x keys)")
assert maps[key].shape == (1, model.config.num_heads, 50, 50)
assert torch.allclose(maps[key].sum(-1), torch.ones(1, model.config.num_heads, 50, device=maps[key].device))

# %% [markdown]
# Each row of an attention matrix sums to one (the assertion above checks it). We take row 0 of
# the `"lm"` matrix of block 0, level 0, the image class token's question to the landmark
# tokens, drop the weight on the landmark class token (column 0), and fold the remaining 49
# weights into the $7 \times 7$ grid of MobileFaceNet's feature map, per head and averaged over
# the heads, then stretch the grid over the face. Where the map is bright, the image stream's
# summary token asked the landmark stream about that part of the face.

# %%
def class_token_grid(weights):
    """B x heads x 50 x 50 -> heads x 7 x 7: row 0 over keys 1..49 (the 7 x 7 grid)."""
    return weights[0, :, 0, 1:50].reshape(-1, 7, 7).cpu()


def show_on_face(ax, face, grid, title, vmax):
    ax.imshow(face)
    size = face.shape[0]            # one coloured square per cell of the 7 x 7 grid, on one shared scale
    shown = ax.imshow(grid, cmap="magma", alpha=0.6, vmin=0, vmax=vmax, extent=(0, size, size, 0),
                      interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return shown


face = denormalize(x[0].cpu(), channel_order)
uniform = 1 / 50                    # every key's weight when a row of 50 is uniform
heads = class_token_grid(maps[(0, 0, "lm")])           # block 0, level 0: heads x 7 x 7
panels = [(f"head {h + 1}", grid) for h, grid in enumerate(heads)] + [("mean of the heads", heads.mean(0))]
vmax = float(heads.max())
fig, axes = plt.subplots(1, 1 + len(panels), figsize=(2.4 * (1 + len(panels)), 3.0), layout="constrained")
axes[0].imshow(face)
if test_set.landmarks is not None:
    scale = face.shape[0] / picture.size[0]
    axes[0].scatter(*(test_set.landmarks[index] * scale).T, s=4, c="cyan")
axes[0].set_title(f"{test_set.classes[label]} (68 landmarks)", fontsize=9)
axes[0].axis("off")
for ax, (name, grid) in zip(axes[1:], panels):
    shown = show_on_face(ax, face, grid, f"{name}\nmax {grid.max():.3f} (uniform {uniform:.3f})", vmax)
fig.colorbar(shown, ax=axes[1:].tolist(), shrink=0.8, label="attention weight")
fig.suptitle(f"block 0, level 0 (d = {model.config.pyramid_dims[0]}): image class token → landmark tokens, "
             "the one place where they are still the 7 x 7 grid cells", fontsize=10)
fig.savefig(RUN_DIR / "attention_on_face.png", dpi=120)
plt.show()

# %% [markdown]
# Read such a map with care. A bright cell says where the image class token's *question* found
# a matching key, in the first block and the largest level; it does not say that this part of
# the face decided the expression (the value it fetched may matter little, and later layers may
# ignore it). Notebook 06 sets attention beside Grad-CAM, which asks the other question: what
# would change the prediction.
#
# **Why no map for the other blocks and levels?** Three operations of the model treat the 100
# tokens as the *channels* of a 1-D convolution, so each token they output is a weighted sum of
# all 100 tokens they read:
#
# 1. **down** (notebook 04): the smaller pyramid levels are made once, before the first block,
#    by `Conv1d(100, 100, r, stride r)` over the token axis. Token $i$ of level 1 is already a
#    mixture of every token of level 0, so even block 0 attends over mixtures at levels 1 and 2.
# 2. **mixer** (section 3): every block of the RAF-DB release ends with the token mixer
#    `Conv1d(100, 100, 1)`.
# 3. **up-add** (notebook 04): every block adds each smaller level back into the next larger
#    one with a `ConvTranspose1d(100, 100, r, stride r)`, again over the token axis.
#
# So from block 1 on, "landmark token $i$" is a learned mixture of all cells of both streams and
# the class tokens, and its weight drawn over cell $i$ of the face would claim a place the token
# no longer stands for. The figure below marks, for every block and level, whether the keys are
# still grid cells, and shows this model's own weights of the three operations (output token by
# input token): a layer that left each token alone would show only its diagonal; a mixing one
# spreads weight over whole rows.

# %%
mixing = pl.viz.plot_token_mixing(model, save=RUN_DIR / "token_mixing.png")
shares = {name: pl.viz.own_token_share(matrix) for name, matrix in pl.viz.token_mixing(model).items()}
for name, share in shares.items():
    verdict = "mixes the tokens" if share < 0.5 else "mostly keeps each token"
    print(f"{name:7s}: an output token takes {share:.1%} of its weight from its own input token "
          f"(identity 100%, an even mix {1 / model.config.num_tokens:.0%}): {verdict}")
mixing

# %% [markdown]
# Every other (block, level) can still be read as *attention over mixed tokens*: how peaked it
# is, and which token indices it favours. `pl.viz.plot_attention_overview` draws block 0, level 0
# over the face and every (block, level) as one row of weights by token index, labelled "grid
# cells" or "mixed", so that nobody mistakes a row for a map.

# %%
result = pl.viz.compute_attention(model, picture, channel_order)
overview = pl.viz.plot_attention_overview(result, stream="lm", save=RUN_DIR / "attention_overview.png")
overview

# %% [markdown]
#
# How peaked is the attention? The entropy of a row measures it: $\log 50 \approx 3.91$ nats for
# a uniform row over the 50 keys, 0 for a row that looks at a single token. The table lists, for
# every block and level, the entropy of the class token's row in both branches, averaged over
# the heads.

# %%
def row_entropy(weights):
    row = weights[0, :, 0].clamp_min(1e-12)                       # heads x keys
    return float(-(row * row.log()).sum(-1).mean())


entropy = pd.DataFrame([{"block": b, "level": f"{lvl} (d {model.config.pyramid_dims[lvl]})", "branch": stream,
                         "entropy (nats)": row_entropy(w)}
                        for (b, lvl, stream), w in maps.items()])
entropy = entropy.pivot_table(index=["block", "level"], columns="branch", values="entropy (nats)").round(3)
(block, level, branch), lowest = entropy.stack().idxmin(), entropy.stack().min()
print(f"uniform over 50 keys: {math.log(50):.3f} nats; the most selective row: block {block}, level {level}, "
      f"branch {branch!r}, {lowest:.3f} nats")
entropy

# %% [markdown]
# And the other branch: row 0 of `"img"` is the landmark class token asking the image tokens.
# In the release's token layout those 49 image tokens are not places on the face even in block
# 0, level 0, so we show the weights there as bars per token rather than pretend they form a map.

# %%
img_row = maps[(0, 0, "img")][0, :, 0, 1:50].mean(0).cpu()
fig, ax = plt.subplots(figsize=(9, 2.4), layout="constrained")
ax.bar(range(1, 50), img_row, color="#4c72b0")
ax.axhline(uniform, color="grey", ls="--", lw=1, label="uniform")
ax.set_xlabel(f"image token (image_tokens={model.config.image_tokens!r}: "
              + ("not spatial)" if model.config.image_tokens == "official" else "cells of a 7 x 7 grid)"))
ax.set_ylabel("weight")
ax.set_title("block 0, level 0: landmark class token → image tokens (head average)", fontsize=10)
ax.legend(fontsize=8)
fig.savefig(RUN_DIR / "landmark_cls_to_image_tokens.png", dpi=120)
plt.show()

# %% [markdown]
# **The swap-depth explorer.** Section 4 showed that `swap_depth` rewires a model without
# touching its weights. The explorer from `poster_lite.widgets` does that live: move the slider
# and the trained model above runs with only its first blocks swapping. It shows what changes:
# the block diagram with its parameter and FLOP counts (these do not change), the attention of
# the rewired model (block 0, level 0 over the face, the rest by token index), its class
# probabilities on this face beside those of the model as trained, and its accuracy on test
# faces at every swap depth (each scored once and kept), beside the accuracy of models
# *trained* at that swap depth in the shipped ablation grid of notebook 07 (the early-stopped
# frozen-feature grid, `ablations_nano_frozen.json`, once it has rows, else the earlier fixed-epoch
# `ablations_nano.json`; the printout names the file. Those models have 4 blocks and frozen backbones). Where
# widgets cannot render, the cell shows a picture of the current setting.

# %%
try:
    from poster_lite.widgets import SwapDepthExplorer
except ImportError:          # an older poster-lite without the widgets: the table above stands in
    SwapDepthExplorer = None
    print("poster_lite.widgets is not available; section 4's table shows the same counts.")
from poster_lite.shipped import ablation_results_file

ABLATIONS = ablation_results_file()      # notebook 07's grid, shipped inside poster-lite
if SwapDepthExplorer:
    explorer = SwapDepthExplorer(model=model, image=picture, channel_order=channel_order, test_set=test_set,
                                 n_faces=48 if SMOKE else 300, ablations=ABLATIONS)
    rewired_accuracy = explorer.accuracy_at_every_depth()     # scores every swap depth once (cached)
else:
    explorer = None
explorer

# %% [markdown]
# What do the numbers say? The cell below compares each rewired accuracy with the model as
# trained, against the noise of scoring on this many faces (twice the standard error of a
# difference, the bar notebook 07 uses), and reads the shipped grid's models trained at each
# swap depth the same way.

# %%
if explorer is not None:
    trained_depth, n_scored = model.config.swap_blocks, explorer.n_scored
    as_trained = rewired_accuracy[trained_depth]
    noise = 2 * math.sqrt(2) * math.sqrt(max(as_trained * (1 - as_trained), 1e-4) / n_scored)
    print(f"{MODEL} as trained (swap_depth {trained_depth}): {as_trained:.1%} on {n_scored} test faces; "
          f"noise bar for a difference {100 * noise:.1f} points")
    for depth, accuracy in rewired_accuracy.items():
        if depth == trained_depth:
            continue
        gap = accuracy - as_trained
        word = "within the noise" if abs(gap) <= noise else ("lower" if gap < 0 else "higher") + ", beyond the noise"
        print(f"  rewired to swap_depth {depth}: {accuracy:.1%} ({100 * gap:+.1f} points: {word})")
    if explorer.shipped:
        trained_at = {k: float(np.mean(v)) for k, v in explorer.shipped["accuracy"].items()}
        spread = max(trained_at.values()) - min(trained_at.values())
        n_grid = explorer.shipped["n_test"]
        p_grid = float(np.mean(list(trained_at.values())))
        grid_noise = 2 * math.sqrt(2) * math.sqrt(p_grid * (1 - p_grid) / n_grid)
        print(f"trained at each swap depth ({explorer.shipped['file']}, {explorer.shipped['depth']} blocks): "
              + ", ".join(f"{k}: {v:.1%}" for k, v in trained_at.items())
              + f"; largest gap {100 * spread:.1f} points, "
              + ("within" if spread <= grid_noise else "beyond") + f" that grid's noise bar (~{100 * grid_noise:.1f})")

# %% [markdown]
# Two different questions hide here. *Rewiring after training* asks whether the weights depend
# on the wiring they were trained with: a model whose landmark branch learned to answer the
# image stream's questions receives other questions when its blocks stop swapping, so a large
# drop says the weights rely on the swap. *Training at each swap depth* (notebook 07, the paper's
# Table 2) asks whether the wiring changes what the model can learn. The numbers above answer
# both for this model and this grid; at nano scale, small gaps sit inside the noise bars.

# %% [markdown]
# ## Summary
#
# - Attention is a soft lookup: queries meet keys, a softmax turns the matches into weights,
#   and the output mixes values, **one row per query**. Dividing by $\sqrt{d_h}$ keeps the
#   softmax from saturating; heads let different slices of the features match differently.
# - Cross-attention takes its queries from another set of tokens; the answer is made of the
#   values, so it belongs to the stream that owns the keys.
# - POSTER's cross-fusion block runs one branch per stream; each branch takes its queries, *not
#   projected*, from the other stream's normed tokens; a Conv1d over the token axis mixes the
#   100 tokens at the end. You built it and matched the package to float precision.
# - The swap costs no parameters and no FLOPs; `swap_depth` only rewires who asks whom.
# - Of all the attention maps, only block 0, level 0 of the landmark branch (image class token
#   over landmark tokens) is a map of the face: the token-axis down-convolutions, the token
#   mixer and the up-adds mix all tokens everywhere else. The image branch's keys are grid cells
#   only with spatial image tokens.
# - Rewiring a trained model's swap depth and training at that swap depth are different
#   experiments; the explorer shows both.
#
# Next: notebook 04 stacks these blocks at three embedding sizes into the pyramid.
#
# ## Exercises
#
# 1. *(code, checked by `lab_checks` above)* `attention` and `CrossFusionFromScratch`.
# 2. Add a query projection `nn.Linear(d, d)` to each branch of your block. How many parameters
#    does a POSTER-L gain (8 blocks, levels 512, 256 and 128)? Is the result still loadable
#    from the authors' checkpoints? *Hint:* count $d^2 + d$ per branch and level, and remember
#    that `load_state_dict(strict=True)` refuses a model with keys the file lacks.
# 3. In your block, the image branch norms the whole 100-token sequence. Change it to norm only
#    the image half for keys and only the landmark half for queries (two separate norms). Does
#    the check still pass? Why not, and would the two versions be equally good models?
#    *Hint:* a LayerNorm normalises each token over its $d$ features; ask which weights the two
#    versions have, not which statistics they compute.
# 4. The entropy table of section 5 covers every block and level. Does attention get sharper or
#    flatter with depth and with smaller levels? Why may you compare entropies across blocks
#    although only block 0, level 0 is a map of the face? *Hint:* an entropy needs a
#    distribution over keys, not their positions.
# 5. *(open)* Train a model with spatial image tokens, `pl.trained_model(MODEL,
#    image_tokens="spatial")`, and draw `pl.viz.plot_attention(model, picture)`. Its block 0,
#    level 0 image branch is now a map of the face too. Do both streams look at the same parts
#    of the face, and does the spatial model score better or worse? *Hint:* notebook 02's
#    `plot_token_sources` shows what each kind of image token is made of.
# 6. The toy of section 2 used scaled-up keys (`4.0 * torch.eye(4)`). Set the factor to 1.
#    What happens to the cross-attention weights, and what does that tell you about why trained
#    attention needs large query-key products to be selective? *Hint:* compare the spread of the
#    scores with the $\sqrt{d_h}$ table of section 1.
# 7. *(open)* How much does this model rely on its token mixers? In a copy of the model
#    (`copy.deepcopy`), set every token mixer to the identity (weight `torch.eye(100)[..., None]`,
#    bias zero) and score it with `pl.evaluate`. *Hint:* the identity is the one mixer that
#    leaves every token a grid cell; compare the drop with the noise bar of notebook 07.
