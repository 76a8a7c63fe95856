# %% [markdown]
# # 02 · Backbones: IR-50, MobileFaceNet and the way to tokens
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/poster-lite/poster-lite/blob/main/notebooks/02_backbones.ipynb)
#
# > Build IR-50 and MobileFaceNet from their units and prove them equal to the package's, see which pixels survive the 224 → 112 resize, pretrain both backbones on SynthFER, load files in the authors' layout, and turn feature maps into tokens.
#
# POSTER does not look at pixels directly. Two convolutional networks read the face first: an
# **IR-50**, trained for face recognition, describes *what the face looks like*; a
# **MobileFaceNet**, trained to find the 68 landmarks and then frozen, describes *where its
# parts are*. Their last feature maps become the two token streams that notebook 03 fuses.
# In this notebook you write both networks' building units yourself, assemble the two
# backbones from them, and check them number for number against `poster_lite`'s. Then we
# pretrain them on SynthFER the way the authors' backbones were trained on real faces, load
# files in the authors' layout, and follow a feature map into tokens.
#
# **Learning goals.** After this notebook you can
# 1. write IR-50's unit and MobileFaceNet's inverted residual, assemble both backbones from
#    them, and show by loading the package's weights strictly that they compute the same numbers;
# 2. trace a face through both networks and give every shape (and say why the strides sit where
#    they do);
# 3. count the parameters of a depthwise separable convolution and explain why MobileFaceNet is
#    built from them;
# 4. say which pixels of a 224 px input the backbones see, and why the release's weights need
#    exactly that resize;
# 5. pretrain both backbones on SynthFER (identities for the IR-50, landmarks for the
#    MobileFaceNet) and judge the results by identity accuracy and normalised mean error;
# 6. load the authors' `ir50.pth` and `mobilefacenet_model_best.pth.tar`, read the report, and
#    name the weights that sit in POSTER without ever running;
# 7. explain what the release's reshape of the $14 \times 14$ map into 49 tokens does, how a
#    spatial (space-to-depth) reading differs, and where each stream's class token comes from.
#
# Time: about one lab hour. The first run pretrains both backbones (a few minutes on a CPU) and
# caches them; later runs load them.

# %% tags=["parameters"]
# Parameters: papermill and `make tour` override these (tools/tour.py -p NAME=VALUE).
SMOKE = 0                # 1: the quickest run that still touches every cell (what the tests run)
DEVICE = "auto"          # "auto" (a GPU if there is one), "cpu" or "cuda"
DATA = "synthfer"        # faces for the pictures; pretraining always uses SynthFER (it needs identities and landmarks)
MODEL = "poster-nano"    # size knob: whose backbones are built, pretrained and shown ("poster-l": the paper's, on a GPU)
PAPER_SHAPES = True      # also build the paper-size backbones from your units (builds poster-l once; skipped in SMOKE)
PRETRAIN_EPOCHS = 2      # epochs of each backbone's pretraining when nothing is cached (SMOKE: 1, on 32 images)

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


from collections import OrderedDict

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle
from torch import nn

import poster_lite as pl
from poster_lite import lab_checks, pretrain
from poster_lite.checkpoint import atomic_write
from poster_lite.data.transforms import eval_transform
from poster_lite.models import ir50 as package_ir50
from poster_lite.models import mobilefacenet as package_mfn
from poster_lite.models.official import to_release_state_dict

# Seed, device ("auto": a GPU if there is one) and runs/02_backbones/ for this notebook's figures and results.
device, ROOT, RUN_DIR = pl.notebook.setup("02_backbones", DEVICE, seed=0)
print(f"SMOKE={SMOKE}")


def n_params(module):
    return sum(p.numel() for p in module.parameters())

# %% [markdown]
# ## 1 · IR-50, built from its units
#
# IR-50 is the 50-layer ResNet of ArcFace, the face-recognition network. Its building block is
# the **IR unit** ("improved residual"):
#
# $$y = \mathrm{BN}\big(\mathrm{conv}_{3\times3,\ s}(\mathrm{PReLU}(\mathrm{conv}_{3\times3}(\mathrm{BN}(x))))\big) + \mathrm{shortcut}(x)$$
#
# The stride $s$ is 2 in the first unit of every stage, which halves the map; the shortcut then
# subsamples too: a strided $1\times1$ convolution plus BN when the width changes, and plain
# subsampling when it does not (`MaxPool2d(1, s)`: a "max" over one pixel, every $s$-th pixel).
# PReLU is a ReLU whose slope for negative inputs is learned, one slope per channel.
#
# POSTER keeps the stem ($3 \times 3$ conv, BN, PReLU) and the first **three** stages: for a
# $112 \times 112$ face that is $112 \to 56 \to 28 \to 14$, ending in a $256 \times 14 \times 14$ map
# in the paper's model. The full face-recognition IR-50 goes on: a fourth stage ($512$ channels,
# $14 \to 7$) and an **embedding head** (BN, dropout, flatten, $\mathrm{Linear}(512 \cdot 7 \cdot 7, 512)$,
# BN) that turns the $7 \times 7$ map into a 512-number identity embedding. The two are treated
# differently. Stage 4 is **not in POSTER's model** (loading `ir50.pth` skips its weights). The
# embedding head **is**: the release's model holds it, its checkpoints store it and the paper's
# parameter counts include it, but POSTER never calls it (it could not: it expects stage 4's
# $512 \times 7 \times 7$ map). We build it too and measure below what it weighs.
#
# First the shapes, stage by stage, through the package's IR-50 of the model in the parameters:

# %%
model = pl.build_model(MODEL).eval()
# The package's backbones start from the pretrained files if they are cached, else from a random
# initialisation. Either way, the weights we copy into our own build below are these.
loaded = pretrain.load_pretrained_backbones(model)
weights_from = {name: ("pretrained on SynthFER (cached file)" if any(f.endswith(name) for f in loaded)
                       else "randomly initialised (nothing cached yet; section 4 pretrains)")
                for name in (pretrain.IMAGE_FILE, pretrain.LANDMARK_FILE)}
backbone = model.image_backbone


