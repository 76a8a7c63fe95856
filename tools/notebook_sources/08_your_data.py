# %% [markdown]
# # 08 · Your own data and the official weights
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/poster-lite/poster-lite/blob/main/notebooks/08_your_data.ipynb)
#
# > Real data set layouts and how to check them, the authors' checkpoints (and why the RAF-DB ones want BGR), predictions on your own photos, and predictions exported to CSV.
#
# Every notebook so far trained and tested on SynthFER, the faces this package draws itself.
# This one is about leaving that sandbox: pointing `poster_lite` at RAF-DB, AffectNet or a folder
# of your own pictures, loading the weights the POSTER authors published, and running a model on
# photos that were never part of any data set. Nothing here downloads anything: the notebook
# builds a tiny fake RAF-DB and a checkpoint in the release's own format itself, so that every
# step runs offline, and the same calls then work on the real files.
#
# **Learning goals.** After this notebook you can
# 1. lay out RAF-DB, AffectNet, FER2013 or a folder of class folders so that `poster_lite.data.load`
#    reads them, and find what is wrong with a folder using `poster-lite data check`;
# 2. load the authors' released checkpoints strictly, read the error when the variant does not
#    match, and say why the RAF-DB weights need `channel_order="bgr"`;
# 3. find and classify the faces in a photo with `pl.predict` and the upload widget;
# 4. export predictions for a folder of images to a CSV file.
#
# Time: about one lab hour. Runs on a laptop CPU in a few minutes.

# %% tags=["parameters"]
# Parameters: papermill and `make tour` override these (tools/tour.py -p NAME=VALUE).
SMOKE = 0                 # 1: the quickest run that still touches every cell (what the tests run)
DEVICE = "auto"           # "auto" (a GPU if there is one), "cpu" or "cuda"
DATA = "synthfer"         # where the sample faces come from ("synthfer" is built in)
MODEL = "poster-nano"     # size knob: the model that predicts (and whose checkpoint we rewrite)
FAKE_PER_CLASS = 6        # size knob: images per class and split in the fake RAF-DB tree (SMOKE: 2)
EXPORT_IMAGES = 60        # size knob: images exported to CSV in section 4 (SMOKE: 14)
FETCH_OFFICIAL = 0        # 1: download the authors' released files in section 2 (needs the internet; hundreds of MB)

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

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from PIL import Image

import poster_lite as pl
from poster_lite import lab_checks, widgets
from poster_lite.data import CLASSES, CLASSES_8
from poster_lite.data.check import check_dataset, format_report
from poster_lite.data.subset import Subset
from poster_lite.data.transforms import denormalize, eval_transform
from poster_lite.model_cache import model_dir
from poster_lite.models.official import CheckpointMismatch, load_official_weights, to_release_state_dict
from poster_lite.training.recipe import NANO_LR
from poster_lite.viz.predictions import plot_predictions

# Seed, device ("auto": a GPU if there is one) and runs/08_your_data/ for the fake data set,
# checkpoints, photos and CSV of this notebook.
device, ROOT, RUN_DIR = pl.notebook.setup("08_your_data", DEVICE, seed=0)
if SMOKE:
    FAKE_PER_CLASS, EXPORT_IMAGES = 2, 14
print(f"SMOKE={SMOKE}")

