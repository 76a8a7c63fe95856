# %% [markdown]
# # 01 · Data: real expression data sets and SynthFER
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/poster-lite/poster-lite/blob/main/notebooks/01_data.ipynb)
#
# > RAF-DB, AffectNet and FER2013 and why they are hard; SynthFER with its face designer, action units, identities and 68 landmarks; identity-disjoint splits, class balance, the release's augmentation and its BGR detail.
#
# A model is only as good as what it learns from. POSTER was trained and tested on RAF-DB and
# AffectNet: photographs of real people, labelled by crowds, skewed towards happy faces. Those
# sets are licensed and large, so this suite ships **SynthFER**: procedurally drawn faces whose
# expressions are built from the same facial muscle movements psychologists code, with the
# ground truth that real sets lack (who the person is, where the 68 landmarks are, which
# muscles moved). This notebook looks at both, and at the pipeline that turns a face into a
# tensor.
#
# **Learning goals.** After this notebook you can
# 1. describe RAF-DB, AffectNet and FER2013, their folder layouts, and why accuracy alone
#    misleads on them (class imbalance, ambiguous labels);
# 2. check a data folder with `poster-lite data check` and read its report;
# 3. explain how SynthFER makes an expression from action units, and design a face with them;
# 4. say why train, validation and test must hold **different people**, and verify it;
# 5. apply the release's augmentation and name the one channel-order detail that silently
#    breaks the published RAF-DB weights.
#
# Time: about one lab hour. Runs on a laptop CPU in a minute or two (the first run also
# generates SynthFER, about a minute).

# %% tags=["parameters"]
# Parameters: papermill and `make tour` override these (tools/tour.py -p NAME=VALUE).
SMOKE = 0                # 1: the quickest run that still touches every cell (what the tests run)
DEVICE = "auto"          # "auto" (a GPU if there is one), "cpu" or "cuda"; nothing here needs one
DATA = "synthfer"        # the set whose splits and classes section 6 counts: "synthfer", "raf-db", ...
SAMPLES = 8              # size knob: faces per row in the galleries (SMOKE: 4)

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

import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import poster_lite as pl
from poster_lite import lab_checks
from poster_lite.data import CLASSES
from poster_lite.data.labels import RAF_DB_COUNTS
from poster_lite.data.synthfer import ACTION_UNITS, AU_DESCRIPTIONS, draw_face
from poster_lite.data.transforms import denormalize, eval_transform, train_transform

# Seed, device ("auto": a GPU if there is one) and runs/01_data/ for this notebook's figures and results.
device, ROOT, RUN_DIR = pl.notebook.setup("01_data", DEVICE, seed=0)
N = 4 if SMOKE else SAMPLES
print(f"SMOKE={SMOKE}")

# %% [markdown]
# ## 1 · Three real data sets, and why they are hard
#
# | | RAF-DB (basic) | AffectNet | FER2013 |
# |---|---|---|---|
# | images | 15,339 aligned faces (12,271 train / 3,068 test) | about a million from web searches, roughly 440k labelled by hand | 35,887 |
# | size | 100 × 100 colour | varied, colour | 48 × 48 greyscale |
# | classes | 7 | 7 or 8 (+ contempt) | 7 |
# | labels | about 40 crowd annotators per image, majority vote | one expert annotator per image | one label per image |
# | test | 3,068 images | the validation set: 500 per class (3,500 / 3,999 images) | 3,589 (private test) |
# | POSTER | 92.05 % (mean class accuracy 86.03 %) | 67.31 % (7 classes), 63.34 % (8) | — |
#
# (Figures from each data set's publication, and POSTER's from its paper.)
#
# Two properties make these sets hard, and they explain numbers you will meet in every later
# notebook.
#
# **Class imbalance.** Faces on the web smile. RAF-DB's training split is almost 40 % happy and
# 2 % fearful; its test split is skewed the same way. A model that says "happy" to everything
# is right on 38.6 % of RAF-DB's test images without looking at one (the cell below computes
# it from the per-class counts). That is why the paper
# reports **mean class accuracy** (the average of the seven per-class accuracies, where the
# always-happy model scores 1/7 = 14.3 %) beside plain accuracy. RAF-DB's real per-class counts:

