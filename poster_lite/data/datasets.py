"""Labelled face images: RAF-DB (and SynthFER, which shares its layout), AffectNet, FER2013, folders.

Every loader returns a `FaceImages` dataset: `ds[i]` is `(image, label)` with an RGB
PIL image (or `transform(image)`), and the attributes `classes`, `targets`,
`identities`, `landmarks`, `root`, `paths`. Labels are always indices of
`labels.CLASSES` (or `CLASSES_8`); each file format's own order is mapped on reading.

Mistakes in the files (no label file, a label out of range, a listed image that is
absent, an empty folder) raise `UserError` at construction, naming the file and line.
An image that exists but cannot be decoded is found only when it is read: with
`on_bad_image="raise"` that is an error naming the file; with "skip" it is a warning
(with a running count) and the next readable sample takes its place. The default is
"skip" for training splits and "raise" for the splits you report numbers on.
Grayscale, palette and RGBA images are converted to RGB (alpha over mid grey).
"""
from __future__ import annotations

import csv
import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ..errors import UserError
from .labels import AFFECTNET_TO_CLASSES, CLASS_ALIASES, CLASSES, CLASSES_8, FER2013_TO_CLASSES

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
RAF_LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
RAF_IMAGE_DIR = Path("Image") / "aligned"
SYNTHFER_ANNOTATIONS = Path("EmoLabel") / "synthfer_annotations.npz"


class BadImage(UserError):
    """An image file that exists but cannot be decoded."""


def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        grey = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
        return Image.alpha_composite(grey, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits rather than let convert() clip at 255.
        values = np.asarray(image, dtype=np.float64)
        top = values.max() or 1.0
        return Image.fromarray((values * (255.0 / top)).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def open_rgb(path) -> Image.Image:
    """Read an image file fully (so truncation shows here, not later) and return it as RGB."""
    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except FileNotFoundError:
        raise UserError(f"image file is missing: {path}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadImage(f"cannot read image {path}: {e}") from None


class FaceImages(Dataset):
    """Base of every loader: the sample list, the attributes, and the bad-image policy."""

    def __init__(self, classes, targets, root=None, transform=None, identities=None, landmarks=None,
                 on_bad_image="raise", source=""):
        if on_bad_image not in ("raise", "skip"):
            raise UserError(f"on_bad_image must be 'raise' or 'skip', got {on_bad_image!r}")
        self.classes = list(classes)
        self.targets = [int(t) for t in targets]
        self.root = Path(root) if root is not None else None
        self.transform = transform
        self.identities = None if identities is None else [int(i) for i in identities]
        self.landmarks = None if landmarks is None else np.asarray(landmarks, np.float32)
        self.on_bad_image = on_bad_image
        self.source = source
        self.paths = None
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.targets)

    def _read(self, index: int) -> Image.Image:
        raise NotImplementedError

    def where(self, index: int) -> str:
        """Where sample `index` comes from (for messages)."""
        return f"{self.source} sample {index}"

    def __getitem__(self, index: int):
        n = len(self)
        for attempt in range(n):
            i = (index + attempt) % n
            try:
                image = self._read(i)
            except BadImage as e:
                if self.on_bad_image == "raise":
                    raise BadImage(f"{e} ({self.where(i)}); pass on_bad_image='skip' to skip such files") from None
                self.skipped += 1
                warnings.warn(f"skipped an unreadable image: {e} ({self.where(i)}); {self.skipped} skipped so far "
                              f"in this process", stacklevel=2)
                continue
            return (self.transform(image) if self.transform else image), self.targets[i]
        raise BadImage(f"no readable image at all in {self.source}")

    def class_counts(self) -> dict:
        counts = Counter(self.targets)
        return {name: counts.get(k, 0) for k, name in enumerate(self.classes)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source}: {len(self)} images, {len(self.classes)} classes)"


class ImageFiles(FaceImages):
    """Samples that are image files on disk."""

    def __init__(self, paths, targets, classes, root, origins=None, **kw):
        super().__init__(classes, targets, root, **kw)
        self.paths = [str(p) for p in paths]
        self._origins = origins

    def _read(self, index):
        return open_rgb(self.paths[index])

    def where(self, index):
        return self._origins[index] if self._origins else self.paths[index]


class ArrayFaces(FaceImages):
    """Samples held in memory as an N x H x W (x 3) uint8 array."""

    def __init__(self, images, targets, classes, root=None, origins=None, **kw):
        super().__init__(classes, targets, root, **kw)
        self.images = images
        self._origins = origins

    def _read(self, index):
        return to_rgb(Image.fromarray(np.ascontiguousarray(self.images[index])))

    def where(self, index):
        return self._origins[index] if self._origins else super().where(index)


# ----------------------------------------------------------------------------- helpers
def _require_dir(root: Path, what: str) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"{what} folder {root} does not exist (see data/README.md for where to put it)")
    if not root.is_dir():
        raise UserError(f"{what} root {root} is a file, not a folder")
    return root