# %% [markdown]
# ## 1 · Real data sets and their layouts
#
# The papers report RAF-DB, AffectNet and (for older work) FER2013. None of them may be
# redistributed: you request them from their authors and unpack them under `data/`. The loaders
# expect each one in the layout its authors ship (or POSTER's release uses):
#
# | data set | folder | what is in it | `load(...)` name |
# |---|---|---|---|
# | RAF-DB basic | `data/raf-basic/` | `EmoLabel/list_patition_label.txt` (lines `train_00001.jpg 5`, labels 1..7), `Image/aligned/train_00001_aligned.jpg` | `"raf-db"` |
# | AffectNet | `data/affectnet/` | `train_set/`, `valid_set/` with their annotation lists (7 or 8 classes) | `"affectnet-7"`, `"affectnet-8"` |
# | FER2013 | `data/fer2013/` | `fer2013.csv` (48 x 48 grey pixels as text, `Usage` column) | `"fer2013"` |
# | your own | any folder | one sub-folder per class (optionally under `train/`, `val/`, `test/`) | `"folder"` |
#
# Every loader translates its file's label numbering into one order, RAF-DB's, so label 3 is
# always Happiness. RAF-DB has no validation split: `split="val"` carves a seeded, stratified
# 10 % out of the training list (and `"train"` then leaves it out), so that model selection
# never sees the test set.
#
# ### Exercise 1 · AffectNet's labels in the package's order
# AffectNet's annotation files count 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust,
# 6 Anger, 7 Contempt. The package counts in RAF-DB's order, Surprise first, with Contempt added
# last (`pl.data.CLASSES_8`). Write `affectnet_to_ours(label)`: the package's index for an
# AffectNet label. Derive it from the class *names*, not from numbers typed by hand: that is how
# a mapping stays right when someone reorders a list. The check compares all eight labels with
# the loader's own table and names the usual slips.

# %% tags=["solution"]
def affectnet_to_ours(label):
    """The package's class index (RAF-DB's order, Contempt last) of AffectNet label 0..7."""
    affectnet_names = ("Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger", "Contempt")
    return CLASSES_8.index(affectnet_names[label])

# %% tags=["check"]
lab_checks.check_affectnet_to_ours(affectnet_to_ours)

# %% [markdown]
# A model trained on AffectNet-8 and evaluated on RAF-DB therefore needs no relabelling, only a
# decision about its eighth output: RAF-DB has no Contempt faces.
#
# We cannot ship RAF-DB, so we make a **fake one**: a few SynthFER faces written in exactly
# RAF-DB's layout. Everything below works the same on the real folder.

# %%
source = {split: pl.data.load(DATA, split=split) for split in ("train", "test")}
FAKE_RAF = RUN_DIR / "fake_raf_db"


def write_raf_db_tree(root: Path, per_class: int) -> Path:
    """A RAF-DB basic tree: the label list plus one aligned JPEG per listed image."""
    if root.exists():
        shutil.rmtree(root)
    (root / "EmoLabel").mkdir(parents=True)
    (root / "Image" / "aligned").mkdir(parents=True)
    lines = []
    for split, dataset in source.items():
        chosen = Subset(dataset, per_class * len(CLASSES), seed=1)
        for number, (image, label) in enumerate(chosen, 1):
            name = f"{split}_{number:05d}"
            image.save(root / "Image" / "aligned" / f"{name}_aligned.jpg", quality=92)
            lines.append(f"{name}.jpg {label + 1}")              # RAF-DB counts labels from 1
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


write_raf_db_tree(FAKE_RAF, FAKE_PER_CLASS)
for path in sorted(FAKE_RAF.rglob("*"))[:6]:
    print(path.relative_to(RUN_DIR))
print("...")
print((FAKE_RAF / "EmoLabel" / "list_patition_label.txt").read_text().splitlines()[:3])

# %% [markdown]
# **Check before you train.** `poster-lite data check FOLDER` works out which layout a folder
# holds, builds every split, counts the images per class and decodes every file. It is the first
# thing to run on a freshly unpacked data set: a missing file, a label out of range or a
# truncated JPEG is reported with its file and label-file line, instead of surfacing as a crash
# in epoch 3. The same function is `poster_lite.data.check.check_dataset` in Python.

# %%
report = check_dataset(FAKE_RAF, progress=False)
print(format_report(report))
assert report["layout"] == "raf-db" and not report["problems"]

# %% [markdown]
# The train split lost 10 % to validation only inside `load` (shown next); the check shows the
# lists as they are. The command line gives the same report and an exit code a script can test
# (0 fine, 2 problems):

# %%
cli = subprocess.run([sys.executable, "-m", "poster_lite.cli", "data", "check", str(FAKE_RAF), "--quick"],
                     capture_output=True, text=True)