# %%
raf = pd.DataFrame(RAF_DB_COUNTS, index=CLASSES)
raf["train share"] = raf["train"] / raf["train"].sum()
raf["test share"] = raf["test"] / raf["test"].sum()
always_happy = raf.loc["Happiness", "test"] / raf["test"].sum()
print(f"RAF-DB: {raf['train'].sum():,} train and {raf['test'].sum():,} test images")
print(f"always answering 'Happiness': accuracy {always_happy:.1%}, mean class accuracy {1 / len(CLASSES):.1%}")

fig, ax = plt.subplots(figsize=(8, 3.2), constrained_layout=True)
order = raf.sort_values("train", ascending=False).index
ax.bar(order, raf.loc[order, "train"], color="#6baed6", label="train")
ax.bar(order, raf.loc[order, "test"], color="#08519c", label="test")
for k, name in enumerate(order):
    ax.text(k, raf.loc[name, "train"] + 60, f"{raf.loc[name, 'train share']:.1%}", ha="center", fontsize=8)
ax.set_ylabel("images")
ax.set_title("RAF-DB basic: images per class (share of the training split above each bar)")
ax.legend()
fig.savefig(RUN_DIR / "raf_db_imbalance.png", dpi=120)
plt.show()
raf.style.format({"train share": "{:.1%}", "test share": "{:.1%}"})

# %% [markdown]
# **Ambiguous labels.** An expression is not a category the face is *in*; it is a mixture of
# muscle movements that people name differently. Fear and surprise share raised brows, wide
# eyes and an open mouth; disgust and anger share lowered brows. RAF-DB asks about 40 people
# per image for this reason, and even then many images get split votes; FER2013's single labels
# are noisier still (its authors, Goodfellow et al. 2013, report human accuracy of roughly 65 %).
# A "wrong" prediction on
# such an image may be a defensible reading of it.
#
# SynthFER lets us *see* the ambiguity, because we control the muscles. Below, one person's
# face moves step by step from a prototypical surprise to a prototypical fear, by blending the
# action units (section 3 explains them) of the two. Where would you draw the line?

# %%
SURPRISE = {"AU1": 1.0, "AU2": 0.9, "AU5": 0.8, "AU25": 0.8, "AU26": 0.9}
FEAR = {"AU1": 0.9, "AU2": 0.5, "AU4": 0.6, "AU5": 0.9, "AU20": 0.9, "AU25": 0.8, "AU26": 0.4}


def blend(a, b, t):
    """Action units (1 - t) * a + t * b, unit by unit."""
    return {au: (1 - t) * a.get(au, 0.0) + t * b.get(au, 0.0) for au in set(a) | set(b)}


steps = np.linspace(0, 1, 5 if SMOKE else 7)
fig, axes = plt.subplots(1, len(steps), figsize=(1.9 * len(steps), 2.3), constrained_layout=True)
for ax, t in zip(axes, steps):
    image, _ = draw_face(blend(SURPRISE, FEAR, t), identity=7)
    ax.imshow(image)
    ax.set_title(f"{1 - t:.0%} surprise\n{t:.0%} fear", fontsize=8)
    ax.axis("off")
fig.suptitle("From surprise to fear: the same muscles, in different proportions", fontsize=10)
fig.savefig(RUN_DIR / "surprise_to_fear.png", dpi=120)
plt.show()