def trace_ir(backbone, size):
    """Shapes and parameter counts, stem and stage by stage, for one size x size input."""
    x = torch.randn(1, 3, size, size)
    rows = [{"layer": "input", "output shape": tuple(x.shape), "parameters": 0}]
    with torch.no_grad():
        x = backbone.stem(x)
        rows.append({"layer": "stem: conv3x3 + BN + PReLU", "output shape": tuple(x.shape),
                     "parameters": n_params(backbone.stem)})
        for k, stage in enumerate(backbone.stages):
            x = stage(x)
            rows.append({"layer": f"stage {k + 1}: {len(stage.units)} IR units", "output shape": tuple(x.shape),
                         "parameters": n_params(stage)})
    rows.append({"layer": "embedding head (never run)", "output shape": "-",
                 "parameters": n_params(backbone.embedding_head) if backbone.embedding_head is not None else 0})
    return pd.DataFrame(rows).set_index("layer"), x


size = model.config.backbone_size
table, fmap = trace_ir(backbone, size)
print(f"{MODEL}: the image backbone reads {size} x {size} faces (the model's input is {model.config.input_size} px)")
assert fmap.shape[-2:] == (14, 14), fmap.shape
table

# %% [markdown]
# ### Exercise 1 · The IR unit
# Write `IRUnit(in_ch, out_ch, stride)`. Use the package's layer names, so that its weights can
# be loaded into yours: `bn_in` (BatchNorm2d over the input), `conv1` ($3\times3$, stride 1,
# padding 1, no bias, `in_ch` → `out_ch`), `act` (PReLU, one slope per channel), `conv2`
# ($3\times3$, **stride** `stride`, padding 1, no bias), `bn_out`, and `shortcut`:
# `nn.MaxPool2d(1, stride)` when `in_ch == out_ch`, otherwise an `nn.Sequential` holding `conv`
# ($1\times1$, stride, no bias) and `bn`. The forward adds the shortcut of the unit's *input* to
# the residual branch. The check loads the weights of `poster_lite`'s `IRUnit`, with random
# BatchNorm statistics and PReLU slopes, into yours and compares outputs with and without a
# change of width, at stride 1 and 2.

# %% tags=["solution"]
class IRUnit(nn.Module):
    """BN -> conv3x3 -> PReLU -> conv3x3 (stride) -> BN, plus a shortcut of the input."""

    def __init__(self, in_ch, out_ch, stride):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False)
        self.act = nn.PReLU(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride, 1, bias=False)   # the stride sits here
        self.bn_out = nn.BatchNorm2d(out_ch)
        if in_ch == out_ch:
            self.shortcut = nn.MaxPool2d(1, stride)                          # every stride-th pixel
        else:
            self.shortcut = nn.Sequential(OrderedDict(conv=nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                                                      bn=nn.BatchNorm2d(out_ch)))

    def forward(self, x):
        residual = self.bn_out(self.conv2(self.act(self.conv1(self.bn_in(x)))))
        return residual + self.shortcut(x)

# %% tags=["check"]
lab_checks.check_ir_unit(IRUnit)

# %% [markdown]
# Now the whole backbone from your units: the stem, three stages whose first unit halves the map
# and changes the width, and the embedding head, which the forward pass never touches. Every
# layer carries the package's name, so `load_state_dict(..., strict=True)` (every name and shape
# must agree, nothing left over) proves that the two networks have the same layers; equal
# outputs prove that they compute the same thing.

# %%
# In the student version the package's unit stands in until exercise 1 passes, so the notebook runs on.
Unit = IRUnit if lab_checks.check_ir_unit(IRUnit, verbose=False) else package_ir50.IRUnit


def conv_bn_prelu(in_ch, out_ch):
    """IR-50's stem: 3x3 conv, BN, PReLU."""
    return nn.Sequential(OrderedDict(conv=nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
                                     bn=nn.BatchNorm2d(out_ch), act=nn.PReLU(out_ch)))


class IRStage(nn.Module):
    def __init__(self, in_ch, out_ch, units):
        super().__init__()
        self.units = nn.Sequential(*[Unit(in_ch if i == 0 else out_ch, out_ch, 2 if i == 0 else 1)
                                     for i in range(units)])

    def forward(self, x):
        return self.units(x)


class EmbeddingHead(nn.Module):
    """ArcFace's identity head: B x C x 7 x 7 -> B x E. Part of POSTER's model, never called by it."""

    def __init__(self, channels, embedding_size, grid=7):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout()
        self.linear = nn.Linear(channels * grid * grid, embedding_size)
        self.bn_out = nn.BatchNorm1d(embedding_size)

    def forward(self, x):
        return self.bn_out(self.linear(self.dropout(self.bn_in(x)).flatten(1)))   # B x C*49 -> B x E


class IR50FromScratch(nn.Module):
    """POSTER's image backbone: B x 3 x 112 x 112 -> B x C x 14 x 14."""

    def __init__(self, config):
        super().__init__()
        self.stem = conv_bn_prelu(3, config.ir_stem)
        widths = [config.ir_stem, *config.ir_widths]
        self.stages = nn.ModuleList(IRStage(widths[k], widths[k + 1], n) for k, n in enumerate(config.ir_units))
        # No stage 4. The head stays, as in the release: it is in the checkpoints and the parameter counts.
        self.embedding_head = EmbeddingHead(config.ir_stage4_width, config.ir_embedding_size)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x                                  # the embedding head is not called


my_ir50 = IR50FromScratch(model.config).eval()
my_ir50.load_state_dict(model.image_backbone.state_dict(), strict=True)
faces_in = torch.randn(4, 3, size, size)
head_calls = []
hook = my_ir50.embedding_head.register_forward_hook(lambda *args: head_calls.append(1))
with torch.no_grad():
    ir_difference = (my_ir50(faces_in) - model.image_backbone(faces_in)).abs().max().item()
hook.remove()
print(f"package weights: {weights_from[pretrain.IMAGE_FILE]}; units: "
      f"{'yours' if Unit is IRUnit else 'the package units (exercise 1 is not done yet)'}")
print(f"your IR-50: {n_params(my_ir50):,} parameters (package: {n_params(model.image_backbone):,}); "
      f"largest output difference {ir_difference:.1e}; embedding head called {len(head_calls)} times")
assert ir_difference < 1e-5 and not head_calls

# %% [markdown]
# The paper's IR-50 (in `poster-l`, and the same in POSTER-T and POSTER-S) has 3, 4 and 14 units in
# its three stages, widths 64, 128 and 256. The same class builds it; here its trace, the strict
# load and the comparison at full size (a few seconds), and what its embedding head weighs:

# %%
PAPER_POSTER_PARAMS = 71_850_399          # the release's POSTER (RAF-DB); the supplement's Table 3 says 71.8M
paper_config = pl.make_config("poster-l")
paper_head = EmbeddingHead(paper_config.ir_stage4_width, paper_config.ir_embedding_size)
print(f"the paper-size embedding head: {n_params(paper_head):,} parameters "
      f"(Linear {paper_config.ir_stage4_width}*7*7 -> {paper_config.ir_embedding_size} plus two BatchNorms), "
      f"{n_params(paper_head) / PAPER_POSTER_PARAMS:.1%} of the paper's POSTER ({PAPER_POSTER_PARAMS:,})")
if PAPER_SHAPES and not SMOKE:
    paper = pl.build_model("poster-l").eval()
    paper_table, paper_map = trace_ir(paper.image_backbone, paper.config.backbone_size)
    assert tuple(paper_map.shape) == (1, 256, 14, 14)
    my_paper_ir50 = IR50FromScratch(paper.config).eval()
    my_paper_ir50.load_state_dict(paper.image_backbone.state_dict(), strict=True)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        paper_difference = (my_paper_ir50(x) - paper.image_backbone(x)).abs().max().item()
    assert paper_difference < 1e-5
    total = n_params(paper)
    print(f"poster-l: your IR-50 matches to {paper_difference:.1e}; image backbone "
          f"{n_params(paper.image_backbone) / 1e6:.2f}M parameters, of which the embedding head "
          f"{n_params(paper.image_backbone.embedding_head) / 1e6:.2f}M; landmark backbone "
          f"{n_params(paper.landmark_backbone) / 1e6:.2f}M; the whole POSTER {total:,}")
    assert total == PAPER_POSTER_PARAMS
    display(paper_table)
    del paper, my_paper_ir50
else:
    print("paper-size build skipped (SMOKE, or PAPER_SHAPES=False)")

# %% [markdown]
# So the share printed above of the paper's POSTER belongs to a layer that never runs. It costs
# no FLOPs, and a model without it computes exactly the same (exercise 9 asks what else changes). `poster_lite` keeps it by default
# (`ir_embedding_head=True` in `PosterConfig`) so that the parameter counts and the authors'
# checkpoints match theirs exactly.
#
# ## 2 · MobileFaceNet and depthwise separable convolutions
#
# The landmark network must be cheap: it runs on every face, next to the IR-50. MobileFaceNet
# gets there with the **depthwise separable** convolution of MobileNet. A plain $k \times k$
# convolution from $C_\text{in}$ to $C_\text{out}$ channels lets every output channel look at every
# input channel at every offset: $k^2 C_\text{in} C_\text{out}$ weights. The separable version
# splits this in two:
#
# - a **depthwise** $k \times k$ convolution, one filter per channel (`groups=C_in`): $k^2 C_\text{in}$
#   weights, looking at the neighbourhood but never mixing channels;
# - a **pointwise** $1 \times 1$ convolution that mixes channels: $C_\text{in} C_\text{out}$ weights.
#
# The table counts both for a few widths (a $3 \times 3$ convolution from $C$ to $C$ channels):

# %%
rows = []
for c in (32, 64, 128, 512):
    plain = nn.Conv2d(c, c, 3, padding=1, bias=False)
    separable = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False), nn.Conv2d(c, c, 1, bias=False))
    x = torch.randn(1, c, 14, 14)
    assert plain(x).shape == separable(x).shape
    rows.append({"channels": c, "plain 3x3": n_params(plain), "depthwise + pointwise": n_params(separable),
                 "ratio": n_params(plain) / n_params(separable)})
pd.DataFrame(rows).set_index("channels").round(2)

# %% [markdown]
# The ratio is $9C^2 / (9C + C^2) = 9C / (9 + C)$: it approaches 9 as the width grows. MobileFaceNet's
# two bricks, in `poster_lite.models.mobilefacenet`:
#
# - **`ConvBN`**: a convolution (no bias), BatchNorm, and PReLU unless `act=False`. With
#   `groups=channels` it is the **depthwise block**: the stem's second layer (`stem_dw`) is one.
# - **The inverted residual** (the package calls it `DepthwiseSeparable`), MobileNetV2's unit:
#   a $1\times1$ `ConvBN` **expands** the channels (to `expand` of them), a $3\times3$ depthwise
#   `ConvBN` with the unit's stride looks at the neighbourhood, and a $1\times1$ `ConvBN` **without
#   activation** projects back to `out_ch` (the "linear bottleneck": a PReLU on the narrow output
#   would throw information away). When `residual` is set, the input is added. "Inverted"
#   because the unit is wide in the middle and narrow at its ends, the other way round from a
#   ResNet bottleneck.
#
# ### Exercise 2 · MobileFaceNet's two bricks
# Write `ConvBN(in_ch, out_ch, kernel=1, stride=1, padding=0, groups=1, act=True)`, an
# `nn.Sequential` of `conv`, `bn` and (if `act`) `act`, and
# `InvertedResidual(in_ch, out_ch, expand, stride, residual)` with the layers `expand`,
# `depthwise` and `project`, each a `ConvBN`. The check loads the weights of the package's unit
# into yours (random BatchNorm statistics and PReLU slopes) and compares outputs, with and without
# the residual, at stride 1 and 2.

