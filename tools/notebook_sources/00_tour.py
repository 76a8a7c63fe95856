# %% [markdown]
# # 00 · Tour: reading emotions from faces with POSTER
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/poster-lite/poster-lite/blob/main/notebooks/00_tour.ipynb)
#
# > What facial expression recognition is, POSTER's idea in one picture, a trained model reading sample faces, and the map of the whole suite.
#
# This suite teaches **POSTER**, the Pyramid Cross-Fusion Transformer for facial expression
# recognition, by building it, training it and taking it apart. This first notebook is the
# overview: the task, the one idea that makes POSTER work, a small trained POSTER at work on
# faces it has never seen, and where each later notebook goes deeper. Everything runs on a
# laptop CPU on **SynthFER**, the suite's built-in set of drawn faces; the same code takes the
# real data sets and the paper-size model on a GPU.
#
# **Learning goals.** After this notebook you can
# 1. say what facial expression recognition (FER) predicts, from what, and why it is hard;
# 2. draw POSTER's data flow from memory: two backbones, two token streams, cross-fusion with
#    swapped queries, a pyramid of embedding sizes, one classifier;
# 3. load (or train) a small POSTER with one call and read its class probabilities on a face;
# 4. find the notebook that teaches each part, and run the suite locally or on Colab.
#
# Time: about one lab hour with the exercises. The small trained model ships with poster-lite,
# so it loads in seconds even on a fresh machine or Colab runtime; training it yourself
# (`retrain=True`, section 3) takes 2.2 minutes for its backbones on an idle 2-core machine and,
# with early stopping, 105 minutes for the model (28 epochs, on 2 cores shared with other work),
# as the README reports.

# %% tags=["parameters"]
# Parameters: papermill and `make tour` override these (tools/tour.py -p NAME=VALUE).
SMOKE = 0                # 1: the quickest run that still touches every cell (what the tests run)
DEVICE = "auto"          # "auto" (a GPU if there is one), "cpu" or "cuda"
DATA = "synthfer"        # the faces shown and scored: "synthfer" or a data set poster_lite.data knows
MODEL = "poster-nano"    # size knob: the trained model of section 3 ("poster-nano" trains on a CPU)

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
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

import poster_lite as pl
from poster_lite import lab_checks
from poster_lite.data.subset import Subset

# Seed, device ("auto": a GPU if there is one) and runs/00_tour/ for this notebook's figures and results.
device, ROOT, RUN_DIR = pl.notebook.setup("00_tour", DEVICE, seed=0)
print(f"SMOKE={SMOKE}")

# %% [markdown]
# ## 1 · Facial expression recognition
#
# A **facial expression recognition** model takes a picture of a face, already found and
# cropped, and names the expression on it. The usual label set, and the one POSTER uses for
# RAF-DB, is seven classes: six *basic emotions* (surprise, fear, disgust, happiness, sadness,
# anger) plus *neutral*; AffectNet adds *contempt* as an eighth. The model outputs one score
# (a *logit*) per class; a softmax turns them into probabilities, and the largest is the
# prediction.
#
# Three things make the task hard, and they are the reasons for POSTER's design:
#
# - **Small differences between classes.** Fear and surprise both raise the brows and open the
#   eyes and mouth; disgust and anger both lower the brows. The evidence sits in a few
#   millimetres around the eyes and mouth.
# - **Large differences within a class.** The same smile on different people, in different
#   light, at different head angles, half hidden by a hand, looks very different pixel by pixel.
# - **Scale.** Faces in the wild come at every resolution, and the evidence comes at every size,
#   from a wrinkle to the whole mouth. (POSTER's answer, the pyramid, works on embedding sizes,
#   not on image resolutions: notebook 04 explains the difference.)
#
# A face has a structure that helps with all three: the **68 facial landmarks** (corners of the
# eyes and mouth, brow line, jaw) say where the parts are and how they moved. POSTER's idea is
# to let an image network and a landmark network each look at the face, and make them *consult
# each other*. The package's label order is RAF-DB's:

