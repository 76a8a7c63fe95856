"""Labelled face images: RAF-DB (and SynthFER, which shares its layout), AffectNet, FER2013, folders.

Every loader returns a `FaceImages` dataset: `ds[i]` is `(image, label)` with an RGB
PIL image (or `transform(image)`), and the attributes `classes`, `targets`,
`identities`, `landmarks`, `root`, `paths`. Labels are always indices of
`labels.CLASSES` (or `CLASSES_8`); each file format's own order is mapped on reading.

Mistakes in the files (no label file, a label out of range, a line cut off, a listed
image that is absent, class folders that differ between splits, a training split with
fewer than two classes) raise `UserError` when the data set is built. The loader reads
the whole list first and reports every such mistake at once (`DataProblems`), each
naming the file and line.

An image that exists but cannot be decoded is found only when it is read: with
`on_bad_image="raise"` that is an error naming the file; with "skip" it is a warning
(with a running count) and the next readable sample takes its place. The default is
"skip" for training splits and "raise" for the splits you report numbers on. Every
image goes through `images.read_image` (the package's one decoding contract: EXIF
orientation, 16-bit, palette, CMYK, transparency, size limits).
"""
from __future__ import annotations

import csv
import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import UserError
from .images import IMAGE_SUFFIXES, UNREADABLE_PHOTO_SUFFIXES, BadImage, array_to_rgb, read_image
from .labels import AFFECTNET_TO_CLASSES, CLASS_ALIASES, CLASSES, CLASSES_8, FER2013_TO_CLASSES

__all__ = ["FaceImages", "ImageFiles", "ArrayFaces", "BadImage", "DataProblems", "raf_db", "affectnet", "fer2013",
           "image_folder", "check_same_classes", "IMAGE_SUFFIXES"]

RAF_LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
RAF_IMAGE_DIR = Path("Image") / "aligned"
SYNTHFER_ANNOTATIONS = Path("EmoLabel") / "synthfer_annotations.npz"
# How many problems an error message lists; `poster-lite data check` lists them all.
SHOWN_PROBLEMS = 10


class DataProblems(UserError):
    """Everything wrong that was found in a data set's lists, all at once (`.problems`)."""

    def __init__(self, what: str, problems):
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            shown = "".join(f"\n  - {p}" for p in self.problems[:SHOWN_PROBLEMS])
            more = (f"\n  ... and {len(self.problems) - SHOWN_PROBLEMS} more (`poster-lite data check` lists all)"
                    if len(self.problems) > SHOWN_PROBLEMS else "")
            message = f"{len(self.problems)} problems in {what}:{shown}{more}"
        super().__init__(message)


def _stop_on(problems: list, what: str) -> None:
    if problems:
        raise DataProblems(what, problems)


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

    def _read(self, index: int):
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
        return read_image(self.paths[index])

    def where(self, index):
        return self._origins[index] if self._origins else self.paths[index]


class ArrayFaces(FaceImages):
    """Samples held in memory as an N x H x W (x 3) uint8 array."""

    def __init__(self, images, targets, classes, root=None, origins=None, **kw):
        super().__init__(classes, targets, root, **kw)
        self.images = images
        self._origins = origins

    def _read(self, index):
        return array_to_rgb(self.images[index], where=self.where(index))

    def where(self, index):
        return self._origins[index] if self._origins else super().where(index)


# ----------------------------------------------------------------------------- checks shared by loaders
def check_same_classes(splits: dict) -> None:
    """Stop, naming the difference, unless every split has the same classes in the same order.

    splits: {"train": dataset, "val": dataset, ...}; anything with a `classes` list.
    """
    named = [(name, list(getattr(ds, "classes", None) or [])) for name, ds in splits.items() if ds is not None]
    if len(named) < 2:
        return
    first, reference = named[0]
    for name, classes in named[1:]:
        if classes == reference:
            continue
        if set(classes) == set(reference):
            raise UserError(f"the {name} split orders its classes {classes}, the {first} split {reference}: "
                            f"the same label index would mean different expressions")
        only_here = [c for c in classes if c not in reference]
        only_there = [c for c in reference if c not in classes]
        raise UserError(f"the {name} split has other classes than the {first} split: "
                        f"{name} only {only_here or 'none'}, {first} only {only_there or 'none'}")