# %% [markdown]
# ## 2 · Folder layouts and `poster-lite data check`
#
# The loaders read each set in the layout its authors (and POSTER's release) use. Put your
# copy under `data/` (they are licensed, so nothing downloads them):
#
# ```text
# data/raf-basic/                                   RAF-DB basic        -> load("raf-db")
#     EmoLabel/list_patition_label.txt              lines "train_00001.jpg 5" (1..7 in CLASSES order)
#     Image/aligned/train_00001_aligned.jpg
# data/affectnet/                                   AffectNet           -> load("affectnet-7") / ("affectnet-8")
#     train_set/images/<id>.jpg   train_set/train_annotations_7class.txt   ("<id>.jpg <label>")
#     valid_set/images/<id>.jpg   valid_set/valid_annotations_7class.txt   (8class for 8 classes)
# data/fer2013/fer2013.csv                          FER2013 (Kaggle)    -> load("fer2013")
#     columns emotion, pixels, Usage (Training / PublicTest / PrivateTest)
# some/folder/{train,val,test}/<class name>/*.jpg   any labelled folder -> load("folder", root=...)
# ```
#
# Every set's own label numbering is translated on reading, so a label is always an index
# into `CLASSES` (AffectNet counts 0 Neutral, 1 Happy, ...; FER2013 0 Angry, 1 Disgust, ...).
# Before training on a folder, check it: `poster-lite data check PATH` detects the layout,
# counts images per split and class, and lists every problem with the file it concerns.
# SynthFER is written in RAF-DB's layout, so the check reads it as RAF-DB:

# %%
synth_train = pl.data.load("synthfer", split="train")     # generates data/synthfer on the first call
synth_root = Path(synth_train.root)


def data_check(path, *flags):
    """Run `poster-lite data check` as a user would in a terminal; show its report."""
    command = [sys.executable, "-m", "poster_lite.cli", "data", "check", str(path), *flags]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    print(f"$ poster-lite data check {Path(path).name} {' '.join(flags)}   (exit code {done.returncode})")
    # stderr carries the progress bar; keep only its real messages
    messages = [line for line in done.stderr.splitlines() if line.strip() and "\r" not in line and "%|" not in line]
    print("\n".join([done.stdout.strip(), *messages]).strip())
    return done.returncode


assert data_check(synth_root, "--quick") == 0

# %% [markdown]
# And a broken copy of RAF-DB, the way real downloads break: one listed image is missing and
# another is a truncated file. The check names both and exits with code 2, which is what a
# script should test before a long training run.

# %%
broken = RUN_DIR / "broken_raf"
(broken / "EmoLabel").mkdir(parents=True, exist_ok=True)
(broken / "Image" / "aligned").mkdir(parents=True, exist_ok=True)
for k in range(3):
    synth_train[k][0].save(broken / "Image" / "aligned" / f"train_{k + 1:05d}_aligned.jpg")