# %%
classes = list(pl.data.CLASSES)
print("classes (index: name):", ", ".join(f"{i}: {c}" for i, c in enumerate(classes)))
print("AffectNet-8 adds:", pl.data.CLASSES_8[7])

# %% [markdown]
# ## 2 · POSTER in one picture
#
# Follow the diagram from left to right.
#
# 1. **Two backbones read the same face.** An **IR-50** (a face-recognition ResNet, trained to
#    tell people apart) produces a $14 \times 14$ feature map; a **MobileFaceNet** trained to
#    find the 68 landmarks, and kept **frozen**, produces a $7 \times 7$ map. Notebook 02.
# 2. **Both maps become 49 tokens**, plus one class token each (the mean of the stream's 49
#    tokens, notebook 04): 50 *image tokens* and 50 *landmark tokens* of the same size. The two
#    kinds of token are not alike. A landmark token is one cell of the $7 \times 7$ map: a place
#    on the face. An image token, in the layout of the authors' release, is a raw reshape of the
#    $14 \times 14$ map: a run of consecutive numbers of it, one or more channel maps' worth, and
#    every channel map covers the entire face, so an image token is not a place at all (the cell
#    below counts the channel maps per token; notebooks 02 and 03 show why this matters).
# 3. **Cross-fusion.** In each transformer block the two streams *swap their queries*: the
#    image tokens are reorganised by what the landmark stream asks, and the other way round.
#    Landmarks say *where to look*, the image says *what is there*. Notebook 03.
# 4. **The pyramid.** Every block runs cross-fusion at three embedding sizes at once (512, 256,
#    128 in the paper) and feeds the small levels back into the large one. The levels are the
#    same 100 tokens at narrower widths, not smaller images. Notebook 04.
# 5. **One classifier** reads the image class token (after a squeeze-and-excitation gate) and
#    outputs 7 logits.

# %%
def draw_poster(ax, config):
    """POSTER's data flow as boxes and arrows, labelled with the shapes of `config`."""
    box = dict(boxstyle="round,pad=0.03,rounding_size=0.12", linewidth=1.2)

    def node(x, y, w, h, text, fc, ec):
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, fc=fc, ec=ec, **box))
        ax.text(x, y, text, ha="center", va="center", fontsize=8.5)

    def arrow(x0, y0, x1, y1, colour="#333"):
        ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12,
                                     color=colour, lw=1.3))

    size, dims = config.input_size, config.pyramid_dims
    face, _ = pl.data.synthfer.draw_face({"AU12": 1.0, "AU6": 0.8}, identity=3, size=112)
    ax.imshow(face, extent=(-0.1, 1.3, 1.6, 3.0), zorder=2)
    ax.text(0.6, 1.45, f"face\n{size}×{size}×3", ha="center", va="top", fontsize=8)
    node(3.0, 3.5, 1.9, 0.8, "IR-50\n(face recognition)", "#deebf7", "#3182bd")
    node(3.0, 1.1, 1.9, 0.8, "MobileFaceNet\n(landmarks, frozen)", "#e5f5e0", "#31a354")
    arrow(1.35, 2.6, 2.05, 3.4)
    arrow(1.35, 2.0, 2.05, 1.2)
    node(5.5, 3.5, 1.9, 0.8, "50 image tokens\n(mean + 49 channel slabs)", "#deebf7", "#3182bd")
    node(5.5, 1.1, 1.9, 0.8, "50 landmark tokens\n(mean + 7×7 grid cells)", "#e5f5e0", "#31a354")
    arrow(3.95, 3.5, 4.55, 3.5)
    arrow(3.95, 1.1, 4.55, 1.1)
    # The pyramid: one cross-fusion per level, queries swapped between the streams.
    for k, d in enumerate(dims):
        y = 3.3 - 0.9 * k
        node(8.4, y, 2.2, 0.7, f"cross-fusion, d={d}", "#fde0dd", "#c51b8a")
        if k:
            arrow(9.6, y + 0.3, 9.6, y + 0.6, "#c51b8a")
    ax.text(8.4, 3.95, f"pyramid block × {config.depth}", ha="center", fontsize=9, weight="bold")
    ax.text(9.75, 2.35, "small levels\nadded back", fontsize=7, color="#c51b8a")
    arrow(6.45, 3.4, 7.3, 3.3)
    arrow(6.45, 1.2, 7.3, 3.2)
    ax.text(6.6, 2.25, "queries\nswap", fontsize=8, color="#c51b8a", ha="center")
    node(12.2, 3.3, 2.0, 0.7, "image class token\n→ SE gate", "#f2f0f7", "#756bb1")
    node(12.2, 1.9, 2.0, 0.7, f"classifier\n→ {config.num_classes} logits", "#f2f0f7", "#756bb1")
    arrow(9.5, 3.3, 11.2, 3.3)
    arrow(12.2, 2.95, 12.2, 2.25)
    ax.text(12.2, 1.25, "Surprise … Neutral", ha="center", fontsize=8)
    ax.set_xlim(-0.2, 13.4)
    ax.set_ylim(0.4, 4.3)
    ax.set_aspect("equal")
    ax.axis("off")