def _at_least_two_classes(targets, classes, split: str, where: str, problems: list, hint: str = "") -> None:
    present = sorted(set(targets))
    if split == "train" and targets and len(present) < 2:
        names = [classes[k] for k in present]
        problems.append(f"the train split of {where} has images of {len(present)} class only ({', '.join(names)}): "
                        f"a classifier needs at least two{hint}")


# ----------------------------------------------------------------------------- helpers
def _require_dir(root, what: str) -> Path:
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


def _read_label_list(path: Path, n_classes: int, first_label: int, fmt: str, problems: list):
    """Lines "<file> <label>" -> [(file, label as read, line number)]; bad lines go to problems."""
    if not path.exists():
        raise UserError(f"label file missing: {path} (expected lines like {fmt!r}; see data/README.md)")
    if path.is_dir():
        raise UserError(f"label file {path} is a folder; expected a text file of lines like {fmt!r}")
    rows, first_seen = [], {}
    # utf-8-sig: a byte-order mark (Windows editors add one) is not part of the first file name.
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            where = f"{path}:{number}"
            if len(parts) != 2:
                problems.append(f"{where}: expected '<file> <label>' like {fmt!r}, got {line.strip()[:80]!r}")
                continue
            name, text = parts
            try:
                label = int(text)
            except ValueError:
                problems.append(f"{where}: label {text!r} is not a whole number")
                continue
            if not first_label <= label < first_label + n_classes:
                problems.append(f"{where}: label {label} is outside {first_label}..{first_label + n_classes - 1} "
                                f"({name})")
                continue
            if os.path.isabs(name) or ".." in Path(name).parts:
                problems.append(f"{where}: file name {name!r} must be relative to the image folder, without '..'")
                continue
            if name in first_seen:
                earlier, earlier_label = first_seen[name]
                same = "again" if earlier_label == label else f"with label {label}, there {earlier_label}"
                problems.append(f"{where}: {name} is listed {same} (first at line {earlier})")
                continue
            first_seen[name] = (number, label)
            rows.append((name, label, number))
    if not rows and not problems:
        raise UserError(f"label file {path} lists no images (expected lines like {fmt!r})")
    return rows


def _resolve_files(names, origins, folder: Path, problems: list) -> list:
    """The path of each listed file (None if absent); absent ones go to problems, all at once.

    A file whose name differs only in case (train_00001_aligned.JPG for .jpg) is found.
    """
    listings = {}

    def listing(directory: Path):
        if directory not in listings:
            try:
                present = os.listdir(directory)
            except (FileNotFoundError, NotADirectoryError):
                present = None
            listings[directory] = None if present is None else (set(present), {p.lower(): p for p in present})
        return listings[directory]

    if listing(folder) is None:
        hint = ""
        if folder.name == "aligned" and (folder.parent / "original").is_dir():
            hint = (f"; {folder.parent / 'original'} exists, but the release trains on the aligned 100 x 100 "
                    f"faces (Image/aligned/, in the same download)")
        raise UserError(f"image folder missing: {folder} (see data/README.md for the layout){hint}")
    paths, missing = [], []
    for name, origin in zip(names, origins):
        path = folder / name
        found = listing(path.parent)
        if found is None:
            missing.append((path, origin))
            paths.append(None)
        elif path.name in found[0]:
            paths.append(path)
        elif path.name.lower() in found[1]:
            paths.append(path.parent / found[1][path.name.lower()])
        else:
            missing.append((path, origin))
            paths.append(None)
    problems.extend(f"listed image not found: {p} (listed at {o})" for p, o in missing)
    return paths


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
    if not 0 <= val_fraction < 1:
        raise UserError(f"val_fraction must be in [0, 1), got {val_fraction}")
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
    problems = []
    ds = _raf_db(root, split, transform, val_fraction, val_seed, on_bad_image, problems)
    _stop_on(problems, f"RAF-DB layout at {root}")
    return ds