print(f"$ poster-lite data check {FAKE_RAF.relative_to(ROOT)} --quick   (exit code {cli.returncode})")
print(cli.stdout)
train_part = pl.data.load("raf-db", split="train", root=FAKE_RAF)
val_part = pl.data.load("raf-db", split="val", root=FAKE_RAF)
print(f"load('raf-db', root=...): train {len(train_part)}, val {len(val_part)} (carved from train), "
      f"classes {train_part.classes[:3]}...")

# %% [markdown]
# Now damage a copy the way real downloads get damaged. First one JPEG cut short: the lists are
# fine, so every split loads, and decoding finds the file and names the label-file line that
# lists it.

# %%
BROKEN = RUN_DIR / "broken_raf_db"
if BROKEN.exists():
    shutil.rmtree(BROKEN)
shutil.copytree(FAKE_RAF, BROKEN)
victim = sorted((BROKEN / "Image" / "aligned").glob("test_*.jpg"))[0]
victim.write_bytes(victim.read_bytes()[:300])                       # a truncated download
truncated = check_dataset(BROKEN, progress=False)
print(format_report(truncated))
assert any(victim.name in problem for problem in truncated["problems"])

# %% [markdown]
# Then a label RAF-DB does not have (9; its labels run 1..7) on the first line of the list:

# %%
label_file = BROKEN / "EmoLabel" / "list_patition_label.txt"
lines = label_file.read_text().splitlines()
lines[0] = f"{lines[0].split()[0]} 9"
label_file.write_text("\n".join(lines) + "\n")
bad_label = check_dataset(BROKEN, progress=False)
print(format_report(bad_label))
assert any("label 9" in problem for problem in bad_label["problems"])
assert any(victim.name in problem for problem in bad_label["problems"])      # still found, in the same pass
from poster_lite.errors import UserError

for split in ("train", "test"):
    try:
        pl.data.load("raf-db", split=split, root=BROKEN)
        raise AssertionError(f"the {split} split loaded from a list with a bad line")
    except UserError as error:                      # what the loaders raise about the data
        print(f"load(split={split!r}) refuses: {error}")

# %% [markdown]
# The check keeps going and reports everything in one pass: the bad line with its `file:line`, the
# truncated image again, and, as a note, the image that the bad line names and that no split now
# uses. Loading is stricter: a bad label stops **every** split, not just the one it is in, because
# RAF-DB keeps train and test in one list, and a loader that skipped lines it cannot read would
# quietly train on a different set than you think. Each fix is one edit.
#
# ## 2 · The authors' checkpoints
#
# The POSTER authors published their trained models (RAF-DB and AffectNet) and the two backbones
# (`ir50.pth`, the face-recognition IR-50; `mobilefacenet_model_best.pth.tar`, the landmark
# network). Their format is that of their training script: a dict
# `{'iter', 'model_state_dict', 'optimizer_state_dict'}` whose keys all start with `module.`
# (the model was wrapped in `DataParallel`), with their own layer names (`ir_back.`,
# `face_landback.`, `pyramid_fuse.`...). `poster_lite.models.official` translates between those
# names and this package's, and `load_official_weights` loads **strictly**: every key must find
# its place and every shape must match. (The release's own loader skips what does not match and
# leaves random layers behind without a word.)
#
# We have no internet here, so we make such a file ourselves: a trained poster-nano, renamed into
# the release's layout by `to_release_state_dict`, wrapped exactly as the release saves it. The
# steps after that are the ones you would run on the downloaded file with `MODEL = "poster-l"`.