config = pl.make_config(MODEL)
fig, ax = plt.subplots(figsize=(12, 4.2), constrained_layout=True)
draw_poster(ax, config)
ax.set_title(f"POSTER ({MODEL}: input {config.input_size} px, {config.depth} pyramid blocks, "
             f"levels {tuple(config.pyramid_dims)})", fontsize=10)
fig.savefig(RUN_DIR / "poster_diagram.png", dpi=120)
plt.show()
for name in dict.fromkeys([MODEL, "poster-l"]):
    channels = pl.make_config(name).ir_widths[-1]          # IR-50's last stage: channels x 14 x 14
    per_token = channels * 14 * 14 // 49                   # the release's reshape: 49 tokens of this many numbers
    print(f"{name}: IR-50 gives {channels} x 14 x 14 = {channels * 196:,} numbers, reshaped into 49 image tokens "
          f"of {per_token}: {per_token / 196:.1f} channel maps' worth each, not a place on the face")
print(f"MobileFaceNet gives {config.landmark_channels} x 7 x 7: landmark token i is cell i of the 7 x 7 grid")

# %% [markdown]
# ## 3 · A trained POSTER on faces it has never seen
#
# `pl.trained_model(...)` returns a `poster-nano` trained on SynthFER's training split: its
# backbones pretrained (notebook 02), then trained with the paper's loss and optimiser (SAM
# around Adam, cross-entropy plus label-smoothed cross-entropy) but **not** the paper's recipe: a
# much larger learning rate and tens of epochs at most (early stopping ends the run) instead of hundreds, so that a CPU manages it
# (the cell prints what it used; notebook 05 explains both choices). poster-lite ships this
# model (`poster_lite/shipped/`, with a manifest of its recipe, data and test accuracy), so the
# call returns it in a second, even on a fresh Colab runtime. To train it yourself instead, with
# progress bars (until validation accuracy stops improving: 28 epochs, 105 minutes on a 2-core CPU
# shared with other work, as the README reports), call
# `pl.trained_model(MODEL, retrain=True)`: the result is cached under `data/cache/models/` and
# from then on every notebook loads yours.
# SynthFER's test split is made of **people the model never saw** in training, so its test
# accuracy is a fair measure of how well it reads expressions, not faces.

# %%
model = pl.trained_model(MODEL, smoke=bool(SMOKE), device=device)
print("trained on:", model.meta.get("classes"), "| channel order:", model.meta.get("channel_order"),
      "| best epoch:", model.meta.get("epoch"),
      f"of {model.meta['epochs_trained']} (stopped by {model.meta['stopped_by']})" if model.meta.get("stopped_by") else "")
if model.meta.get("source") == "shipped":     # poster_lite/shipped/manifest.json: how it was made and scored
    print(f"shipped with poster-lite, made {model.meta['date'][:10]} by {model.meta['command']}; manifest: test "
          f"accuracy {model.meta['metrics']['test_accuracy']:.1%} (SynthFER test split {model.meta['dataset']['fingerprint']})")
