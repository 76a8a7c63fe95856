# %% [markdown]
# # 02 · Backbones: IR-50, MobileFaceNet and the way to tokens
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/poster-lite/poster-lite/blob/main/notebooks/02_backbones.ipynb)
#
# > IR-50 block by block, MobileFaceNet's depthwise separable convolutions, both backbones pretrained on SynthFER (or loaded from the official files), and how their feature maps become tokens.
#
# POSTER does not look at pixels directly. Two convolutional networks read the face first: an
# **IR-50**, trained for face recognition, describes *what the face looks like*; a
# **MobileFaceNet**, trained to find the 68 landmarks and then frozen, describes *where its
# parts are*. Their last feature maps become the two token streams that notebook 03 fuses.
# This notebook opens both networks, pretrains them on SynthFER the way the authors' backbones
# were trained on real faces, loads files in the authors' layout, and follows a feature map into
# tokens.
#
# **Learning goals.** After this notebook you can
# 1. trace a face through IR-50's stem and stages and give every shape (and say why the stride
#    sits where it does);
# 2. count the parameters of a depthwise separable convolution and explain why MobileFaceNet is
#    built from them;
# 3. pretrain both backbones on SynthFER (identities for the IR-50, landmarks for the
#    MobileFaceNet) and judge the results by identity accuracy and normalised mean error;
# 4. load the authors' `ir50.pth` and `mobilefacenet_model_best.pth.tar` and read the report;
# 5. explain what the release's reshape of the $14 \times 14$ map into 49 tokens does, and how
#    a spatial (space-to-depth) reading differs.
#
# Time: about one lab hour. The first run pretrains both backbones (a few minutes on a CPU) and
# caches them; later runs load them.

# %% tags=["parameters"]
# Parameters: papermill and `make tour` override these (tools/tour.py -p NAME=VALUE).
SMOKE = 0                # 1: the quickest run that still touches every cell (what the tests run)
DEVICE = "auto"          # "auto" (a GPU if there is one), "cpu" or "cuda"
DATA = "synthfer"        # faces for the pictures; pretraining always uses SynthFER (it needs identities and landmarks)
MODEL = "poster-nano"    # size knob: whose backbones are pretrained and shown ("poster-l": the paper's, on a GPU)
PAPER_SHAPES = True      # also trace the paper-size IR-50 (builds poster-l once; skipped in SMOKE)
PRETRAIN_EPOCHS = 2      # epochs of each backbone's pretraining when nothing is cached (SMOKE: 1, on 32 images)

# %%
# Setup. On Colab this installs poster-lite (the only cell that downloads anything);
# locally, `make lab` has already installed it into the project's .venv.
import sys

if "google.colab" in sys.modules:
    import subprocess
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "git+https://github.com/poster-lite/poster-lite"], check=True)


import pandas as pd
import torch
from torch import nn

import poster_lite as pl
from poster_lite import pretrain
from poster_lite.data.transforms import eval_transform
from poster_lite.checkpoint import atomic_write
from poster_lite.models.official import to_release_state_dict

# Seed, device ("auto": a GPU if there is one) and runs/02_backbones/ for this notebook's figures and results.
device, ROOT, RUN_DIR = pl.notebook.setup("02_backbones", DEVICE, seed=0)
print(f"SMOKE={SMOKE}")


def n_params(module):
    return sum(p.numel() for p in module.parameters())

# %% [markdown]
# ## 1 · IR-50, block by block
#
# IR-50 is the 50-layer ResNet of ArcFace, the face-recognition network. Its building block is
# the **IR unit** ("improved residual"):
#
# $$y = \mathrm{BN}\big(\mathrm{conv}_{3\times3,\ s}(\mathrm{PReLU}(\mathrm{conv}_{3\times3}(\mathrm{BN}(x))))\big) + \mathrm{shortcut}(x)$$
#
# The stride $s$ is 2 in the first unit of every stage, which halves the map; the shortcut then
# subsamples too (a strided $1\times1$ convolution when the width changes, plain subsampling
# when it does not). POSTER keeps only the stem and the first **three** stages: for a
# $112 \times 112$ face that is $112 \to 56 \to 28 \to 14$, ending in a $256 \times 14 \times 14$ map
# in the paper's model. (The full IR-50 has a fourth stage and an embedding head; they are
# needed to pretrain it for face recognition, and dropped afterwards.)
#
# We step a face through `model.image_backbone` one stage at a time and record the shapes:

# %%
model = pl.build_model(MODEL).eval()
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
    return pd.DataFrame(rows).set_index("layer"), x


size = model.config.backbone_size
table, fmap = trace_ir(backbone, size)
print(f"{MODEL}: the image backbone reads {size} x {size} faces "
      f"(the model's {model.config.input_size} px input is resized to it)")
assert fmap.shape[-2:] == (14, 14), fmap.shape
table

# %% [markdown]
# Inside one unit, with forward hooks on its layers (the first unit of stage 2, which halves the
# map and widens the channels):