(broken / "Image" / "aligned" / "test_00001_aligned.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
(broken / "EmoLabel" / "list_patition_label.txt").write_text(
    "train_00001.jpg 4\ntrain_00002.jpg 1\ntrain_00003.jpg 7\ntrain_00004.jpg 5\ntest_00001.jpg 2\n")
exit_code = data_check(broken)
assert exit_code == 2, "a broken folder should make the check fail"

# %% [markdown]
# ## 3 · SynthFER: expressions made of action units
#
# Psychologists describe expressions with the **Facial Action Coding System** (FACS): each
# *action unit* (AU) is one visible muscle movement, such as AU12 *lip corner puller* (the smile)
# or AU4 *brow lowerer* (the frown). An expression is a combination: happiness is AU6 + AU12,
# surprise AU1 + AU2 + AU5 + AU26. SynthFER draws faces from exactly this description: each
# AU moves some of the 68 landmarks by a set amount at intensity 1, the face is rendered around
# the moved landmarks, and each class is a typical AU combination at a random strength, with
# some leakage from the classes it is confused with. SynthFER's action units (all of them):

# %%
pd.DataFrame({"action unit": ACTION_UNITS, "movement": [AU_DESCRIPTIONS[a] for a in ACTION_UNITS]}).set_index("action unit").T

# %% [markdown]
# Each AU alone, at intensity 1.2, on the same person; the neutral face first. Look at which
# part of the face each one moves: most of them act around the eyes and the mouth, which is why
# a model must see those regions sharply.

# %%
shown_units = ACTION_UNITS[:5] if SMOKE else ACTION_UNITS
panels = ["neutral", *shown_units]
cols = 8
rows_ = int(np.ceil(len(panels) / cols))
fig, axes = plt.subplots(rows_, cols, figsize=(1.7 * cols, 1.95 * rows_), constrained_layout=True)
for ax in axes.flat:
    ax.axis("off")
for ax, name in zip(axes.flat, panels):
    image, _ = draw_face(None if name == "neutral" else {name: 1.2}, identity=11)
    ax.imshow(image)
    ax.set_title(name if name == "neutral" else f"{name}\n{AU_DESCRIPTIONS[name]}", fontsize=7)
fig.savefig(RUN_DIR / "action_units.png", dpi=120)
plt.show()

# %% [markdown]
# **The face designer.** Move the sliders to build an expression from action units, change the
# person and the head pose, and watch the landmarks follow. (In a static rendering of this
# notebook you see the picture for the sliders' starting values: here a smile, AU6 + AU12.)

# %%
designer = pl.widgets.FaceDesigner()
designer.controls["AU12"].value = 1.0
designer.controls["AU6"].value = 0.8
designer.save(RUN_DIR / "face_designer.png")
designer

# %% [markdown]
# ## 4 · Identities: the same expression on different people
#
# Every SynthFER face belongs to one of a few hundred people (section 6 counts them per split),
# each with their own face shape,
# proportions, skin tone, hair, glasses or beard, and *resting face* (some people look a little
# sad or cross when relaxed, as in life). The top row is one expression, happiness, on different
# people; the bottom row is one person making all seven. The model must learn the top row's
# common factor and ignore everything else that differs.

# %%
EXPRESSION_AUS = {"Surprise": SURPRISE, "Fear": FEAR,
                  "Disgust": {"AU9": 0.9, "AU10": 0.8, "AU4": 0.4, "AU15": 0.5, "AU17": 0.5},
                  "Happiness": {"AU6": 0.8, "AU12": 1.0, "AU25": 0.6},
                  "Sadness": {"AU1": 0.9, "AU4": 0.5, "AU15": 0.9, "AU17": 0.5},
                  "Anger": {"AU4": 1.0, "AU5": 0.5, "AU7": 0.8, "AU23": 0.8},
                  "Neutral": {}}
people = [3, 17, 42, 64, 101, 150, 188]
fig, axes = plt.subplots(2, 7, figsize=(13, 4.4), constrained_layout=True)
for ax in axes.flat:
    ax.axis("off")
for ax, who in zip(axes[0], people):
    ax.imshow(draw_face(EXPRESSION_AUS["Happiness"], identity=who)[0])
    ax.set_title(f"person {who}: Happiness", fontsize=8)
for ax, name in zip(axes[1], CLASSES):
    ax.imshow(draw_face(EXPRESSION_AUS[name], identity=42)[0])
    ax.set_title(f"person 42: {name}", fontsize=8)
fig.savefig(RUN_DIR / "identities.png", dpi=120)
plt.show()

# %% [markdown]
# ## 5 · The 68 landmarks
#
# The standard (iBUG) 68-point scheme marks the jaw line (points 0-16), the brows (17-26), the
# nose (27-35), the eyes (36-47) and the mouth (48-67). POSTER's landmark backbone was trained
# to find exactly these points (notebook 02), and SynthFER stores them for every image in
# pixels of the stored image: `ds.landmarks` is N × 68 × 2. Drawn on training faces, one colour
# per part:

# %%
PARTS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36),
         "eyes": range(36, 48), "mouth": range(48, 68)}