def _raf_db(root, split, transform, val_fraction, val_seed, on_bad_image, problems) -> ImageFiles:
    root = _require_dir(root, "RAF-DB")
    _check_split(split, ("train", "val", "test"))
    label_file = root / RAF_LABEL_FILE
    rows = _read_label_list(label_file, len(CLASSES), 1, "train_00001.jpg 5", problems)
    by_split = {"train": [], "val": [], "test": []}
    for name, label, number in rows:
        prefix = name.split("_", 1)[0]
        if prefix not in by_split:
            problems.append(f"{label_file}:{number}: file name {name!r} should start with train_, val_ or test_")
            continue
        by_split[prefix].append((name, label - 1, number))
    if by_split["val"]:
        chosen = by_split[split]
    elif split == "test":
        chosen = by_split["test"]
    else:
        chosen = _split_train(by_split["train"], split, val_fraction, val_seed, f"RAF-DB at {root}")
    if not chosen and not problems:
        raise UserError(f"{label_file} lists no {split} images")
    image_dir = root / RAF_IMAGE_DIR
    origins = [f"{label_file}:{number}" for _, _, number in chosen]
    paths = _resolve_files([f"{Path(name).stem}_aligned.jpg" for name, _, _ in chosen], origins, image_dir, problems)
    keep = [k for k, p in enumerate(paths) if p is not None]
    chosen, paths, origins = [chosen[k] for k in keep], [paths[k] for k in keep], [origins[k] for k in keep]
    identities = landmarks = None
    sidecar = root / SYNTHFER_ANNOTATIONS
    if sidecar.exists():
        identities, landmarks = _synthfer_annotations(sidecar, [name for name, _, _ in chosen], problems)
    targets = [label for _, label, _ in chosen]
    _at_least_two_classes(targets, CLASSES, split, f"RAF-DB layout at {root}", problems)
    return ImageFiles(paths, targets, CLASSES, root, origins, transform=transform,
                      identities=identities, landmarks=landmarks, on_bad_image=_default_policy(split, on_bad_image),
                      source=f"RAF-DB layout at {root}, {split}")


def _synthfer_annotations(sidecar: Path, names: list, problems: list):
    try:
        with np.load(sidecar) as ann:
            position = {str(n): k for k, n in enumerate(ann["names"])}
            unknown = [name for name in names if name not in position]
            if unknown:
                problems.append(f"{sidecar} has no landmarks for {len(unknown)} listed image(s), e.g. {unknown[0]}; "
                                f"the set is damaged: regenerate it")
                return None, None
            rows_at = [position[name] for name in names]
            return ann["identity"][rows_at].tolist(), ann["landmarks"][rows_at]
    except (OSError, ValueError, KeyError, EOFError) as e:
        problems.append(f"{sidecar} cannot be read ({e}); the SynthFER set is damaged: regenerate it")
        return None, None


# ----------------------------------------------------------------------------- AffectNet
def affectnet(root, split: str = "train", transform=None, num_classes: int = 7, val_fraction: float = 0.05,
              val_seed: int = 0, on_bad_image=None) -> ImageFiles:
    """AffectNet in the release's layout; "test" is AffectNet's validation set (the paper's numbers).

    root/train_set/images/<id>.jpg   root/train_set/train_annotations_7class.txt ("<id>.jpg <label>")
    root/valid_set/images/<id>.jpg   root/valid_set/valid_annotations_7class.txt (8class for 8 classes)
    The files count 0 Neutral, 1 Happy, 2 Sad, 3 Surprise, 4 Fear, 5 Disgust, 6 Anger, 7 Contempt;
    labels are mapped to CLASSES order through labels.AFFECTNET_TO_CLASSES.
    """
    problems = []
    ds = _affectnet(root, split, transform, num_classes, val_fraction, val_seed, on_bad_image, problems)
    _stop_on(problems, f"AffectNet at {root}")
    return ds