# %%
def quick_model(name: str) -> torch.nn.Module:
    """The trained model cached here (notebook 05, the tour) or shipped with poster-lite; else a short
    stand-in training."""
    cached = model_dir(name, smoke=bool(SMOKE)) / "best"
    if SMOKE or cached.exists() or pl.shipped.has_model(name):
        return pl.trained_model(name, smoke=bool(SMOKE), device=device)
    stand_in = RUN_DIR / "stand_in_model"
    if (stand_in / "best").exists():
        return pl.load_checkpoint(stand_in / "best", device=device)
    print("No trained model cached yet (notebook 05 makes one): a 3-epoch stand-in on 700 faces.")
    torch.manual_seed(0)
    model = pl.build_model(name)
    pl.train(model, Subset(pl.data.load(DATA, split="train"), 700), Subset(pl.data.load(DATA, split="val"), 210),
             epochs=3, batch_size=16, out_dir=stand_in, device=device, lr=NANO_LR, sam=False,
             allow_random_landmarks=True)     # a stand-in from random backbones, knowingly
    return pl.load_checkpoint(stand_in / "best", device=device)


model = quick_model(MODEL)
print(f"{MODEL}: {sum(p.numel() for p in model.parameters()):,} parameters, classes {model.meta['classes']}, "
      f"channel order {model.meta['channel_order']}")


def save_atomically(obj, path: Path) -> Path:
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


release_keys = to_release_state_dict(model)
release_file = save_atomically(
    {"iter": 0, "model_state_dict": {"module." + k: v for k, v in release_keys.items()}, "optimizer_state_dict": {}},
    RUN_DIR / "release_layout_checkpoint.pth")
some = list(release_keys)
print(f"{release_file.name}: {len(release_keys)} tensors, e.g.")
for key in (some[0], next(k for k in some if k.startswith("pyramid_fuse.")), some[-1]):
    print(f"  module.{key}  {tuple(release_keys[key].shape)}")

# %% [markdown]
# Loading: build the model whose architecture matches the file, then hand the file to
# `load_official_weights`. It reads with `torch.load(..., weights_only=True)` (a checkpoint from
# the internet cannot run code), strips `module.`, maps every name and copies. If the weights
# really landed, the fresh model computes exactly what the original did.

# %%
fresh = pl.build_model(MODEL).eval()
loaded = load_official_weights(fresh, release_file)
faces = torch.stack([eval_transform(model.config.input_size)(source["test"][i][0]) for i in range(8)])
with torch.no_grad():
    difference = (fresh(faces) - model.eval()(faces)).abs().max().item()
print(f"loaded {loaded['loaded']} tensors ({loaded['kind']}); largest difference in logits: {difference:.1e}")
assert difference < 1e-5

# %% [markdown]
# **A mismatched variant.** The release comes in variants that share most names: POSTER-T/S/L
# differ in depth (4, 6, 8 blocks), and the AffectNet release has no per-block token mixer
# (`mix_tokens=False`). Loading into the wrong variant must fail loudly, and the message should
# say how to fix it:

# %%
for wrong in (dict(depth=model.config.depth + 1), dict(mix_tokens=not model.config.mix_tokens)):
    try:
        load_official_weights(pl.build_model(MODEL, **wrong), release_file)
        raise AssertionError(f"{wrong} loaded without complaint")
    except CheckpointMismatch as error:
        print(f"build_model({MODEL!r}, **{wrong}):\n{error}\n")

# %% [markdown]
# On the real files the recipe is: `pl.load_checkpoint("rafdb_best.pth")` reads a released
# whole-POSTER checkpoint, works out depth and variant from its keys, builds a POSTER (224 px)
# and fills it; `load_official_weights(model, "ir50.pth")` fills only the image backbone (its
# stage-4 keys are reported as unused, since POSTER cuts the IR-50 after stage 3).
#
# ### Downloading the authors' files (only when asked)
#
# Where there is a network (Colab, your laptop), `pl.official.fetch()` downloads the files the
# authors' README links: both backbones and the RAF-DB and AffectNet checkpoints, hundreds of MB
# in all, with a progress bar each (`poster-lite fetch-official` does the same in a terminal).
# Each file keeps its name only after it has loaded **strictly** into the release's POSTER, and
# a file already there is checked, never replaced. **The next cell downloads**, so it does nothing
# unless you set `FETCH_OFFICIAL = 1` in the parameters cell; offline it says so and returns
# nothing, and this notebook goes on with the model trained on drawn faces. With the RAF-DB
# checkpoint in hand, section 3's upload widget answers with the authors' model instead.