COLOURS = {"jaw": "#fdae6b", "brows": "#e6550d", "nose": "#31a354", "eyes": "#3182bd", "mouth": "#de2d26"}
print("landmarks array:", synth_train.landmarks.shape, synth_train.landmarks.dtype)
fig, axes = plt.subplots(1, N, figsize=(2.3 * N, 2.6), constrained_layout=True)
for ax, index in zip(axes, range(N)):
    image, label = synth_train[index]
    points = synth_train.landmarks[index]
    ax.imshow(image)
    for part, idx in PARTS.items():
        ax.scatter(points[list(idx), 0], points[list(idx), 1], s=7, color=COLOURS[part], label=part)
    ax.set_title(CLASSES[label], fontsize=9)
    ax.axis("off")
axes[0].annotate("36", synth_train.landmarks[0][36], color="white", fontsize=7, xytext=(-12, -6),
                 textcoords="offset points")
axes[0].annotate("45", synth_train.landmarks[0][45], color="white", fontsize=7, xytext=(3, -6),
                 textcoords="offset points")
fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=5, fontsize=8, frameon=False)
fig.savefig(RUN_DIR / "landmarks.png", dpi=120)
plt.show()

# %% [markdown]
# Points 36 and 45 (marked on the first face) are the outer eye corners; their distance is the
# face's natural unit, and landmark errors are reported as a fraction of it (the *normalised
# mean error* of notebook 02).
#
# ## 6 · Splits: different people in train, validation and test
#
# If the same person appears in training and test, a model can score well by recognising
# *people* and remembering how each one looked in training, which says nothing about faces it
# has never seen. SynthFER therefore gives each split its own people, and stores who is who in
# `ds.identities`. (RAF-DB does not publish identities, so its split cannot be verified this
# way; AffectNet's images come from different web searches.) Let us check SynthFER's splits:

# %%
splits = {s: pl.data.load("synthfer", split=s) for s in ("train", "val", "test")}
people_in = {s: set(ds.identities) for s, ds in splits.items()}
for s, ds in splits.items():
    per_person = pd.Series(ds.identities).value_counts()
    print(f"{s:5s}: {len(ds):5d} images of {len(people_in[s]):3d} people "
          f"({per_person.min()}-{per_person.max()} images per person)")
shared = {(a, b): len(people_in[a] & people_in[b]) for a, b in [("train", "val"), ("train", "test"), ("val", "test")]}
print("people shared between splits:", shared)
assert all(n == 0 for n in shared.values())

# %% [markdown]
# **Class balance.** The default SynthFER set is balanced on purpose, so that accuracy and mean
# class accuracy tell the same story while you learn. (`load("synthfer", balance="raf-db")`
# writes a variant with RAF-DB's skew, for the imbalance experiments of the exercises.) The
# counts of the set named in the parameters, per split and class:

# %%
def class_table(name):
    table = {}
    for split in ("train", "val", "test"):
        try:
            table[split] = pd.Series(pl.data.load(name, split=split).targets).value_counts().sort_index()
        except Exception as error:       # e.g. a real set with no validation split
            print(f"{name} {split}: {error}")
    counts = pd.DataFrame(table).fillna(0).astype(int)
    counts.index = [CLASSES[k] if k < len(CLASSES) else f"class {k}" for k in counts.index]
    return counts


counts = class_table(DATA)
print(f"{DATA}: largest/smallest class in train = {counts['train'].max() / counts['train'].min():.2f}; "
      f"RAF-DB: {raf['train'].max() / raf['train'].min():.2f}")
counts.T

# %% [markdown]
# ### Exercise 1 · Class weights against imbalance
# One remedy for imbalance is to weight the loss of each class by the inverse of its frequency,
# so that every class contributes equally in total: $w_c = N / (C \cdot n_c)$, with $N$ images,
# $C$ classes and $n_c$ images of class $c$. On a balanced set every weight is 1. Write
# `class_weights(counts)` (a sequence of per-class counts) returning a float tensor of weights.
# The check tries RAF-DB's counts, where fear (281 training images) must get the largest weight.