# %%
unit = backbone.stages[1].units[0]
seen = []
hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: seen.append((name, type(mod).__name__, tuple(out.shape))))
         for name, m in unit.named_children()]
with torch.no_grad():
    x_in = backbone.stages[0](backbone.stem(torch.randn(1, 3, size, size)))
    unit(x_in)
for h in hooks:
    h.remove()
print("input", tuple(x_in.shape))
pd.DataFrame(seen, columns=["part", "layer", "output shape"]).set_index("part")

# %% [markdown]
# The paper's IR-50 (in `poster-l`, and the same in POSTER-T and POSTER-S) has 3, 4 and 14 units
# in its three stages, widths 64, 128 and 256. Its trace, for comparison (built once, a few
# seconds):

# %%
if PAPER_SHAPES and not SMOKE:
    paper = pl.build_model("poster-l").eval()
    paper_table, paper_map = trace_ir(paper.image_backbone, paper.config.backbone_size)
    assert tuple(paper_map.shape) == (1, 256, 14, 14)
    print(f"poster-l image backbone: {n_params(paper.image_backbone) / 1e6:.2f} M parameters; "
          f"landmark backbone: {n_params(paper.landmark_backbone) / 1e6:.2f} M")
    display(paper_table)
    del paper
else:
    print("skipped (SMOKE, or PAPER_SHAPES=False)")

# %% [markdown]
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
# For $k = 3$ and 128 channels that is $147{,}456$ weights against $1{,}152 + 16{,}384 = 17{,}536$,
# about 8 times fewer, and the multiply-adds shrink by the same factor. MobileFaceNet's unit is
# the inverted residual of MobileNetV2: $1\times1$ *expand*, $3\times3$ *depthwise*, $1\times1$
# *project* without activation, plus the input when the shapes allow.

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
# ### Exercise 1 · A depthwise separable convolution
# Write `DepthwiseSeparable2d(in_ch, out_ch, stride)`: a $3 \times 3$ depthwise convolution (with
# `stride`, padding 1, no bias), then a $1 \times 1$ pointwise convolution to `out_ch` (no bias).
# The check compares the output shape and the parameter count with the formula
# $9\,C_\text{in} + C_\text{in} C_\text{out}$, and makes sure that the depthwise step really keeps the
# channels apart.

# %% tags=["solution"]
class DepthwiseSeparable2d(nn.Module):
    """3x3 depthwise conv (stride, padding 1) then 1x1 pointwise conv; no biases."""

    def __init__(self, in_ch, out_ch, stride=1):
        super().__init__()
        self.depthwise = nn.Conv2d(in_ch, in_ch, 3, stride, 1, groups=in_ch, bias=False)
        self.pointwise = nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))

# %% tags=["check"]
def check_depthwise_separable(cls):
    """Shapes, parameter count, and that the first step is depthwise (one filter per channel)."""
    try:
        for in_ch, out_ch, stride in [(16, 32, 1), (32, 64, 2), (64, 64, 1)]:
            layer = cls(in_ch, out_ch, stride)
            out = layer(torch.randn(2, in_ch, 28, 28))
            side = 28 // stride
            assert tuple(out.shape) == (2, out_ch, side, side), \
                f"({in_ch}, {out_ch}, stride {stride}): output {tuple(out.shape)}, expected {(2, out_ch, side, side)}"
            count = sum(p.numel() for p in layer.parameters())
            assert count == 9 * in_ch + in_ch * out_ch, \
                f"({in_ch}, {out_ch}): {count} parameters, expected 9*{in_ch} + {in_ch}*{out_ch} = {9 * in_ch + in_ch * out_ch}"
            convs = [m for m in layer.modules() if isinstance(m, nn.Conv2d)]
            assert any(m.groups == in_ch and m.kernel_size == (3, 3) for m in convs), "no 3x3 conv with groups=in_ch"
    except NotImplementedError:
        print("⏳ DepthwiseSeparable2d: not implemented yet. Fill in the exercise cell and run it again.")
        return False
    except AssertionError as e:
        print(f"❌ DepthwiseSeparable2d: {e}")
        return False
    print("✅ DepthwiseSeparable2d: correct shapes and parameter counts.")
    return True


check_depthwise_separable(DepthwiseSeparable2d)

# %% [markdown]
# The whole MobileFaceNet of the model, stage by stage. It halves the map four times
# ($112 \to 56 \to 28 \to 14 \to 7$), and its `features` layer (the release's `conv_6_sep`) gives
# the $7 \times 7$ map that POSTER reads as 49 landmark tokens. The landmark head after it, which
# turns the map into 136 numbers (68 points × (x, y)), is what the network was pretrained for;
# POSTER never uses its output.