recipe = model.meta.get("recipe", {})
print(f"trained with Adam lr {recipe.get('lr')}, SAM {'on' if recipe.get('sam') else 'off'}, loss CE + "
      f"{recipe.get('smoothing_weight')} x LSCE(smoothing {recipe.get('smoothing')}); the release's RAF-DB recipe "
      "(docs/training.md): lr 4e-5, SAM, 300 epochs")

# %% [markdown]
# Its accuracy on the test split, scored here (in float32, so the number is the manifest's when
# the model is the shipped one):

# %%
# Imported here, not in the setup cell: it imports torchvision (seconds before the model above).
from poster_lite.data.transforms import eval_transform

test_set = pl.data.load(DATA, split="test")
if SMOKE:
    test_set = Subset(test_set, 64)
transform = eval_transform(model.config.input_size, model.meta["channel_order"])
scored = pl.data.load(DATA, split="test", transform=transform)
if SMOKE:
    scored = Subset(scored, 64)
results = pl.evaluate(pl.fast(model, device=device, precision="fp32"), scored)   # float32: the manifest's number
chance = 1 / len(results["classes"])
print(f"{MODEL} on {len(scored)} {DATA} test faces: accuracy {results['accuracy']:.1%}, "
      f"mean class accuracy {results['mean_class_accuracy']:.1%} (chance {chance:.1%})")
print(f"HEADLINE: {MODEL} test accuracy {results['accuracy']:.1%} on {DATA} ({len(scored)} unseen faces)")

# %% [markdown]
# Now one test face of each class, with the model's probability for every class. The title
# says the true class; the dark bar is the model's choice.

# %%
targets = np.asarray(test_set.targets)
picks = [int(np.flatnonzero(targets == k)[0]) for k in range(len(classes)) if (targets == k).any()]
faces = [np.asarray(test_set[i][0]) for i in picks]
predictions = pl.predict(faces, model=pl.fast(model, device=device), detect_faces=False)

fig, axes = plt.subplots(2, len(faces), figsize=(2.1 * len(faces), 4.6), constrained_layout=True,
                         gridspec_kw=dict(height_ratios=[1, 1.05]))
for column, (face, index, result) in enumerate(zip(faces, picks, predictions)):
    found = result["faces"][0]
    truth = classes[targets[index]]
    axes[0, column].imshow(face)
    axes[0, column].set_title(f"true: {truth}", fontsize=9)
    axes[0, column].axis("off")
    probabilities = [found["probabilities"][c] for c in classes]
    colours = ["#08519c" if c == found["label"] else "#9ecae1" for c in classes]
    axes[1, column].barh(classes, probabilities, color=colours)
    axes[1, column].invert_yaxis()
    axes[1, column].set_xlim(0, 1)
    axes[1, column].set_title(f"says: {found['label']} {found['probability']:.0%}", fontsize=9,
                              color="black" if found["label"] == truth else "#cb181d")
    if column:
        axes[1, column].set_yticklabels([])
fig.suptitle("One unseen test face per class and the model's probabilities (red title: a mistake)", fontsize=10)
fig.savefig(RUN_DIR / "sample_predictions.png", dpi=110)
plt.show()
right = sum(p["faces"][0]["label"] == classes[targets[i]] for p, i in zip(predictions, picks))
print(f"{right} of {len(picks)} faces read correctly")

# %% [markdown]
# SynthFER's classes overlap the way real ones do, because they share action units (muscle
# movements, notebook 01): surprise with fear, disgust with anger, sadness with neutral. The
# per-class accuracy on the whole test split shows which classes the model finds easy, and the
# line above the table names its most frequent confusion:

# %%
per_class = pd.Series(results["per_class_accuracy"], index=results["classes"], name="accuracy").mul(100).round(1)
confused = results["confusion_normalized"].copy()
np.fill_diagonal(confused, 0)
true_k, predicted_k = np.unravel_index(np.argmax(confused), confused.shape)
print(f"most frequent confusion: {results['classes'][true_k]} read as {results['classes'][predicted_k]} "
      f"({confused[true_k, predicted_k]:.0%} of the {results['classes'][true_k]} faces)")