def _affectnet(root, split, transform, num_classes, val_fraction, val_seed, on_bad_image, problems) -> ImageFiles:
    if num_classes not in (7, 8):
        raise UserError(f"AffectNet comes with 7 or 8 classes, got {num_classes}")
    root = _require_dir(root, "AffectNet")
    _check_split(split, ("train", "val", "test"))
    folder, stem = ("valid_set", "valid") if split == "test" else ("train_set", "train")
    label_file = root / folder / f"{stem}_annotations_{num_classes}class.txt"
    rows = _read_label_list(label_file, num_classes, 0, "0001.jpg 3", problems)
    rows = [(name, AFFECTNET_TO_CLASSES[label], number) for name, label, number in rows]
    if split != "test":
        rows = _split_train(rows, split, val_fraction, val_seed, f"AffectNet at {root}")
    image_dir = root / folder / "images"
    origins = [f"{label_file}:{number}" for _, _, number in rows]
    paths = _resolve_files([name for name, _, _ in rows], origins, image_dir, problems)
    keep = [k for k, p in enumerate(paths) if p is not None]
    classes = CLASSES if num_classes == 7 else CLASSES_8
    targets = [rows[k][1] for k in keep]
    _at_least_two_classes(targets, classes, split, f"AffectNet at {root}", problems)
    return ImageFiles([paths[k] for k in keep], targets, classes, root, [origins[k] for k in keep],
                      transform=transform, on_bad_image=_default_policy(split, on_bad_image),
                      source=f"AffectNet-{num_classes} at {root}, {split}")


# ----------------------------------------------------------------------------- FER2013
FER2013_USAGE = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
_FER_SIDE = 48


def find_fer2013_csv(root) -> Path:
    root = Path(root).expanduser()
    if root.is_file():
        return root
    for candidate in ("fer2013.csv", "fer2013/fer2013.csv", "icml_face_data.csv", "fer2013/icml_face_data.csv",
                      "train.csv", "fer2013/train.csv"):
        if (root / candidate).is_file():
            return root / candidate
    raise UserError(f"no FER2013 csv under {root}: expected fer2013.csv (Kaggle) or fer2013/train.csv "
                    f"(torchvision's layout); see data/README.md")


def fer2013(root, split: str = "train", transform=None, on_bad_image=None) -> ArrayFaces:
    """FER2013: Kaggle's fer2013.csv (or icml_face_data.csv), or torchvision's fer2013/train.csv.

    Usage column: Training -> "train", PublicTest -> "val", PrivateTest -> "test".
    torchvision's test.csv carries no labels, so that layout offers "train" only.
    Labels (0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral) are mapped
    to CLASSES through labels.FER2013_TO_CLASSES; images are 48 x 48 greyscale, given as RGB.
    Every line is checked for its shape (a file cut off mid-row, a stray quote, a Usage
    value that is none of the three); the pixels of the requested split's rows too.
    """
    problems = []
    ds = _fer2013(root, split, transform, on_bad_image, problems)
    _stop_on(problems, f"FER2013 csv under {root}")
    return ds


def _csv_fields(line: str):
    """One csv line -> its fields; a quote that does not close on this line is an error.

    FER2013's rows never span lines, so each line is read on its own: a stray quote then
    spoils one line (which is named) instead of swallowing the rest of the file.
    """
    try:
        return next(csv.reader([line], strict=True))
    except csv.Error as e:
        raise ValueError(f"{e}: a stray quote (\")?") from None
    except StopIteration:
        return []