# %%
official = pl.official.fetch() if FETCH_OFFICIAL else {}
if not FETCH_OFFICIAL:
    print("FETCH_OFFICIAL = 0: nothing downloaded (set it to 1 in the parameters cell to fetch the authors' files)")
for item in official.values():
    print(f"{item.name}: {item.what} ({item.status}, {item.path})")
# The authors' RAF-DB POSTER (224 px, BGR input, 7 classes) when it was fetched, else ours.
release_model = pl.load_checkpoint(official["rafdb_best.pth"].path, device=device) \
    if "rafdb_best.pth" in official else None

# %% [markdown]
# ### The BGR detail
#
# The release's RAF-DB data loader reads images with OpenCV, which returns **B, G, R** channel
# order, and never converts; only then does it normalise with the usual ImageNet statistics
# (listed in R, G, B order). The published RAF-DB weights therefore expect a BGR tensor. Feeding
# them RGB is not an error anyone sees: the model runs and is quietly a few points worse. (The
# AffectNet loader converts to RGB, so those weights want RGB.) `eval_transform(channel_order=
# "bgr")` reproduces the release exactly: scale to $[0, 1]$, flip the channels, then normalise
# with the RGB-ordered statistics. `pl.load_checkpoint` stores the right order in `model.meta`,
# and `pl.predict` follows it.

# %%
face = source["test"][0][0]
as_rgb = eval_transform(model.config.input_size, channel_order="rgb")(face)
as_bgr = eval_transform(model.config.input_size, channel_order="bgr")(face)
print("channel means   rgb:", as_rgb.mean((1, 2)).numpy().round(3), "  bgr:", as_bgr.mean((1, 2)).numpy().round(3))
fig, axes = plt.subplots(1, 3, figsize=(8, 2.9), layout="constrained")
axes[0].imshow(face)
axes[0].set_title("the face")
axes[1].imshow(denormalize(as_rgb, channel_order="rgb"))
axes[1].set_title('tensor, channel_order="rgb"', fontsize=9)
axes[2].imshow(denormalize(as_bgr, channel_order="rgb"))
axes[2].set_title('BGR tensor read as if RGB', fontsize=9)
for ax in axes:
    ax.axis("off")
fig.savefig(RUN_DIR / "bgr_detail.png", dpi=110)
plt.show()

# %% [markdown]
# The right panel is what a model trained on RGB sees when handed a BGR tensor (and what the
# RAF-DB weights see when handed RGB): skin turns blue. How much does it cost? Our model was
# trained on RGB; evaluate it on the same test faces in both orders.

# %%
n_test = 56 if SMOKE else 700
test_faces = Subset(source["test"], n_test, seed=0)


def with_transform(dataset, transform):
    return [(transform(image), label) for image, label in dataset]


fast_model = pl.fast(model)
order_scores = {}
for order in ("rgb", "bgr"):
    tensors = with_transform(test_faces, eval_transform(model.config.input_size, channel_order=order))
    order_scores[order] = pl.evaluate(fast_model, tensors)["accuracy"]
    print(f"input in {order.upper()}: test accuracy {order_scores[order]:.1%} on {n_test} faces")
bgr_cost = order_scores["rgb"] - order_scores["bgr"]
print(f"feeding the wrong channel order costs {bgr_cost * 100:.1f} points here")

# %% [markdown]
# The size of the drop depends on how much the model leans on colour; on SynthFER, where skin
# tone varies per identity, it can be small, on real faces it is larger. It also needs a model
# that has learned something: with the short stand-in training (used when no trained model is
# cached) both numbers sit near chance (1 in 7) and their difference is noise. The point is that it
# fails silently, so the order must travel with the weights (it does: `model.meta["channel_order"]`).
#
# ## 3 · Predicting on your own photos
#
# A photo is not an aligned face crop. `pl.predict` first finds faces with OpenCV's Haar cascade
# (it ships inside OpenCV, nothing is downloaded), widens each box by a margin so the crop looks
# like a training face (brows to chin), classifies every crop, and returns one record per photo.
# To have a "photo" offline we compose one: a few SynthFER test faces pasted, enlarged, on a
# textured background.