def _default_policy(split: str, on_bad_image):
    return on_bad_image or ("skip" if split == "train" else "raise")


def _check_split(split: str, allowed) -> None:
    if split not in allowed:
        raise UserError(f"unknown split {split!r}; this data set has {', '.join(allowed)}")


def _read_label_list(path: Path, n_classes: int, first_label: int, fmt: str):
    """Lines "<file> <label>" -> [(file, label as read, line number)], checked."""
    if not path.exists():
        raise UserError(f"label file missing: {path} (expected lines like {fmt!r}; see data/README.md)")
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2:
                raise UserError(f"{path}:{number}: expected '<file> <label>' like {fmt!r}, got {line.strip()!r}")
            try:
                label = int(parts[1])
            except ValueError:
                raise UserError(f"{path}:{number}: label {parts[1]!r} is not a whole number") from None
            if not first_label <= label < first_label + n_classes:
                raise UserError(f"{path}:{number}: label {label} is outside {first_label}..{first_label + n_classes - 1} "
                                f"({parts[0]})")
            rows.append((parts[0], label, number))
    if not rows:
        raise UserError(f"label file {path} lists no images")
    return rows


def _missing_files(paths, origins, folder: Path) -> None:
    try:
        present = set(os.listdir(folder))
    except FileNotFoundError:
        raise UserError(f"image folder missing: {folder} (see data/README.md for the layout)") from None
    missing = [(p, o) for p, o in zip(paths, origins) if Path(p).name not in present]
    if missing:
        shown = "; ".join(f"{p} (listed at {o})" for p, o in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise UserError(f"{len(missing)} listed image(s) not found: {shown}{more}")


def carve_validation(targets, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices (into targets) of a seeded, class-stratified validation part."""
    targets = np.asarray(targets)
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(targets):
        members = np.flatnonzero(targets == label)
        take = int(round(fraction * len(members)))
        if fraction > 0 and len(members) > 1:
            take = max(1, take)
        chosen.extend(rng.permutation(members)[:take].tolist())
    return np.array(sorted(chosen), dtype=int)


def _split_train(rows, split: str, val_fraction: float, val_seed: int, where: str):
    """Train entries -> the requested part: 'train' without the carved validation, or 'val'."""
    if split == "val" and val_fraction <= 0:
        raise UserError(f"{where} has no validation split and val_fraction is 0; use split='train' or 'test'")
    val = set(carve_validation([r[1] for r in rows], val_fraction, val_seed).tolist()) if val_fraction > 0 else set()
    return [r for k, r in enumerate(rows) if (k in val) == (split == "val")]


# ----------------------------------------------------------------------------- RAF-DB
def raf_db(root, split: str = "train", transform=None, val_fraction: float = 0.1, val_seed: int = 0,
           on_bad_image=None) -> ImageFiles:
    """RAF-DB basic in the release's layout (and SynthFER, written in the same layout).

    root/EmoLabel/list_patition_label.txt  lines "train_00001.jpg 5" (1..7 in CLASSES order)
    root/Image/aligned/train_00001_aligned.jpg
    RAF-DB has train and test only: split="val" is a seeded, stratified `val_fraction` of
    the train list, and "train" then leaves it out (val_fraction=0 keeps the whole train
    list, as the paper trains). A label file with its own val_ entries (SynthFER) uses them.
    """
    root = _require_dir(root, "RAF-DB")
    _check_split(split, ("train", "val", "test"))
    label_file = root / RAF_LABEL_FILE
    rows = _read_label_list(label_file, len(CLASSES), 1, "train_00001.jpg 5")
    by_split = {"train": [], "val": [], "test": []}
    for name, label, number in rows:
        prefix = name.split("_", 1)[0]
        if prefix not in by_split:
            raise UserError(f"{label_file}:{number}: file name {name!r} should start with train_, val_ or test_")
        by_split[prefix].append((name, label - 1, number))
    if by_split["val"]:
        chosen = by_split[split]
    elif split == "test":
        chosen = by_split["test"]
    else:
        chosen = _split_train(by_split["train"], split, val_fraction, val_seed, f"RAF-DB at {root}")
    if not chosen:
        raise UserError(f"{label_file} lists no {split} images")
    image_dir = root / RAF_IMAGE_DIR
    paths = [image_dir / f"{Path(name).stem}_aligned.jpg" for name, _, _ in chosen]
    origins = [f"{label_file}:{number}" for _, _, number in chosen]
    _missing_files(paths, origins, image_dir)
    identities = landmarks = None
    sidecar = root / SYNTHFER_ANNOTATIONS
    if sidecar.exists():
        with np.load(sidecar) as ann:
            position = {str(n): k for k, n in enumerate(ann["names"])}
            unknown = [name for name, _, _ in chosen if name not in position]
            if unknown:
                raise UserError(f"{sidecar} has no landmarks for {len(unknown)} listed image(s), e.g. {unknown[0]}; "
                                f"the set is damaged: regenerate it")
            rows_at = [position[name] for name, _, _ in chosen]
            identities = ann["identity"][rows_at].tolist()
            landmarks = ann["landmarks"][rows_at]
    ds = ImageFiles(paths, [label for _, label, _ in chosen], CLASSES, root, origins, transform=transform,
                    identities=identities, landmarks=landmarks, on_bad_image=_default_policy(split, on_bad_image),
                    source=f"RAF-DB layout at {root}, {split}")
    return ds


# ----------------------------------------------------------------------------- AffectNet
def affectnet(root, split: str = "train", transform=None, num_classes: int = 7, val_fraction: float = 0.05,
              val_seed: int = 0, on_bad_image=None) -> ImageFiles:
    """AffectNet in the release's layout; "test" is AffectNet's validation set (the paper's numbers).

    root/train_set/images/<id>.jpg   root/train_set/train_annotations_7class.txt ("<id>.jpg <label>")
    root/valid_set/images/<id>.jpg   root/valid_set/valid_annotations_7class.txt (8class for 8 classes)
    The files count 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt;
    labels are mapped to CLASSES order through labels.AFFECTNET_TO_CLASSES.
    """
    if num_classes not in (7, 8):
        raise UserError(f"AffectNet comes with 7 or 8 classes, got {num_classes}")
    root = _require_dir(root, "AffectNet")
    _check_split(split, ("train", "val", "test"))
    folder, stem = ("valid_set", "valid") if split == "test" else ("train_set", "train")
    label_file = root / folder / f"{stem}_annotations_{num_classes}class.txt"
    rows = _read_label_list(label_file, num_classes, 0, "0001.jpg 3")
    rows = [(name, AFFECTNET_TO_CLASSES[label], number) for name, label, number in rows]
    if split != "test":
        rows = _split_train(rows, split, val_fraction, val_seed, f"AffectNet at {root}")
    image_dir = root / folder / "images"
    paths = [image_dir / name for name, _, _ in rows]
    origins = [f"{label_file}:{number}" for _, _, number in rows]
    _missing_files(paths, origins, image_dir)
    classes = CLASSES if num_classes == 7 else CLASSES_8
    return ImageFiles(paths, [label for _, label, _ in rows], classes, root, origins, transform=transform,
                      on_bad_image=_default_policy(split, on_bad_image),
                      source=f"AffectNet-{num_classes} at {root}, {split}")


# ----------------------------------------------------------------------------- FER2013
FER2013_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}


def find_fer2013_csv(root: Path) -> Path:
    root = Path(root).expanduser()
    if root.is_file():
        return root
    for candidate in ("fer2013.csv", "fer2013/fer2013.csv", "icml_face_data.csv", "fer2013/icml_face_data.csv",
                      "train.csv", "fer2013/train.csv"):
        if (root / candidate).exists():
            return root / candidate
    raise UserError(f"no FER2013 csv under {root}: expected fer2013.csv (Kaggle) or fer2013/train.csv "
                    f"(torchvision's layout); see data/README.md")


def fer2013(root, split: str = "train", transform=None, on_bad_image=None) -> ArrayFaces:
    """FER2013: Kaggle's fer2013.csv (or icml_face_data.csv), or torchvision's fer2013/train.csv.

    Usage column: Training -> "train", PublicTest -> "val", PrivateTest -> "test".
    torchvision's test.csv carries no labels, so that layout offers "train" only.
    Labels (0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral) are mapped
    to CLASSES through labels.FER2013_TO_CLASSES; images are 48 x 48 greyscale, given as RGB.
    """
    _check_split(split, ("train", "val", "test"))
    if not Path(root).expanduser().exists():
        raise UserError(f"FER2013 folder {root} does not exist (see data/README.md for where to put it)")
    path = find_fer2013_csv(root)
    images, targets, origins = [], [], []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = [h.strip().lower() for h in next(reader, [])]
        if "emotion" not in header or "pixels" not in header:
            raise UserError(f"{path}:1: expected a header with 'emotion' and 'pixels' columns, got {header}")
        col_label, col_pixels = header.index("emotion"), header.index("pixels")
        col_usage = header.index("usage") if "usage" in header else None
        if col_usage is None and split != "train":
            raise UserError(f"{path} has no Usage column, so only split='train' exists; for val/test use "
                            f"Kaggle's fer2013.csv")
        for number, row in enumerate(reader, 2):
            if not row:
                continue
            if col_usage is not None and row[col_usage].strip() != FER2013_USAGE[split]:
                continue
            where = f"{path}:{number}"
            try:
                label = int(row[col_label])
                pixels = np.array(row[col_pixels].split(), dtype=np.int64)
            except (ValueError, IndexError):
                raise UserError(f"{where}: cannot read the emotion and 48x48 pixel values") from None
            if not 0 <= label < 7:
                raise UserError(f"{where}: emotion {label} is outside 0..6")
            if pixels.size != 48 * 48 or pixels.min() < 0 or pixels.max() > 255:
                raise UserError(f"{where}: expected 2304 pixel values in 0..255, got {pixels.size}")
            images.append(pixels.astype(np.uint8).reshape(48, 48))
            targets.append(FER2013_TO_CLASSES[label])
            origins.append(where)
    if not images:
        raise UserError(f"{path} holds no {split} rows (Usage {FER2013_USAGE[split]!r})")
    return ArrayFaces(np.stack(images), targets, CLASSES, path.parent, origins, transform=transform,
                      on_bad_image=_default_policy(split, on_bad_image), source=f"FER2013 at {path}, {split}")


# ----------------------------------------------------------------------------- folders
SPLIT_FOLDERS = ("train", "val", "test")


def _images_under(folder: Path) -> list:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def image_folder(root, split: str = "train", transform=None, on_bad_image=None) -> ImageFiles:
    """Any tree of root/<class>/<image> (or root/<split>/<class>/<image>).

    Class folders named after expressions (any of "happy", "Happiness", "angry", ...)
    map to CLASSES (CLASSES_8 when there is a contempt folder), so a model trained on
    RAF-DB reads them right; any other names become the classes, sorted.
    """
    root = _require_dir(root, "image")
    split_dirs = [d for d in SPLIT_FOLDERS if (root / d).is_dir()]
    if split_dirs:
        if split not in split_dirs:
            raise UserError(f"{root} has split folders {split_dirs} but no {split!r}")
        base = root / split
    else:
        if split not in ("train", "all"):
            raise UserError(f"{root} holds one set of class folders (no train/val/test folders), "
                            f"so there is no {split!r} split; use split='train'")
        base = root
    class_dirs = sorted(d for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise UserError(f"no class folders in {base} (expected {base}/<class>/<image>.jpg)")
    canonical = [CLASS_ALIASES.get(d.name.lower()) for d in class_dirs]
    if all(canonical):
        classes = CLASSES_8 if "Contempt" in canonical else CLASSES
        index = {d.name: classes.index(c) for d, c in zip(class_dirs, canonical)}
    else:
        classes = [d.name for d in class_dirs]
        index = {d.name: k for k, d in enumerate(class_dirs)}
    paths, targets = [], []
    for d in class_dirs:
        for p in _images_under(d):
            paths.append(p)
            targets.append(index[d.name])
    if not paths:
        raise UserError(f"no images in {base} (looked for {', '.join(sorted(IMAGE_SUFFIXES))} files in its class "
                        f"folders {[d.name for d in class_dirs][:8]})")
    return ImageFiles(paths, targets, classes, root, transform=transform,
                      on_bad_image=_default_policy(split, on_bad_image), source=f"image folder {base}")