per_class.to_frame("test accuracy (%)").T

# %% [markdown]
# ### Exercise 1 · From logits to a verdict
# The model outputs logits, not probabilities. Write `expression_verdict(logits, classes, k)`:
# given one face's logits (a 1-D tensor), return the `k` most probable classes as a list of
# `(name, probability)` pairs, most probable first. Compute the softmax yourself (subtract the
# largest logit first, so that `exp` cannot overflow), without `torch.softmax`.

# %% tags=["solution"]
def expression_verdict(logits, classes, k=3):
    """The k most probable classes of one face: [(name, probability), ...], most probable first."""
    shifted = logits.double() - logits.max()          # the same softmax, and exp() stays finite
    probabilities = shifted.exp() / shifted.exp().sum()
    order = torch.argsort(probabilities, descending=True)[:k]
    return [(classes[int(i)], float(probabilities[i])) for i in order]

# %% tags=["check"]
lab_checks.check_expression_verdict(expression_verdict)

# %% [markdown]
# With your function, the model's three best guesses for the first face above:

# %%
batch = torch.stack([transform(test_set[picks[0]][0])]).to(device)
with torch.no_grad():
    face_logits = model.to(device).eval()(batch)[0].float().cpu()
try:
    for name, p in expression_verdict(face_logits, classes, 3):
        print(f"{name:10s} {p:6.1%}")
except NotImplementedError:
    print("(finish exercise 1 to see the model's three best guesses here)")

# %% [markdown]
# The model above is small on purpose. The diagram of section 2 holds for every size: the
# paper's POSTER (`poster-l`) reads $224 \times 224$ faces with 8 pyramid blocks at sizes
# 512/256/128; the suite's `poster-nano` keeps every element but shrinks the widths so that a
# CPU can train it (the README gives the time). The numbers below are
# counted from the models themselves (notebook 04 reproduces the paper's tables).

# %%
rows = []
for name in ([MODEL] if SMOKE else dict.fromkeys([MODEL, "poster-nano", "poster-t", "poster-l"])):   # SMOKE: skip the big builds
    c = pl.make_config(name)
    params = sum(p.numel() for p in pl.build_model(name).parameters())
    rows.append({"preset": name, "input px": c.input_size, "pyramid blocks": c.depth,
                 "levels": str(tuple(c.pyramid_dims)), "parameters (M)": round(params / 1e6, 2)})
sizes = pd.DataFrame(rows).set_index("preset")
sizes

# %% [markdown]
# ## 4 · The map of the suite
#
# | notebook | what it teaches |
# |---|---|
# | **00 Tour** (this one) | the task, POSTER in one picture, a trained model on sample faces, setup |
# | **01 Data** | RAF-DB, AffectNet and FER2013 and why they are hard; SynthFER, its action units, identities, landmarks, splits and augmentation |
# | **02 Backbones** | IR-50 block by block, MobileFaceNet's depthwise separable convolutions, pretraining both, loading the official files, from feature maps to tokens |
# | **03 Cross-fusion** | attention from scratch, self- vs cross-attention, the query swap, the block built by hand and checked |
# | **04 Pyramid** | the embedding-axis pyramid, POSTER-T/S/L assembled, the paper's parameter and FLOP tables recomputed |
# | **05 Training** | the recipe (SAM, label smoothing, schedule, augmentation), training on CPU or GPU, curves, checkpoints |
# | **06 Evaluation** | accuracy and mean class accuracy, confusion matrices, attention maps, Grad-CAM, embeddings, mistakes |
# | **07 Ablations** | the paper's ablations (pyramid levels, swap depth, depth, image-only) at nano scale, beside the paper's numbers |
# | **08 Your data** | real data set layouts and checks, the authors' checkpoints and the BGR detail, predicting on your own photos |
# | **09 POSTER V2** | POSTER's successor: window cross-attention and multi-scale tokens built by hand, V1 against V2 at nano scale with one recipe |
#
# Notebooks 01 to 04 build the model, 05 to 07 train and study it, 08 takes it to real data,
# 09 to its successor.
# Each has the same opening (a `parameters` cell with `SMOKE`, `DEVICE`, `DATA` and a size
# knob), exercises with self-checks, and a summary.
#
# ## 5 · Setup
#
# **Locally** (Linux or macOS, Python 3.10 or newer), from a clone of the repository:
#
# ```bash
# make lab        # creates .venv, installs poster-lite and opens Jupyter Lab on notebooks/
# make test       # the tests, including every notebook in SMOKE mode
# make tour       # runs every notebook headless and writes HTML to runs/tour/
# ```
#
# **On Colab**, open a notebook with its badge and run the setup cell: it installs the package
# from GitHub (the only cell of the suite that downloads anything). Choose *Runtime → Change
# runtime type → GPU* to train the paper-size models. SynthFER is generated on first use (with a
# progress bar), and nothing else is downloaded; real data sets are yours to upload (see 01 and 08).
#
# **Parameters.** Every notebook starts with the same knobs, which you may edit in place or set
# from the command line (`python tools/tour.py 00 -p SMOKE=1`):