# %%
landmark_net = model.landmark_backbone
rows, x = [], torch.randn(1, 3, size, size)
with torch.no_grad():
    x = landmark_net.stem_dw(landmark_net.stem(x))
    rows.append(("stem: conv3x3 s2 + depthwise 3x3", tuple(x.shape), n_params(landmark_net.stem) + n_params(landmark_net.stem_dw)))
    for k, stage in enumerate(landmark_net.stages):
        x = stage(x)
        rows.append((f"stage {k + 1}: 1 strided + {len(stage.blocks)} residual units", tuple(x.shape), n_params(stage)))
    x = landmark_net.features(x)
    rows.append(("features (conv_6_sep, 1x1)", tuple(x.shape), n_params(landmark_net.features)))
    points = landmark_net.landmarks(x)
    rows.append(("landmark head (unused by POSTER)", tuple(points.shape), n_params(landmark_net.landmark_head)))
separable_share = sum(m.weight.numel() for m in landmark_net.modules()
                      if isinstance(m, nn.Conv2d) and m.groups > 1) / n_params(landmark_net)
print(f"{MODEL} MobileFaceNet: {n_params(landmark_net):,} parameters, of which depthwise filters "
      f"{separable_share:.1%}; frozen in POSTER: {not any(p.requires_grad for p in landmark_net.parameters())}")
assert x.shape[-2:] == (7, 7) and points.shape[-1] == 136
pd.DataFrame(rows, columns=["layer", "output shape", "parameters"]).set_index("layer")

# %% [markdown]
# ## 3 · Pretraining both backbones on SynthFER
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
    # each keep this under a lab's patience on a CPU; exercise 5 trains longer).
    print("cached" if (backbone_folder / "report.json").exists() else "pretraining now:", backbone_folder)
    reports = pretrain.ensure_pretrained_backbones(MODEL, epochs=PRETRAIN_EPOCHS, device=device)
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
# ## 4 · Landmarks on faces the network has never seen
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
# ## 5 · Loading the official files
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
# The IR-50 report lists the stage-4 and head keys as *unused*: POSTER keeps three stages, so
# they have no place in it, and the loader says so instead of failing. A file that does not fit
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
# ## 6 · From feature maps to tokens
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
# keeps it by default (`image_tokens="official"`) and offers `"spatial"` as an option (notebook
# 06 compares the attention maps). Where token 25 comes from in each reading:

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
# ### Exercise 2 · Space-to-depth tokens
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
# the transformer's width, and the class token is prepended: 50 image tokens, ready for
# notebook 03.

# %%
with torch.no_grad():
    batch = eval_transform(model.config.input_size)(face)[None]
    img_tokens, lm_tokens = model.image_tokens(batch), model.landmark_tokens(batch)
print(f"image tokens {tuple(img_tokens.shape)} (after image_proj {model.image_proj}), "
      f"landmark tokens {tuple(lm_tokens.shape)}")
assert img_tokens.shape[1] == lm_tokens.shape[1] == 49 and img_tokens.shape[2] == lm_tokens.shape[2]

# %% [markdown]
# ## Summary
#
# - POSTER's **IR-50** keeps the stem and three stages of ArcFace's network: IR units
#   (BN, conv, PReLU, strided conv, BN, plus a shortcut), halving the map at each stage's first
#   unit, $112 \to 14$ with 256 channels in the paper.
# - **MobileFaceNet** is built from depthwise separable units (expand, depthwise, project); a
#   separable $3 \times 3$ convolution needs about 8 times fewer weights than a plain one at 128
#   channels. It halves the map four times to $7 \times 7$ and stays frozen in POSTER.
# - Both backbones are **pretrained** for other tasks: identities for the IR-50, landmarks for
#   MobileFaceNet. On SynthFER, `pl.pretrain_backbones` does both and writes files in the
#   authors' layouts; the numbers reached are printed in section 3.
# - `pl.load_official_weights` loads `ir50.pth` and `mobilefacenet_model_best.pth.tar` strictly,
#   reporting the IR-50's unused stage-4 keys and refusing files that do not fit.
# - The landmark map becomes 49 tokens cell by cell. The image map becomes 49 tokens by the
#   release's raw reshape, which makes each token a few channel maps rather than a place;
#   space-to-depth is the spatial alternative with the same shapes.
#
# Next: notebook 03 fuses the two token streams.
#
# ## Exercises
#
# 1. *(code, checked above)* `DepthwiseSeparable2d` and its parameter count.
# 2. *(code, checked above)* `spatial_tokens`: space-to-depth with `reshape` and `permute`.
# 3. Count the multiply-adds of a plain and a separable $3\times3$ convolution on a
#    $128 \times 14 \times 14$ map with `torch.utils.flop_counter.FlopCounterMode`. Is the ratio the
#    same as for the parameters? Why?
# 4. The paper's image map has $C = 256$ channels. How many channels does the release's reshape
#    put into each token, and does any token start in the middle of a channel map? Check with
#    `pl.viz.official_token_channels`.
# 5. Pretrain only the landmark net for more epochs:
#    `pretrain.pretrain_landmark_backbone(MODEL, epochs=8, out_dir=RUN_DIR / "longer")`. How far
#    does the NME fall? Which face part improves most?
# 6. Why is the landmark network frozen in POSTER? What could go wrong if the expression loss were
#    allowed to change it?