# %% tags=["solution"]
def class_weights(counts):
    """Inverse-frequency weights N / (C * n_c), one per class, as a float tensor."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    return (counts.sum() / (len(counts) * counts)).float()

# %% tags=["check"]
lab_checks.check_class_weights(class_weights)

# %% [markdown]
# ### Exercise 2 · An identity-disjoint split
# RAF-DB has no validation split; the loader carves one out of the training list. On a set that
# records identities, a fair carve keeps people whole. Write
# `split_by_identity(identities, val_fraction, seed)` returning two sorted integer arrays
# `(train_indices, val_indices)`: every image in exactly one of them, no person in both, and about
# `val_fraction` of the **people** in validation (chosen at random with `seed`). The check runs
# it on SynthFER-like identities.

# %% tags=["solution"]
def split_by_identity(identities, val_fraction=0.2, seed=0):
    """Indices (train, val) such that no identity appears in both; ~val_fraction of people in val."""
    identities = np.asarray(identities)
    people = np.unique(identities)
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(val_fraction * len(people))))
    val_people = rng.choice(people, size=n_val, replace=False)
    in_val = np.isin(identities, val_people)
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)

# %% tags=["check"]
lab_checks.check_split_by_identity(split_by_identity)

# %% [markdown]
# ## 7 · Augmentation: the release's training pipeline
#
# POSTER trains for many epochs on a few thousand faces; without augmentation it would memorise
# them. The release's pipeline, reproduced by `train_transform`:
#
# 1. resize to the input size and scale to $[0, 1]$;
# 2. with probability 0.5, one *extra* step: a horizontal flip or (as often) Gaussian noise of
#    variance 30 on the 0-255 scale;
# 3. a horizontal flip with probability 0.5 (so two flips can cancel);
# 4. normalise with ImageNet's mean and standard deviation;
# 5. **random erasing**: with probability 0.5 a rectangle of 2-10 % of the image is set to 0,
#    which after normalisation is the average ImageNet colour (the grey boxes below): a crude
#    stand-in for occlusion by hands, hair or glasses.
#
# No crops, rotations or colour changes: faces are already aligned. The same training face
# through the pipeline eight times (denormalised for display):

# %%
face, label = synth_train[5]
augment = train_transform(size=112)
torch.manual_seed(0)
views = [augment(face) for _ in range(N)]
print("one augmented sample:", tuple(views[0].shape), views[0].dtype,
      f"mean {views[0].mean():.2f}, std {views[0].std():.2f} (normalised)")
fig, axes = plt.subplots(1, N + 1, figsize=(1.9 * (N + 1), 2.3), constrained_layout=True)
axes[0].imshow(face)
axes[0].set_title(f"original\n{CLASSES[label]}", fontsize=8)
for k, (ax, view) in enumerate(zip(axes[1:], views)):
    ax.imshow(denormalize(view))
    ax.set_title(f"augmented {k + 1}", fontsize=8)
for ax in axes:
    ax.axis("off")
fig.savefig(RUN_DIR / "augmentation.png", dpi=120)
plt.show()
print(augment)

# %% [markdown]
# Flips are safe for expressions because faces are nearly symmetric and no class depends on a
# side. (They would not be safe for landmarks without swapping left and right points, which is
# why notebook 02 pretrains the landmark net without them.)
#
# ## 8 · The BGR detail
#
# Images are stored as red, green, blue. OpenCV's `cv2.imread`, however, returns **blue, green,
# red**. The release's RAF-DB code reads images with OpenCV and never converts, then normalises
# with ImageNet's statistics listed in RGB order. So the published RAF-DB weights were trained on
# BGR tensors, and they expect BGR at test time; fed RGB they lose accuracy without any error
# message. (The AffectNet code converts to RGB, so those weights expect RGB.) Every pipeline here
# takes `channel_order`, and the checkpoints record which one they need:

# %%
rgb = eval_transform(112, channel_order="rgb")(face)
bgr = eval_transform(112, channel_order="bgr")(face)
means = pd.DataFrame({"rgb tensor": rgb.mean(dim=(1, 2)).numpy(), "bgr tensor": bgr.mean(dim=(1, 2)).numpy()},
                     index=["channel 0", "channel 1", "channel 2"]).round(3)
print("mean of each channel after normalisation (channel 0 of the BGR tensor is the blue plane,\n"
      "normalised with the red plane's mean and std, as in the release):")
display(means.T)

fig, axes = plt.subplots(1, 3, figsize=(7.2, 2.7), constrained_layout=True)
axes[0].imshow(denormalize(rgb))
axes[0].set_title("RGB tensor, read as RGB", fontsize=9)
axes[1].imshow(denormalize(bgr, channel_order="bgr"))
axes[1].set_title("BGR tensor, read as BGR", fontsize=9)
axes[2].imshow(denormalize(bgr, channel_order="rgb"))
axes[2].set_title("BGR tensor, read as RGB:\nwhat a mismatched model sees", fontsize=9)
for ax in axes:
    ax.axis("off")
fig.savefig(RUN_DIR / "bgr.png", dpi=120)
plt.show()
assert np.allclose(denormalize(bgr, channel_order="bgr"), denormalize(rgb), atol=0.02)

# %% [markdown]
# The first two pictures are the same face: a tensor and the order it is read in must match.
# The third is what the published RAF-DB weights see if you hand them RGB (or what an RGB model
# sees if you hand it BGR): skin turns blue. Networks trained on faces lean heavily on skin
# colour statistics, so the mismatch costs accuracy without any error. Notebook 08 measures it.
#
# ## Summary
#
# - RAF-DB, AffectNet and FER2013 are photographs labelled by people: skewed towards happy and
#   neutral faces (RAF-DB's training split is 38.9 % happy and 2.3 % fearful: section 1's table), with labels that are
#   often a judgement call between neighbouring classes. Hence mean class accuracy beside accuracy.
# - Each set has its own folder layout and label numbering; the loaders map everything to one
#   class order, and `poster-lite data check` finds missing and broken files before training does.
# - SynthFER draws faces from action units over 68 landmarks, for a few hundred people, with identities,
#   landmarks, AUs and pose as ground truth. Its splits hold different people, and its default
#   classes are balanced.
# - The release augments with flips, Gaussian noise and random erasing, nothing more; and its
#   RAF-DB weights expect **BGR** input, which `channel_order="bgr"` reproduces.
#
# Next: notebook 02 builds the two backbones and pretrains them on SynthFER.
#
# ## Exercises
#
# 1. *(code, checked by `lab_checks` above)* `class_weights` for an imbalanced set.
# 2. *(code, checked by `lab_checks` above)* `split_by_identity`: people never in two splits.
# 3. `pl.data.load("synthfer", split="train", balance="raf-db")` writes a SynthFER with
#    RAF-DB's class shares. Count its classes and compare with the RAF-DB table of section 1.
#    *Hint:* `class_table` of section 6 takes a data set name; `np.bincount(ds.targets)` counts
#    any loaded split.
# 4. *(open)* Use the face designer to make a face that you find ambiguous between disgust and
#    anger. Which action units did you use? Compare with `EXPRESSION_AUS` above. *Hint:* start
#    from the AUs the two classes share (the brows) and move only what differs.
# 5. *(open)* What would random erasing do to the landmarks of a face, and why does it not
#    matter for POSTER's classification training? *Hint:* does POSTER use the landmark
#    *coordinates*, or the landmark network's feature map?
# 6. Take a face, convert it to BGR by hand (`np.asarray(img)[..., ::-1]`), and run it through
#    `eval_transform(112, channel_order="bgr")`. Which channel order does the resulting tensor
#    have? Explain why "converting twice" is as wrong as not converting. *Hint:* print the channel
#    means, as section 8 does.