def _fer2013(root, split, transform, on_bad_image, problems) -> ArrayFaces:
    _check_split(split, ("train", "val", "test"))
    if not Path(root).expanduser().exists():
        raise UserError(f"FER2013 folder {root} does not exist (see data/README.md for where to put it)")
    path = find_fer2013_csv(root)
    images, targets, origins = [], [], []
    usages = {v.lower(): v for v in FER2013_USAGE.values()}
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        first = f.readline()
        try:
            header = [h.strip().lower() for h in _csv_fields(first.rstrip("\r\n"))]
        except ValueError as e:
            raise UserError(f"{path}:1: cannot read the header ({e})") from None
        if "emotion" not in header or "pixels" not in header:
            raise UserError(f"{path}:1: expected a header with 'emotion' and 'pixels' columns, got {header[:6]}")
        col_label, col_pixels = header.index("emotion"), header.index("pixels")
        col_usage = header.index("usage") if "usage" in header else None
        if col_usage is None and split != "train":
            raise UserError(f"{path} has no Usage column, so only split='train' exists; for val/test use "
                            f"Kaggle's fer2013.csv")
        wanted = FER2013_USAGE[split]
        number = 1
        for number, line in enumerate(f, 2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = _csv_fields(line)
            except ValueError as e:
                problems.append(f"{where}: {e}")
                continue
            if len(row) != len(header):
                cut = " (the file ends mid-row: an interrupted download?)" if len(row) < len(header) else ""
                problems.append(f"{where}: {len(row)} fields, the header has {len(header)}{cut}")
                continue
            if col_usage is not None:
                usage = usages.get(row[col_usage].strip().lower())
                if usage is None:
                    problems.append(f"{where}: Usage {row[col_usage].strip()!r} is none of Training, PublicTest, "
                                    f"PrivateTest")
                    continue
                if usage != wanted:
                    continue
            try:
                label = int(row[col_label])
            except ValueError:
                problems.append(f"{where}: emotion {row[col_label]!r} is not a whole number")
                continue
            if not 0 <= label < 7:
                problems.append(f"{where}: emotion {label} is outside 0..6")
                continue
            try:
                pixels = np.array(row[col_pixels].split(), dtype=np.int64)
            except ValueError:
                problems.append(f"{where}: the pixels are not all whole numbers")
                continue
            if pixels.size != _FER_SIDE * _FER_SIDE or pixels.min() < 0 or pixels.max() > 255:
                low, high = (int(pixels.min()), int(pixels.max())) if pixels.size else (0, 0)
                problems.append(f"{where}: expected 2304 pixel values in 0..255, got {pixels.size} in {low}..{high}"
                                + (" (the file ends mid-row?)" if pixels.size < 2304 else ""))
                continue
            images.append(pixels.astype(np.uint8).reshape(_FER_SIDE, _FER_SIDE))
            targets.append(FER2013_TO_CLASSES[label])
            origins.append(where)
    if not images and not problems:
        raise UserError(f"{path} holds no {split} rows (Usage {wanted!r})")
    _at_least_two_classes(targets, CLASSES, split, f"FER2013 at {path}", problems)
    stacked = np.stack(images) if images else np.zeros((0, _FER_SIDE, _FER_SIDE), np.uint8)
    return ArrayFaces(stacked, targets, CLASSES, path.parent, origins, transform=transform,
                      on_bad_image=_default_policy(split, on_bad_image), source=f"FER2013 at {path}, {split}")


# ----------------------------------------------------------------------------- folders
SPLIT_FOLDERS = ("train", "val", "test")
# Folder names that mean a split (compared lower-case).
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test"}
# Folders that tools leave behind: never classes, never searched for images.
IGNORED_FOLDERS = {"__MACOSX", "@eaDir", "__pycache__", ".ipynb_checkpoints"}


def _visible(name: str) -> bool:
    return not name.startswith(".") and name not in IGNORED_FOLDERS


def _subfolders(folder: Path) -> list:
    return sorted((d for d in folder.iterdir() if _visible(d.name) and d.is_dir()), key=lambda d: d.name)


class FolderScan:
    """What one class folder holds: images, other files, hidden files, links to nothing."""

    def __init__(self, folder: Path):
        self.images, self.other, self.hidden, self.broken, self.unreadable_photos = [], [], [], [], []
        seen = set()
        for here, dirs, files in os.walk(folder, followlinks=True):
            real = os.path.realpath(here)
            if real in seen:            # a link back up the tree: walk it once
                dirs[:] = []
                continue
            seen.add(real)
            dirs[:] = sorted(d for d in dirs if _visible(d))
            for name in sorted(files):
                path = Path(here) / name
                suffix = path.suffix.lower()
                if not _visible(name):
                    self.hidden.append(path)        # .DS_Store, ._photo.jpg (macOS), editor backups
                elif not os.path.exists(path):
                    self.broken.append(path)
                elif suffix in IMAGE_SUFFIXES:
                    self.images.append(path)
                elif suffix in UNREADABLE_PHOTO_SUFFIXES:
                    self.unreadable_photos.append(path)
                else:
                    self.other.append(path)


def folder_splits(root: Path) -> dict:
    """{split: folder} of a class-folder tree: its split folders, or {"train": root} without them."""
    dirs = _subfolders(root)
    splits, others = {}, []
    for d in dirs:
        split = SPLIT_ALIASES.get(d.name.lower())
        if split is None:
            others.append(d.name)
        elif split in splits:
            raise UserError(f"{root} has two folders for the {split} split: {splits[split].name} and {d.name}; "
                            f"merge them")
        else:
            splits[split] = d
    if splits and others:
        raise UserError(f"{root} has split folders ({', '.join(d.name for d in splits.values())}) and other "
                        f"folders ({', '.join(others[:6])}): put every class folder inside a split folder, "
                        f"or move the split folders away")
    return splits or {"train": root}


def _folder_classes(split_dirs: dict, problems: list):
    """(classes, {split: {folder name: class index}}) with every split's folders checked against train's."""
    names = {split: [d.name for d in _subfolders(folder)] for split, folder in split_dirs.items()}
    for split, folder in split_dirs.items():
        if not names[split]:
            loose = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            hint = (f"; it holds {len(loose)} image(s) directly: put them in one folder per class"
                    if loose else "")
            raise UserError(f"no class folders in {folder} (expected {folder}/<class>/<image>.jpg){hint}")
    every = [n for split_names in names.values() for n in split_names]
    canonical = {n: CLASS_ALIASES.get(n.lower()) for n in every}
    expressions = all(canonical.values())
    key = (lambda n: canonical[n]) if expressions else (lambda n: n)
    reference_split = "train" if "train" in names else next(iter(names))
    for split, split_names in names.items():
        meanings = Counter(key(n) for n in split_names)
        for meaning, count in meanings.items():
            if count > 1:
                same = [n for n in split_names if key(n) == meaning]
                problems.append(f"{split_dirs[split]}: folders {', '.join(same)} all mean {meaning}; merge them")
    reference = {key(n) for n in names[reference_split]}
    for split, split_names in names.items():
        here = {key(n) for n in split_names}
        if here != reference:
            only_here, only_there = sorted(here - reference), sorted(reference - here)
            case = ""
            if {n.lower() for n in here} == {n.lower() for n in reference}:
                case = " (the names differ in upper/lower case only: rename them to match)"
            problems.append(f"class folders differ between splits: {split_dirs[split]} has "
                            f"{only_here or 'no other'} that {split_dirs[reference_split]} lacks, and lacks "
                            f"{only_there or 'none'}{case}; every split needs the same class folders (an empty "
                            f"folder is fine)")
    if expressions:
        classes = list(CLASSES_8 if "Contempt" in canonical.values() else CLASSES)
        index = {n: classes.index(canonical[n]) for n in every}
    else:
        classes = sorted({n for n in names[reference_split]})
        index = {n: classes.index(n) for n in every if n in classes}
        known = sorted(n for n in every if canonical[n])
        if known:
            unknown = sorted({n for n in every if not canonical[n]})
            warnings.warn(f"class folders {unknown} are not expression names, so every folder is its own class in "
                          f"sorted order ({classes}), not the package's CLASSES: a model trained on RAF-DB or "
                          f"SynthFER would read these labels wrong. Known names: "
                          f"{', '.join(sorted(set(CLASS_ALIASES)))}", stacklevel=3)
    return classes, index


def image_folder(root, split: str = "train", transform=None, on_bad_image=None) -> ImageFiles:
    """Any tree of root/<class>/<image> (or root/<split>/<class>/<image>).

    Class folders named after expressions (any of "happy", "Happiness", "angry", ...)
    map to CLASSES (CLASSES_8 when there is a contempt folder), so a model trained on
    RAF-DB reads them right; any other names become the classes, sorted. Split folders
    may be called train/training, val/valid/validation/dev, test/testing (any case).
    Every split must have the same class folders, and the training split at least two
    classes with images; hidden files and folders (.DS_Store, __MACOSX) are skipped.
    """
    problems = []
    ds = _image_folder(root, split, transform, on_bad_image, problems)
    _stop_on(problems, f"image folder {root}")
    return ds


def _image_folder(root, split, transform, on_bad_image, problems, scans=None) -> ImageFiles:
    root = _require_dir(root, "image")
    split_dirs = folder_splits(root)
    if split not in split_dirs:
        if list(split_dirs) == ["train"] and split_dirs["train"] == root:
            raise UserError(f"{root} holds one set of class folders (no train/val/test folders), "
                            f"so there is no {split!r} split; use split='train'")
        raise UserError(f"{root} has split folders {sorted(split_dirs)} but no {split!r}")
    classes, index = _folder_classes(split_dirs, problems)
    base = split_dirs[split]
    class_dirs = _subfolders(base)
    loose = [p for p in base.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and _visible(p.name)]
    if loose:
        warnings.warn(f"{len(loose)} image(s) directly in {base} (e.g. {loose[0].name}) are in no class folder "
                      f"and are not used", stacklevel=3)
    paths, targets, unreadable = [], [], []
    for d in class_dirs:
        scan = FolderScan(d)
        if scans is not None:
            scans[d] = scan
        problems.extend(f"broken link (it points to nothing): {p}" for p in scan.broken)
        unreadable += scan.unreadable_photos
        if d.name not in index:
            continue
        paths += scan.images
        targets += [index[d.name]] * len(scan.images)
    if unreadable:
        suffixes = Counter(p.suffix.lower() for p in unreadable)
        warnings.warn(f"{len(unreadable)} photo(s) under {base} are in formats this cannot read "
                      f"({', '.join(f'{n} {s}' for s, n in suffixes.items())}), e.g. {unreadable[0]}; "
                      f"convert them to JPEG or PNG to use them", stacklevel=3)
    if not paths and not problems:
        raise UserError(f"no images in {base} (looked for {', '.join(sorted(IMAGE_SUFFIXES))} files in its class "
                        f"folders {[d.name for d in class_dirs][:8]})")
    hint = ""
    if len(class_dirs) == 1 and _subfolders(class_dirs[0]):
        hint = f"; {class_dirs[0]} holds folders of its own: is the data set one level down (root={class_dirs[0]})?"
    _at_least_two_classes(targets, classes, split, f"image folder {root}", problems, hint)
    return ImageFiles(paths, targets, classes, root, transform=transform,
                      on_bad_image=_default_policy(split, on_bad_image), source=f"image folder {base}")
