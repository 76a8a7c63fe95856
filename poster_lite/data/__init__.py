"""Data: SynthFER (built in, generated on first use) and loaders for the real FER data sets.

    from poster_lite.data import load, CLASSES
    train = load("synthfer", split="train")           # generates data/synthfer/ once
    big = load("synthfer-224", split="train")         # 50,000 faces at 224 px for a GPU: data/synthfer-224/
    test = load("raf-db", split="test", root="data/raf-basic")

Every data set gives `(image, label)` pairs with an RGB PIL image (or transform(image))
and a label index into CLASSES, plus `classes`, `targets`, `identities`, `landmarks`
and `root`. See data/README.md for the real data sets' folder layouts.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
from dataclasses import asdict
from pathlib import Path

from ..errors import UserError
from .datasets import check_same_classes
from .images import read_image
from .labels import AFFECTNET_TO_CLASSES, CLASSES, CLASSES_8, FER2013_TO_CLASSES
from .subset import Subset, open_data
from .synthfer import DEFAULT_SET, make_synthfer

__all__ = ["CLASSES", "CLASSES_8", "AFFECTNET_TO_CLASSES", "FER2013_TO_CLASSES", "load", "make_synthfer",
           "data_dir", "DATASETS", "read_image", "check_same_classes", "Subset", "open_data", "SYNTHFER_SETS",
           "synthfer_folder"]

# name -> folder under data/ where load() looks when no root is given
DATASETS = {"synthfer": "synthfer", "synthfer-224": "synthfer-224", "raf-db": "raf-basic", "affectnet-7": "affectnet",
            "affectnet-8": "affectnet", "fer2013": "fer2013", "folder": None}
# The built-in sets by name: their default settings (generated into data/<name>/ on first use).
# "synthfer-224" is the paper's input size with 50,000 training faces, for the full-size presets on a GPU.
SET_224 = dict(n_train=50000, n_val=5000, n_test=5000, seed=0, n_identities=2000, size=224)
SYNTHFER_SETS = {"synthfer": DEFAULT_SET, "synthfer-224": SET_224}


def data_dir() -> Path:
    """The data/ folder: $POSTER_LITE_DATA, else the checkout's data/, else ./data."""
    if os.environ.get("POSTER_LITE_DATA"):
        return Path(os.environ["POSTER_LITE_DATA"]).expanduser()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").exists():
        return checkout / "data"
    return Path.cwd() / "data"


def load(name: str, split: str = "train", root=None, transform=None, **kw):
    """A data set by name: "synthfer", "synthfer-224", "raf-db", "affectnet-7", "affectnet-8", "fer2013", "folder".

    root: where the data set lives (default data/<folder>, see DATASETS; "folder" needs one).
    kw for every loader: on_bad_image ("raise" or "skip"; default: skip in train, raise elsewhere).
    Every split of one data set has the same `classes` in the same order (a folder tree
    whose splits differ is refused); `check_same_classes({"train": a, "test": b})`
    checks sets loaded separately.
    raf-db / affectnet: val_fraction, val_seed (how "val" is carved from the train list).
    synthfer, synthfer-224: n_train, n_val, n_test, seed, workers, regenerate, progress and the
    knobs of `synthfer.Knobs` (size, difficulty, balance, label_noise, n_identities). With the
    defaults (SYNTHFER_SETS) the set is data/<name>/; other settings get their own folder
    beneath it. Generation runs in `workers` processes (default: one per usable CPU core).
    A root that holds a SynthFER set is read with that set's settings (regenerated if
    the generator changed since); settings passed that differ from the set's are refused
    unless regenerate=True. SynthFER writes only into a new or empty folder or one it made.
    """
    from . import datasets

    key = str(name).lower()
    if key not in DATASETS:
        raise UserError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    if key in SYNTHFER_SETS:
        return _load_synthfer(key, split, root, transform, **kw)
    if root is None:
        if DATASETS[key] is None:
            raise UserError("load('folder', ...) needs root= the folder of class subfolders")
        root = data_dir() / DATASETS[key]
    if key == "raf-db":
        return _call(datasets.raf_db, name, root, split, transform, **kw)
    if key.startswith("affectnet"):
        return _call(datasets.affectnet, name, root, split, transform, num_classes=int(key[-1]), **kw)
    if key == "fer2013":
        return _call(datasets.fer2013, name, root, split, transform, **kw)
    return _call(datasets.image_folder, name, root, split, transform, **kw)


def _call(loader, name, *args, **kw):
    accepted = set(inspect.signature(loader).parameters)
    unknown = sorted(set(kw) - accepted)
    if unknown:
        raise UserError(f"load({name!r}) does not take {unknown}; it takes "
                        f"{sorted(accepted - {'root', 'split', 'transform', 'num_classes'})}")
    return loader(*args, **kw)


_SET_KEYS = ("n_train", "n_val", "n_test", "seed")


def synthfer_folder(name: str = "synthfer", **settings) -> Path:
    """Where load(name, **settings) keeps a built-in SynthFER set: data/<name>/ for the name's
    own settings (SYNTHFER_SETS), data/<name>/variants/<hash of the settings>/ for others."""
    from .synthfer import Knobs

    defaults = SYNTHFER_SETS[name]
    wanted = {**defaults, **settings}
    set_args = {k: wanted.pop(k) for k in _SET_KEYS}
    knobs = asdict(Knobs.make(**wanted))
    own = {k: v for k, v in defaults.items() if k not in _SET_KEYS}
    root = data_dir() / DATASETS[name]
    if {**set_args, **knobs} != {**{k: defaults[k] for k in _SET_KEYS}, **asdict(Knobs.make(**own))}:
        tag = hashlib.sha1(json.dumps({**set_args, **knobs}, sort_keys=True).encode()).hexdigest()[:10]
        root = root / "variants" / tag
    return root


def _load_synthfer(name, split, root, transform, regenerate=False, workers=None, progress=True, on_bad_image=None,
                   **settings):
    from ..device import usable_cpus
    from .datasets import raf_db
    from .synthfer import Knobs, is_current, read_stamp, setting_differences

    Knobs.make(**{k: v for k, v in settings.items() if k not in _SET_KEYS})   # unknown or bad knobs fail here
    workers = usable_cpus() if workers is None else workers
    managed = root is None
    stamp = None if managed else read_stamp(Path(root).expanduser())
    if stamp is not None:
        # A set already in the given folder: settings not passed are the set's own.
        base = {**{f"n_{split}": n for split, n in stamp["sizes"].items()}, "seed": stamp.get("seed", 0),
                **(stamp.get("knobs") or {})}
    else:
        base = SYNTHFER_SETS[name]
    wanted = {**base, **settings}
    set_args = {k: wanted.pop(k) for k in _SET_KEYS}
    Knobs.make(**wanted)
    if managed:
        root = synthfer_folder(name, **set_args, **wanted)
    root = Path(root).expanduser()
    if regenerate:
        make_synthfer(root, **set_args, workers=workers, progress=progress, **wanted)
    elif not is_current(root, **set_args, **wanted):
        differences = setting_differences(root, **set_args, **wanted)
        if differences and not managed:
            # A set the user made with other settings is theirs: replace it only when asked.
            raise UserError(f"{root} holds a SynthFER set made with other settings: {', '.join(differences)}; "
                            f"pass those settings to read it, regenerate=True to replace it, or another root")
        # Generated here; a stale set of SynthFER's own is regenerated (another process
        # generating the same folder is waited for, and its set kept).
        make_synthfer(root, **set_args, workers=workers, progress=progress, if_stale=True, **wanted)
    return raf_db(root, split, transform, on_bad_image=on_bad_image)