# %%
params = pd.DataFrame([
    ("SMOKE", SMOKE, "1: tiny data and a few steps, the quickest run through every cell (what the tests run)"),
    ("DEVICE", DEVICE, '"auto" picks a GPU when there is one'),
    ("DATA", DATA, '"synthfer" (built in) or a real data set: "raf-db", "affectnet-7", "fer2013", "folder"'),
    ("MODEL", MODEL, '"poster-nano" for a CPU; "poster-t", "poster-s", "poster-l" on a GPU'),
], columns=["parameter", "value now", "meaning"]).set_index("parameter")
print("this machine:", "a GPU" if torch.cuda.is_available() else "CPU only", f"({torch.get_num_threads()} threads)")
params

# %% [markdown]
# ## Summary
#
# - Facial expression recognition names the expression on a cropped face: 7 classes for RAF-DB
#   (8 for AffectNet). The classes differ by small movements around the eyes and mouth, while
#   faces of one class differ a lot.
# - POSTER reads each face twice, with an IR-50 (appearance) and a frozen MobileFaceNet
#   (landmarks); turns both maps into 50 tokens; fuses them with cross-attention in which the
#   streams swap queries; does so at three embedding sizes (the pyramid); and classifies the
#   image class token.
# - `pl.trained_model("poster-nano")` gives a trained model in one line; its test accuracy on
#   unseen SynthFER people is the headline printed in section 3.
# - The suite: 01 data, 02 backbones, 03 cross-fusion, 04 pyramid, 05 training, 06 evaluation,
#   07 ablations, 08 your own data and the official weights, 09 POSTER V2.
#
# ## Exercises
#
# 1. *(code, checked by `lab_checks` above)* `expression_verdict`: softmax by hand and the
#    top-k classes.
# 2. Find a test face the model gets wrong (`results["predictions"] != results["targets"]`) and
#    show it with its probability bars. Is the runner-up class the true one? *Hint:*
#    `results["probabilities"]` holds every face's seven probabilities in the order of
#    `results["classes"]`.
# 3. Draw a face with `pl.data.synthfer.draw_face({"AU1": 1, "AU2": 1, "AU5": 1, "AU26": 1})`
#    (raised brows, wide eyes, dropped jaw) and ask the model. Then remove `AU26`. Which class
#    gains, and why might that be? *Hint:* notebook 01 lists the action units of each class;
#    look for the classes that share brow and eye movements.
# 4. *(open)* In the diagram, which arrows carry gradients during training, and which do not?
#    *Hint:* one backbone is frozen, and the class token is a mean, not a parameter.
# 5. *(open)* The diagram calls the image tokens "channel slabs". Why can a transformer still
#    use them, although no image token is a place on the face? *Hint:* attention compares
#    tokens by content; ask what a position would add, and where POSTER adds one (notebook 04).
# 6. Run this notebook with `-p SMOKE=1` and compare the headline with the default run. What
#    does the gap tell you about how many images the small model needs? *Hint:* the SMOKE model
#    saw a few dozen faces once.