# %% tags=["solution"]
class ConvBN(nn.Sequential):
    """conv (no bias) + BN (+ PReLU unless act=False). With groups=channels: the depthwise block."""

    def __init__(self, in_ch, out_ch, kernel=1, stride=1, padding=0, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        if act:
            self.act = nn.PReLU(out_ch)


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise (stride) -> 1x1 linear project [+ input]."""

    def __init__(self, in_ch, out_ch, expand, stride, residual):
        super().__init__()
        self.expand = ConvBN(in_ch, expand)
        self.depthwise = ConvBN(expand, expand, 3, stride, 1, groups=expand)   # one 3x3 filter per channel
        self.project = ConvBN(expand, out_ch, act=False)                      # the linear bottleneck
        self.residual = residual

    def forward(self, x):
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y

# %% tags=["check"]
lab_checks.check_inverted_residual(InvertedResidual)

# %% [markdown]
# The whole MobileFaceNet from your bricks. A strided stem ($112 \to 56$) and a depthwise block;
# then stages, each one strided inverted residual that changes the size and then residual units
# at that size ($56 \to 28 \to 14 \to 7$); then `features`, a $1\times1$ `ConvBN` (the release's
# `conv_6_sep`), whose $7 \times 7$ map POSTER reads as 49 landmark tokens; last the landmark head
# (a $7\times7$ depthwise `ConvBN` without activation, the "global depthwise convolution", then a
# linear layer and BN: 136 numbers, 68 points × (x, y)), which is what the network was
# pretrained for. POSTER never uses the head's output; it keeps the network frozen.

# %%
# As above: the package's bricks stand in until exercise 2 passes.
if lab_checks.check_inverted_residual(InvertedResidual, verbose=False):
    Brick, Residual = ConvBN, InvertedResidual
else:
    Brick, Residual = package_mfn.ConvBN, package_mfn.DepthwiseSeparable


class MobileFaceNetStage(nn.Module):
    """One strided unit that changes the size, then `units` residual units at that size."""

    def __init__(self, in_ch, out_ch, down_expand, units, expand):
        super().__init__()
        self.down = Residual(in_ch, out_ch, down_expand, stride=2, residual=False)
        self.blocks = nn.Sequential(*[Residual(out_ch, out_ch, expand, stride=1, residual=True) for _ in range(units)])

    def forward(self, x):
        return self.blocks(self.down(x))


class LandmarkHead(nn.Module):
    """Global depthwise conv (7x7, one filter per channel) -> linear -> BN: 136 numbers."""

    def __init__(self, channels, outputs, grid=7):
        super().__init__()
        self.depthwise = Brick(channels, channels, grid, groups=channels, act=False)
        self.linear = nn.Linear(channels, outputs, bias=False)
        self.bn = nn.BatchNorm1d(outputs)

    def forward(self, x):
        return self.bn(self.linear(self.depthwise(x).flatten(1)))      # B x C x 1 x 1 -> B x C -> B x 136


class MobileFaceNetFromScratch(nn.Module):
    """B x 3 x 112 x 112 -> B x C x 7 x 7 (the landmark tokens' map); `landmarks` gives B x 136."""

    def __init__(self, config):
        super().__init__()
        stem = config.mfn_stem
        self.stem = Brick(3, stem, 3, 2, 1)                               # 112 -> 56
        self.stem_dw = Brick(stem, stem, 3, 1, 1, groups=stem)            # the depthwise block
        stages, in_ch = [], stem
        for out_ch, down_expand, units, expand in config.mfn_stages:    # 56 -> 28 -> 14 -> 7
            stages.append(MobileFaceNetStage(in_ch, out_ch, down_expand, units, expand))
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)
        self.features = Brick(in_ch, config.landmark_channels)            # conv_6_sep
        self.landmark_head = LandmarkHead(config.landmark_channels, 2 * config.num_landmarks)

    def forward(self, x):
        x = self.stem_dw(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return self.features(x)

    def landmarks(self, features):
        return self.landmark_head(features)


my_mfn = MobileFaceNetFromScratch(model.config).eval()
my_mfn.load_state_dict(model.landmark_backbone.state_dict(), strict=True)
with torch.no_grad():
    ours, theirs = my_mfn(faces_in), model.landmark_backbone(faces_in)
    feature_difference = (ours - theirs).abs().max().item()
    point_difference = (my_mfn.landmarks(ours) - model.landmark_backbone.landmarks(theirs)).abs().max().item()
print(f"package weights: {weights_from[pretrain.LANDMARK_FILE]}; bricks: "
      f"{'yours' if Residual is InvertedResidual else 'the package bricks (exercise 2 is not done yet)'}")
print(f"your MobileFaceNet: {n_params(my_mfn):,} parameters (package: {n_params(model.landmark_backbone):,}); "
      f"largest difference: features {feature_difference:.1e}, landmarks {point_difference:.1e}")
assert feature_difference < 1e-5 and point_difference < 1e-5

# %% [markdown]
# Stage by stage, through your build: the map halves four times, and the depthwise filters are
# a small share of the parameters. (The release's MobileFaceNet is the same at paper size, with
# `mfn_stages` of `pl.make_config("poster-l")`.)

# %%
rows, x = [], torch.randn(1, 3, size, size)
with torch.no_grad():
    x = my_mfn.stem_dw(my_mfn.stem(x))
    rows.append(("stem: conv3x3 s2 + depthwise 3x3", tuple(x.shape), n_params(my_mfn.stem) + n_params(my_mfn.stem_dw)))
    for k, stage in enumerate(my_mfn.stages):
        x = stage(x)
        rows.append((f"stage {k + 1}: 1 strided + {len(stage.blocks)} residual units", tuple(x.shape), n_params(stage)))
    x = my_mfn.features(x)
    rows.append(("features (conv_6_sep, 1x1)", tuple(x.shape), n_params(my_mfn.features)))
    points = my_mfn.landmarks(x)
    rows.append(("landmark head (unused by POSTER)", tuple(points.shape), n_params(my_mfn.landmark_head)))
depthwise_share = sum(m.weight.numel() for m in my_mfn.modules()
                      if isinstance(m, nn.Conv2d) and m.groups > 1) / n_params(my_mfn)
print(f"{MODEL} MobileFaceNet: {n_params(my_mfn):,} parameters, of which depthwise filters "
      f"{depthwise_share:.1%}; frozen in POSTER: {not any(p.requires_grad for p in model.landmark_backbone.parameters())}")
assert x.shape[-2:] == (7, 7) and points.shape[-1] == 136
pd.DataFrame(rows, columns=["layer", "output shape", "parameters"]).set_index("layer")

# %% [markdown]
# From here on the notebook uses the package's backbones: they are the ones you just built.
#
# ## 3 · From 224 to 112: every second pixel
#
# The paper's models take $224 \times 224$ images (the input pipeline resizes every face to 224,
# the ImageNet habit), yet both backbones read $112 \times 112$: the first thing the release does
# with the batch, for each backbone, is `F.interpolate(x, size=112)`. No `mode` is given, and
# PyTorch's default mode is **nearest**: output pixel $(i, j)$ is input pixel $(2i, 2j)$. Every
# second row and every second column survive, one pixel in four; the other three never reach
# either network. (A bilinear resize at exactly half size would instead average each $2 \times 2$
# block.) The cell checks both statements on a face drawn at 224 px and draws a crop around the
# outer corner of an eye.

# %%
face_224, face_points = pl.data.synthfer.draw_face({"AU12": 1.0, "AU6": 0.8}, size=224)   # a smile, 224 px
x224 = torch.from_numpy(face_224).permute(2, 0, 1)[None].float() / 255                       # 1 x 3 x 224 x 224
nearest = F.interpolate(x224, size=112)                       # the release's call: mode "nearest"
bilinear = F.interpolate(x224, size=112, mode="bilinear")
assert torch.equal(nearest, x224[..., ::2, ::2])              # every second pixel, from the first
assert torch.allclose(bilinear, F.avg_pool2d(x224, 2), atol=1e-6)   # at half size: 2x2 averages

corner = face_points[36]                                      # outer corner of the left eye, in pixels
top, left = (int(corner[1]) - 8) // 2 * 2, (int(corner[0]) - 8) // 2 * 2   # even, so kept pixels sit at even offsets
crop = slice(top, top + 16), slice(left, left + 16)
half = slice(top // 2, top // 2 + 8), slice(left // 2, left // 2 + 8)
to_image = lambda t: t[0].permute(1, 2, 0).numpy()

fig, axes = plt.subplots(1, 4, figsize=(12, 3.4), constrained_layout=True)
axes[0].imshow(face_224)
axes[0].add_patch(Rectangle((left - 0.5, top - 0.5), 16, 16, fill=False, ec="red", lw=1.5))
axes[0].set_title("224 px input (red: the crop)", fontsize=9)
axes[1].imshow(face_224[crop])
rows_kept, cols_kept = np.meshgrid(np.arange(0, 16, 2), np.arange(0, 16, 2), indexing="ij")
axes[1].scatter(cols_kept.ravel(), rows_kept.ravel(), s=14, c="red", marker="o")
axes[1].set_xticks(np.arange(-0.5, 16, 1), minor=True)
axes[1].set_yticks(np.arange(-0.5, 16, 1), minor=True)
axes[1].grid(which="minor", color="white", lw=0.4)
axes[1].set_title("16×16 crop: red dots = the pixels\nnearest keeps (1 in 4)", fontsize=9)
axes[2].imshow(to_image(nearest)[half])
axes[2].set_title("nearest, 112 px: exactly\nthe red-dot pixels", fontsize=9)
axes[3].imshow(to_image(bilinear)[half])
axes[3].set_title("bilinear, 112 px: each pixel\nthe mean of a 2×2 block", fontsize=9)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
fig.savefig(RUN_DIR / "nearest_resize.png", dpi=120)
plt.show()

kept = nearest.numel() / x224.numel()
gap = (nearest - bilinear).abs().mean().item() / x224.std().item()
print(f"nearest keeps {kept:.0%} of the input's pixels; the nearest and bilinear 112 px images differ "
      f"on average by {gap:.1%} of the input's pixel spread")

# %% [markdown]
# **Why the release's weights need exactly this resize.** A trained network is tuned to the
# statistics of what it was trained on. The authors trained (and evaluated) POSTER with this
# nearest resize in the forward pass, so their weights expect images with the hard, slightly
# aliased edges of kept pixels, not the smoother 2×2 averages of a bilinear resize. The two
# inputs differ (by the share printed above on this face), and the difference travels through
# both backbones and the transformer into the logits. With the release's own reference outputs,
# notebook 04 measures it: the package's nearest resize reproduces the release's logits, a
# bilinear one does not. That is why `poster_lite` copies the release's call
# (`backbone_resize="nearest"` in `PosterConfig`) rather than the "better" resize.
#
# It also means that a 224 px POSTER pays for 224 px images in its data pipeline and sees 112 px
# ones, and three pixels in four could be anything: exercise 4 builds two images that differ
# there and get identical logits. The suite's `poster-nano` skips the step: it takes 112 px
# images (`input_size=112`), and the resize is not applied when the input already has the
# backbones' size.

# %%
for name in ("poster-l", MODEL):
    c = pl.make_config(name)
    print(f"{name}: input {c.input_size} px, backbones read {c.backbone_size} px, "
          f"resize {'(none needed)' if c.input_size == c.backbone_size else c.backbone_resize}")

# %% [markdown]
# ## 4 · Pretraining both backbones on SynthFER
#
# The authors did not train these networks for expressions. Their IR-50 comes from face
# recognition (MS-Celeb-1M), their MobileFaceNet from landmark detection, and POSTER starts
# from both (and never updates the landmark net). SynthFER records who each face is and where
# its landmarks are, so we can repeat both pretrainings at nano scale:
#
# - **IR-50: identity.** The full IR-50 (with stage 4 and its embedding head) learns to tell
#   SynthFER's 200 training people apart, with a CosFace loss: the cosine between a face's
#   embedding and its person's centre must beat the others by a margin. Scored on held-out
#   photos of the same people.
# - **MobileFaceNet: landmarks.** It regresses the 68 points (coordinates in units of the image
#   side). Scored by the **normalised mean error** (NME): the mean distance between predicted
#   and true points, divided by the distance between the outer eye corners, on the validation
#   people, never seen in training.
#
# `pl.pretrain_backbones(preset)` does both and saves the files in the authors' layouts under
# `data/cache/backbones/<preset>/`. If they are there, we load them; otherwise we pretrain now
# (a few minutes on a CPU, with progress bars). In SMOKE mode a tiny run goes to this notebook's
# run folder instead, so the real cache is never overwritten by a toy.

# %%
if SMOKE:
    backbone_folder = RUN_DIR / "smoke_backbones"
    reports = pl.pretrain_backbones(MODEL, epochs=1, limit=32, batch_size=16, out_dir=backbone_folder, device=device)
else:
    backbone_folder = pretrain.backbone_dir(MODEL)
    # Loads data/cache/backbones/<MODEL>/ when it is complete, else pretrains now (two epochs
    # each keep this under a lab's patience on a CPU; exercise 7 trains longer).
    print("cached" if (backbone_folder / "report.json").exists() else "pretraining now:", backbone_folder)
    reports = pretrain.ensure_pretrained_backbones(MODEL, epochs=PRETRAIN_EPOCHS, device=device, shipped=False)
image_report, landmark_report = reports["image_backbone"], reports["landmark_backbone"]
print(f"IR-50 identities: {image_report['identity_accuracy']:.1%} of {image_report['held_out_images']} held-out photos "
      f"of {image_report['identities']} people (chance {image_report['chance']:.1%}), {image_report['epochs']} epochs")
print(f"MobileFaceNet landmarks: NME {landmark_report['nme']:.3f} on {landmark_report['val_images']} faces of unseen people "
      f"(the mean face, before training: {landmark_report['nme_untrained']:.3f}), {landmark_report['epochs']} epochs")
print(f"HEADLINE: landmark NME {landmark_report['nme']:.3f}, identity accuracy {image_report['identity_accuracy']:.0%} "
      f"({MODEL} backbones{', SMOKE' if SMOKE else ''})")

# %% [markdown]
# An NME of 0.05 means the points are off, on average, by 5 % of the distance between the eye
# corners: a couple of pixels on a 112 px face. The "before training" figure is the head's
# starting guess, the average face placed where the average face sits.
#
# ## 5 · Landmarks on faces the network has never seen
#
# We load the landmark file into a fresh MobileFaceNet and draw its predictions (red crosses,
# with a yellow line to the true point) over the truth (green dots) on validation faces. The
# NME of each face is in its title.

# %%
net = pretrain.build_landmark_backbone(MODEL)
load_report = pl.load_official_weights(net, backbone_folder / pretrain.LANDMARK_FILE, verbose=False)
net.eval()
print("loaded:", load_report)

faces_set = pl.data.load("synthfer", split="val")
shown = list(range(4 if SMOKE else 8))
faces = [faces_set[i][0] for i in shown]
truth = [faces_set.landmarks[i] for i in shown]
to_input = eval_transform(model.config.backbone_size)
batch = torch.stack([to_input(f) for f in faces])
predicted = pl.viz.predict_landmarks(net, batch)
scale = faces[0].size[0] / batch.shape[-1]            # prediction pixels -> stored image pixels
fig = pl.viz.plot_landmarks(faces, truth, [p * scale for p in predicted], ncols=4,
                            save=RUN_DIR / "landmark_predictions.png")
fig

# %%
many = range(min(len(faces_set), 64 if SMOKE else 500))
batch = torch.stack([to_input(faces_set[i][0]) for i in many])
points = torch.from_numpy(pl.viz.predict_landmarks(net, batch) * scale)
truth_points = torch.from_numpy(faces_set.landmarks[list(many)])
errors = pretrain.normalised_mean_error(points, truth_points)
print(f"NME over {len(errors)} validation faces: mean {errors.mean():.3f}, median {errors.median():.3f}, "
      f"worst {errors.max():.3f}; {float((errors < 0.1).float().mean()):.0%} of faces under 0.1")
per_point = ((points - truth_points).norm(dim=-1) / (truth_points[:, 36] - truth_points[:, 45]).norm(dim=-1, keepdim=True)).mean(0)
parts = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48), "mouth": range(48, 68)}
pd.Series({part: float(per_point[list(idx)].mean()) for part, idx in parts.items()}, name="mean NME").round(3).to_frame().T

# %% [markdown]
# The table splits the error by face part. Expect the jaw line to be among the hardest (its
# points sit on a soft edge that hair and beards cover) and compare with what the table says.
#
# ## 6 · Loading the official files
#
# The authors publish their backbones as two files, and POSTER's code loads them at start:
#
# - `ir50.pth`: a bare state dict of the full IR-50 (stage 4 and the embedding head included),
#   with keys like `input_layer.0.weight` and `body.3.res_layer.1.weight`;
# - `mobilefacenet_model_best.pth.tar`: `{"state_dict": ...}` with keys like `conv1.conv.weight`.
#
# `pl.load_official_weights(model, path)` reads either (and the authors' whole-POSTER
# checkpoints too), translates the names, and insists that every key and shape matches: the
# release's own loader silently skips mismatches and leaves random layers behind. The real files
# are not in this repository (they are the authors' to distribute, and 170 MB), so we write
# files in exactly their layout ourselves, from our pretrained backbones, and load those. The
# same call takes the authors' files.

# %%
official_dir = RUN_DIR / "official_layout"
official_dir.mkdir(exist_ok=True)
ir50 = pretrain.build_image_backbone(MODEL)
pl.load_official_weights(ir50, backbone_folder / pretrain.IMAGE_FILE, verbose=False)
# Written atomically (a temporary file, then a rename), so a half-written file can never be loaded.
atomic_write(official_dir / "ir50.pth", lambda tmp: torch.save(to_release_state_dict(ir50), tmp))
atomic_write(official_dir / "mobilefacenet_model_best.pth.tar",
             lambda tmp: torch.save({"state_dict": to_release_state_dict(net)}, tmp))

ir_file = torch.load(official_dir / "ir50.pth", weights_only=True)
mfn_file = torch.load(official_dir / "mobilefacenet_model_best.pth.tar", weights_only=True)
print(f"ir50.pth: {len(ir_file)} tensors, e.g. {list(ir_file)[:3]}")
print(f"mobilefacenet_model_best.pth.tar: {{'state_dict': {len(mfn_file['state_dict'])} tensors}}, "
      f"e.g. {list(mfn_file['state_dict'])[:3]}")

fresh = pl.build_model(MODEL)
before = fresh.image_backbone.stem.conv.weight.clone()
for name in ("ir50.pth", "mobilefacenet_model_best.pth.tar"):
    report = pl.load_official_weights(fresh, official_dir / name)
    print(f"{name}: kind {report['kind']}, {report['loaded']} tensors loaded, {len(report['unused'])} unused")
assert not torch.equal(before, fresh.image_backbone.stem.conv.weight)
assert torch.equal(fresh.image_backbone.stem.conv.weight, ir50.stem.conv.weight)

# %% [markdown]
# The IR-50 report lists the stage-4 keys (`body.*` beyond POSTER's three stages) as *unused*:
# POSTER has no stage 4, so they have no place in it, and the loader says so instead of failing.
# The embedding head's keys (`output_layer.*`) are *not* among them: they load into the head that
# POSTER's IR-50 keeps and never runs (section 1). A file that does not fit
# the model is a different matter: the loader refuses, naming the first mismatches. Here, our
# IR-50 file offered to a model whose third stage is narrower (48 channels instead of 64):

# %%
try:
    pl.load_official_weights(pl.build_model("image-only-nano", ir_widths=(16, 32, 48)), official_dir / "ir50.pth")
except Exception as error:
    print(f"{type(error).__name__}: {str(error)[:600]}")
else:
    raise AssertionError("a mismatched file should not load")

# %% [markdown]
# In practice: `pretrain.load_pretrained_backbones(model)` loads whatever is cached for a
# preset (every model that `pl.trained_model` trains starts from it), and
# `pl.load_official_weights(model, "ir50.pth")` loads the authors' file into a paper-size model.
#
# ## 7 · From feature maps to tokens
#
# The backbones' last maps, for one face: each row is a layer, the first panel the mean
# activation over channels (where the layer responds), the others its strongest channels.

# %%
pretrain.load_pretrained_backbones(model, folder=backbone_folder)
model.eval()
face = faces[0]
fig = pl.viz.plot_feature_maps(model, face, channels=5, save=RUN_DIR / "feature_maps.png")
fig

# %% [markdown]
# **The landmark stream** is easy: the $C \times 7 \times 7$ map is flattened to 49 positions, each a
# token of $C$ numbers (512 in the paper). Token $i$ is the cell $i$ of a $7 \times 7$ grid over
# the face.
#
# **The image stream** needs 49 tokens from a $C \times 14 \times 14$ map (256 × 14 × 14 in the paper).
# The release does it with one line, `x.view(B, -1, 1024)` (our "official" mode): it reads the
# tensor in memory order, channel after channel, and cuts it into 49 runs of $4C$ numbers. With
# $C = 256$ each run holds $1024 / 196 \approx 5.2$ **channel maps** (starting and ending inside a
# map): the token is a handful of feature maps over the whole face, not a place on the face. A spatial reading, **space-to-depth**, takes the
# 2 × 2 patch of cell $i$ and stacks its four positions' channels: same shape, $49 \times 4C$, but
# token $i$ now *is* a place. The released weights were trained with the reshape, so `poster_lite`
# keeps it by default (`image_tokens="official"`) and offers `"spatial"` as an option (exercise 5
# of notebook 03 trains one and draws its attention). Where token 25 comes from in each reading:

# %%
fig = pl.viz.plot_token_sources(model, face, token=24, save=RUN_DIR / "token_sources.png")
fig

# %%
from poster_lite.models.poster import image_tokens_from_map

fmap = pl.viz.feature_maps(model, face)[f"IR-50 stage {len(model.image_backbone.stages)}"]
fmap = torch.from_numpy(fmap)[None]                      # 1 x C x 14 x 14
official, spatial = image_tokens_from_map(fmap, "official"), image_tokens_from_map(fmap, "spatial")
C = fmap.shape[1]
print(f"feature map {tuple(fmap.shape)} -> official {tuple(official.shape)}, spatial {tuple(spatial.shape)}")
print(f"official token 25 holds (parts of) channels {pl.viz.official_token_channels(24, C)}; "
      f"spatial token 25 holds all {C} channels at rows 6-7, columns 6-7 of the map")
assert torch.equal(official[0, 0], fmap.flatten()[:4 * C])
assert torch.equal(spatial[0, 0], fmap[0, :, :2, :2].reshape(-1))

# %% [markdown]
# The last assert says it in index form: the first official token is simply the first $4C$
# numbers of the tensor (the first channel maps), while the first spatial token holds every
# channel at the four top-left positions.
#
# ### Exercise 3 · Space-to-depth tokens
# Write `spatial_tokens(fmap)` for a $B \times C \times H \times W$ map ($H$, $W$ even): return
# $B \times (H/2 \cdot W/2) \times 4C$ tokens, token $i$ being cell $i$ (row-major) of the
# $H/2 \times W/2$ grid, its $4C$ numbers ordered as PyTorch's `pixel_unshuffle` orders them
# (channel-major: for each channel, its 4 positions top-left, top-right, bottom-left,
# bottom-right). Use only `reshape` and `permute`. The check compares with
# `image_tokens_from_map(fmap, "spatial")`.

# %% tags=["solution"]
def spatial_tokens(fmap):
    """B x C x H x W -> B x (H/2 * W/2) x 4C: 2x2 space-to-depth, one token per grid cell."""
    B, C, H, W = fmap.shape
    cells = fmap.reshape(B, C, H // 2, 2, W // 2, 2)            # split rows and columns into (cell, offset)
    cells = cells.permute(0, 2, 4, 1, 3, 5)                     # B x gridH x gridW x C x 2 x 2
    return cells.reshape(B, (H // 2) * (W // 2), 4 * C)

# %% tags=["check"]
def check_spatial_tokens(fn):
    """Equal to the package's space-to-depth on random maps of several shapes."""
    from poster_lite.models.poster import image_tokens_from_map

    try:
        torch.manual_seed(0)
        for shape in [(1, 3, 4, 4), (2, 16, 14, 14), (2, 8, 6, 10)]:
            fmap = torch.randn(shape)
            got, want = fn(fmap), image_tokens_from_map(fmap, "spatial")
            assert tuple(got.shape) == tuple(want.shape), f"{shape}: shape {tuple(got.shape)}, expected {tuple(want.shape)}"
            if torch.equal(got, image_tokens_from_map(fmap, "official")) and not torch.equal(got, want):
                raise AssertionError("that is the release's raw reshape, not space-to-depth")
            assert torch.equal(got, want), f"{shape}: right shape, wrong order of numbers inside the tokens"
    except NotImplementedError:
        print("⏳ spatial_tokens: not implemented yet. Fill in the exercise cell and run it again.")
        return False
    except AssertionError as e:
        print(f"❌ spatial_tokens: {e}")
        return False
    print("✅ spatial_tokens: identical to pixel_unshuffle-based space-to-depth.")
    return True


check_spatial_tokens(spatial_tokens)

# %% [markdown]
# With either reading, a linear layer (`model.image_proj`) then maps each $4C$-number token to
# the transformer's width $d$, and the landmark tokens, which already have $d$ numbers, go in as
# they are: 49 tokens per stream.

# %%
with torch.no_grad():
    batch = eval_transform(model.config.input_size)(face)[None]
    img_tokens, lm_tokens = model.image_tokens(batch), model.landmark_tokens(batch)
print(f"image tokens {tuple(img_tokens.shape)} (after image_proj {model.image_proj}), "
      f"landmark tokens {tuple(lm_tokens.shape)}")
assert img_tokens.shape[1] == lm_tokens.shape[1] == 49 and img_tokens.shape[2] == lm_tokens.shape[2]

# %% [markdown]
# ### The class tokens: a mean, and a learned token that is never used
#
# Each stream gets one more token in front of its 49, a **class token**, which will carry the
# stream's summary through the transformer (the classifier reads the image stream's class token
# at the end; notebook 04). In POSTER it is simply the **mean of the stream's 49 tokens**:
# computed from the face, with no parameters of its own. So each stream has 50 tokens, and the
# two together 100.
#
# The release also *defines* a learned class token, the ViT way of doing it: a parameter of
# $1 \times 1 \times d$ (`cls_token` in its code, `fusion.learned_cls_token` in `poster_lite`),
# initialised at random. Its forward never reads it. It still sits in every checkpoint and
# counts $d$ parameters in the totals, and since nothing uses it, training never changes it: no
# gradient reaches it. The cell shows both facts: the class token is the mean, and after a
# backward pass the learned token has no gradient while the position embedding next to it
# (notebook 04) does.

# %%
with_class_token = torch.cat([img_tokens.mean(dim=1, keepdim=True), img_tokens], dim=1)   # B x 50 x d
print(f"image stream with its class token: {tuple(with_class_token.shape)}")

model.zero_grad(set_to_none=True)
model(batch).sum().backward()            # any loss will do: we only ask which parameters get a gradient
learned = model.fusion.learned_cls_token
print(f"learned class token {tuple(learned.shape)}: {learned.numel()} parameters, gradient {learned.grad}")
print(f"position embedding {tuple(model.fusion.image_pos_embed.shape)}: gradient of norm "
      f"{model.fusion.image_pos_embed.grad.norm():.2e}")
assert learned.grad is None and model.fusion.image_pos_embed.grad is not None
model.zero_grad(set_to_none=True)

# %% [markdown]
# ## Summary
#
# - POSTER's **IR-50** keeps the stem and three stages of ArcFace's network, built from IR
#   units (BN, conv, PReLU, strided conv, BN, plus a shortcut that subsamples, through a
#   $1\times1$ conv when the width changes). It halves the map at each stage's first unit,
#   $112 \to 14$ with 256 channels in the paper. Your build, loaded strictly with the package's
#   weights, gives the same output.
# - The full IR-50's **stage 4** is not in POSTER; its **embedding head** is: part of the model,
#   the checkpoints and the paper's parameter counts (12.85M at paper size), never run.
# - **MobileFaceNet** is built from `ConvBN` bricks (a depthwise block when `groups=channels`)
#   and inverted residuals (expand, depthwise, linear project, plus the input); a separable
#   $3 \times 3$ convolution needs about $9C/(9+C)$ times fewer weights than a plain one. It halves
#   the map four times to $7 \times 7$ and stays frozen in POSTER. Your build matches it too.
# - The paper's models take 224 px images and both backbones **resize them to 112 by nearest
#   sampling**: every second pixel, three in four never seen. The release's weights expect
#   exactly that, so the package copies it.
# - Both backbones are **pretrained** for other tasks: identities for the IR-50, landmarks for
#   MobileFaceNet. On SynthFER, `pl.pretrain_backbones` does both and writes files in the
#   authors' layouts; the numbers reached are printed in section 4.
# - `pl.load_official_weights` loads `ir50.pth` and `mobilefacenet_model_best.pth.tar` strictly,
#   reporting the IR-50's unused stage-4 keys and refusing files that do not fit.
# - The landmark map becomes 49 tokens cell by cell. The image map becomes 49 tokens by the
#   release's raw reshape, which makes each token a few channel maps rather than a place;
#   space-to-depth is the spatial alternative with the same shapes. Each stream's **class
#   token is the mean** of its tokens; the release's learned class token is never used.
#
# Next: notebook 03 fuses the two token streams.
#
# ## Exercises
#
# 1. *(code, self-check above)* `IRUnit`, checked by `lab_checks.check_ir_unit`.
# 2. *(code, self-check above)* `ConvBN` and `InvertedResidual`, checked by
#    `lab_checks.check_inverted_residual`.
# 3. *(code, self-check above)* `spatial_tokens`: space-to-depth with `reshape` and `permute`.
# 4. *(code)* **Invisible pixels.** Build two $224 \times 224$ images that differ in three pixels
#    out of every four, yet give *identical* logits from
#    `pl.build_model("poster-nano", input_size=224).eval()`, and assert it with `torch.equal`.
#    Then do the same with a model built with `backbone_resize="bilinear"`: what happens, and why?
#    *Hint:* start from `x = torch.randn(1, 3, 224, 224)`, copy it, and overwrite every pixel
#    that `x[..., ::2, ::2]` does not read.
# 5. Count the multiply-adds of a plain and a separable $3\times3$ convolution on a
#    $128 \times 14 \times 14$ map with `torch.utils.flop_counter.FlopCounterMode`. Is the ratio the
#    same as for the parameters? Why? *Hint:* at stride 1 with padding, how many times is each
#    weight used?
# 6. The paper's image map has $C = 256$ channels. How many channels does the release's reshape
#    put into each token, and does any token start in the middle of a channel map? Check with
#    `pl.viz.official_token_channels`. *Hint:* a token holds $4C$ numbers and a channel map
#    $14 \cdot 14 = 196$.
# 7. Pretrain only the landmark net for more epochs:
#    `pretrain.pretrain_landmark_backbone(MODEL, epochs=8, out_dir=RUN_DIR / "longer")`. How far
#    does the NME fall? Which face part improves most? *Hint:* rebuild the per-part table of
#    section 5 from the new file and put the two tables side by side.
# 8. Why is the landmark network frozen in POSTER? What could go wrong if the expression loss
#    were allowed to change it? *Hint:* think about what the landmark tokens would still mean
#    afterwards, and how many labelled faces each of the two tasks had to learn from.
# 9. POSTER-L counts a 12.85M-parameter embedding head that never runs. Build
#    `pl.build_model("poster-l", ir_embedding_head=False)`: how many parameters does it have, and
#    which numbers of the paper's Tables 3 and 4 would change? Would the authors' whole-POSTER
#    checkpoints still load into it? *Hint:* FLOPs count only what runs, and
#    `pl.load_official_weights` refuses a file with keys the model has no place for (try it with
#    a checkpoint you save from the full model).