# %%
def compose_photo(faces, size=(640, 300), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(60, 200, size[0])[None, :, None] * np.ones((size[1], 1, 3))
    background = np.clip(ramp * np.array([0.9, 0.8, 0.7]) + rng.normal(0, 8, (size[1], size[0], 3)), 0, 255)
    photo = Image.fromarray(background.astype(np.uint8))
    step = size[0] // len(faces)
    for k, face in enumerate(faces):
        side = int(min(step, size[1]) * 0.75)
        photo.paste(face.resize((side, side), Image.BILINEAR), (k * step + (step - side) // 2, (size[1] - side) // 2))
    return photo


wanted = ["Happiness", "Surprise", "Anger"]
picks = [next(i for i, t in enumerate(source["test"].targets) if CLASSES[t] == name) for name in wanted]
photo_path = RUN_DIR / "my_photo.jpg"
compose_photo([source["test"][i][0] for i in picks]).save(photo_path, quality=90)
results = pl.predict([photo_path], model=model)
print(f"{photo_path.name}: {results[0]['message'] or str(len(results[0]['faces'])) + ' face(s)'} "
      f"(true, left to right: {', '.join(wanted)})")
for face in results[0]["faces"]:
    print(f"  box {face['box']}: {face['label']} ({face['probability']:.0%})")
if not results[0]["faces"]:                  # the detector missed: classify the whole photo instead
    results = pl.predict([photo_path], model=model, detect_faces=False)
results[0]["source"] = photo_path.name                  # a short title for the figure
fig = plot_predictions([Image.open(photo_path)], results, save=RUN_DIR / "my_photo_predictions.png")
fig

# %% [markdown]
# Left: the photo with a box per face found; right: each face's class probabilities. Read the
# boxes against the true expressions printed above: the detector must find a face before the
# model can be right, and a face it misses is reported as `"no face found"` rather than
# guessed. Profiles and strongly tilted heads are what the Haar cascade misses most.
#
# **The upload widget.** In Jupyter or Colab, `pl.widgets.upload_and_predict(model=model)` shows
# an upload button (and, on Colab, a webcam snapshot button); each photo you choose runs through
# the same `pl.predict` and is drawn as above. Here we hand it our composed photo so that the
# cell has a picture even where widgets do not render (a static page, the test run).
#
# The widget says which model is answering and what it learned from. Unless you fetched the
# authors' files above, it is the small POSTER trained on **SynthFER's drawn faces**: it has never
# seen a photograph, so on your own photos expect it to be unsure or wrong (the domain gap, not a
# bug). With `FETCH_OFFICIAL = 1` the authors' POSTER, trained on RAF-DB's real photos, answers.

# %%
answering = release_model if release_model is not None else model
print("answering:", widgets.model_origin(answering))
widget = widgets.upload_and_predict(model=answering)
widget.predict_images([Image.open(photo_path)], [photo_path.name])
widget

# %% [markdown]
# ## 4 · Exporting predictions to CSV
#
# For a folder of photos you want a table, not pictures: one row per face with the file, the box,
# the predicted class, its probability and every class's probability. We write a few test faces
# as files (a stand-in for your folder), predict on all of them at once, and save the table under
# `runs/`. These are aligned face crops already, so face detection is switched off
# (`detect_faces=False` classifies the whole image). The command line does the same with
# `poster-lite predict *.jpg --checkpoint runs/.../best --json`.

# %%
photo_dir = RUN_DIR / "photos"
if photo_dir.exists():
    shutil.rmtree(photo_dir)
photo_dir.mkdir()
export = Subset(source["test"], EXPORT_IMAGES, seed=2)
paths, truth = [], []
for k, (image, label) in enumerate(export):
    paths.append(photo_dir / f"photo_{k:03d}.jpg")
    image.save(paths[-1], quality=92)
    truth.append(CLASSES[label])


def prediction_rows(results) -> list:
    """One dict per face: source, box, label, probability, then one column per class."""
    rows = []
    for result in results:
        for number, face in enumerate(result["faces"]):
            rows.append({"source": Path(result["source"]).name, "face": number, "box": " ".join(map(str, face["box"])),
                         "label": face["label"], "probability": round(face["probability"], 4),
                         **{f"p_{name}": round(p, 4) for name, p in face["probabilities"].items()}})
        if not result["faces"]:
            rows.append({"source": Path(result["source"]).name, "face": None, "label": None,
                         "message": result["message"]})
    return rows


table = pd.DataFrame(prediction_rows(pl.predict(paths, model=model, detect_faces=False)))
table.insert(4, "true", truth)
csv_path = RUN_DIR / "predictions.csv"
table.to_csv(csv_path, index=False)
export_accuracy = (table["label"] == table["true"]).mean()
print(f"wrote {csv_path.relative_to(ROOT)}: {len(table)} rows, accuracy against the true labels {export_accuracy:.1%}")
table.head(6)

# %% [markdown]
# The CSV opens in any spreadsheet; `pd.read_csv` reads it back. The probability columns let
# you choose your own threshold later ("only keep faces the model is 80 % sure of") without
# running the model again.

# %%
print(f"HEADLINE: release-layout checkpoint reloads exactly (max logit diff {difference:.0e}); "
      f"wrong channel order costs {bgr_cost * 100:.1f} points; {len(table)} predictions exported to CSV")

# %% [markdown]
# ## Summary
#
# - Real data sets go under `data/` in their authors' layouts; every loader maps labels into
#   RAF-DB's order, and RAF-DB's validation split is carved from its training list.
# - `poster-lite data check` (or `check_dataset`) counts images per split and class and names
#   each broken file or label line; run it before training.
# - The authors' checkpoints are `module.`-prefixed `model_state_dict`s in the release's names;
#   `load_official_weights` maps and loads them strictly, and a wrong variant (depth, token
#   mixers, classes) fails with a message that says which.
# - The RAF-DB weights expect BGR input (OpenCV), the AffectNet ones RGB; the wrong order fails
#   silently, so the order is stored in `model.meta` and `pl.predict` follows it.
# - `pl.predict` finds faces, crops them with a margin and classifies them; the upload widget
#   wraps it; a list of records becomes a CSV in two lines of pandas.
#
# ## Exercises
#
# 1. *(code, checked by `lab_checks` in section 1)* `affectnet_to_ours`: AffectNet's labels in
#    the package's order.
# 2. *(open)* Add a missing image to the broken tree (delete one listed JPEG). What does the
#    check say, and what does `pl.data.load` do with that split? Why is refusing better than
#    skipping the file? *Hint:* compare with what the release's own loader does with checkpoint
#    keys it cannot place (section 2).
# 3. Compose a photo with a face rotated by 30 degrees (`Image.rotate`) and one shrunk to 40
#    pixels. Which does the detector miss? Try `margin=0.3` in `pl.predict`. *Hint:* paste the
#    faces onto a larger grey canvas with `Image.new` and `paste`, so that the detector has to
#    find them.
# 4. Write a `folder` layout (`train/Happiness/*.jpg`, ...) of the same faces and load it with
#    `pl.data.load("folder", root=...)`. Which class order does it use, and why does that matter
#    when you evaluate a model trained on RAF-DB? *Hint:* print `dataset.classes` for a folder
#    that lacks one class.
# 5. *(open)* Save the release-layout checkpoint of section 2 for `MODEL`, then try to load it
#    into `pl.build_model(MODEL, num_classes=8)`. Read the error: which keys does it name, and
#    what would the release's own loader have done instead? *Hint:* only the head depends on the
#    number of classes.
