"""SynthFER: procedurally drawn faces whose expression lives mostly in facial geometry.

Each image is one person (an identity with its own face shape, proportions, skin tone,
hair, maybe glasses or a beard, and a resting face) making one of the seven RAF-DB
expressions, built from FACS action units at a random intensity, then posed (roll,
scale, shift, mild yaw) and spoilt by lighting, background clutter, blur, noise and
occluders. Ground truth per image: label, identity, the 68 iBUG landmarks in pixel
coordinates of the stored image, AU intensities and pose.

Classes overlap the way real ones do: surprise and fear share raised brows, wide eyes
and an open mouth; disgust and anger share lowered brows and tight lids; weak sadness
looks neutral. Some people look sad or cross at rest. `difficulty` (default 1.0)
scales all of that together with the nuisances; 0 gives clean, strong expressions.

Calibration at the default difficulty (`benchmarks/synthfer_bench.py` on the default
set: 5,000 train / 1,000 val / 1,500 test at 112 px, disjoint people; chance 14.3 %;
measured on a 2-vCPU AMD EPYC machine shared with other jobs):
    generation           560-620 images per CPU-second in one process (drawing + JPEG)
    linear on pixels     25.7 % test (train 52.3 %): a softmax over 37,632 raw pixels
    MLP on landmarks     88.3 % test: the true 68 points, normalised for pose; what the
                         geometry alone allows (the classes overlap, so not 100 %)
    small CNN            73.9 % test (train 80.6 %, val 72.0 %): 6 conv layers, 0.14M
                         parameters, 12 epochs from scratch (22 min on the busy machine)
Re-measure after any change to the generator (the set regenerates on its own: its
stamp holds a fingerprint of the generator's code).

Determinism: each image draws from its own generator seeded by (seed, split, index),
identities by (seed, identity id), so the same settings give byte-identical files in
any order and with any number of worker processes. Identity ids of split k are
k * 1,000,000 + j, so splits never share a person.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from .face_geometry import ACTION_UNITS, AU_DESCRIPTIONS, FaceIdentity, au_vector, sample_identity
from .face_render import Nuisances, Pose, render
from .labels import CLASSES, RAF_DB_COUNTS

__all__ = ["ACTION_UNITS", "AU_DESCRIPTIONS", "draw_face", "make_synthfer", "SynthFER", "Knobs",
           "render_sample", "plan_split", "DEFAULT_SET"]

SPLITS = ("train", "val", "test")
IDENTITY_BLOCK = 1_000_000
_STREAM_IDENTITY, _STREAM_SAMPLE, _STREAM_PLAN = 11, 12, 13
STAMP_FILE = "synthfer.json"
_CHUNK = 250          # images per task when several processes share the work
ANNOTATIONS_FILE = "EmoLabel/synthfer_annotations.npz"

# What `load("synthfer")` writes into data/synthfer/: sized for CPU notebooks.
DEFAULT_SET = dict(n_train=5000, n_val=1000, n_test=1500, seed=0, n_identities=300)


@dataclass(frozen=True)
class Knobs:
    """Settings of a SynthFER set (everything but the split sizes and the seed)."""
    size: int = 112                 # image side in pixels
    difficulty: float = 1.0         # 0 clean and easy ... 2 very hard; scales overlap and nuisances
    balance: str = "uniform"        # "uniform", or "raf-db" for RAF-DB's skewed class shares
    label_noise: float = 0.0        # chance that a stored label is replaced by another class
    n_identities: int | None = None # people over all splits; None: one per 25 images
    jpeg_quality: int = 92          # fixed, so files are byte-identical run to run

    @classmethod
    def make(cls, **knobs) -> "Knobs":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(knobs) - known)
        if unknown:
            raise UserError(f"unknown SynthFER setting(s) {unknown}; known: {sorted(known)}")
        k = cls(**knobs)
        if k.balance not in ("uniform", "raf-db"):
            raise UserError(f"balance must be 'uniform' or 'raf-db', got {k.balance!r}")
        if not 32 <= k.size <= 1024:
            raise UserError(f"size must be between 32 and 1024 pixels, got {k.size}")
        if not 0 <= k.difficulty <= 3:
            raise UserError(f"difficulty must be between 0 and 3, got {k.difficulty}")
        if not 0 <= k.label_noise < 1:
            raise UserError(f"label_noise must be in [0, 1), got {k.label_noise}")
        if k.n_identities is not None and k.n_identities < 1:
            raise UserError(f"n_identities must be positive, got {k.n_identities}")
        return k


# ----------------------------------------------------------------------------- expressions
# Each class is a list of (share, {AU: (weight, probability of being present)}): the
# usual EMFACS combinations, a few variants where people differ (open or closed smile,
# shouting or pressed-lips anger).
EXPRESSIONS = {
    "Surprise": [(0.85, {"AU1": (1.0, 1.0), "AU2": (0.9, 1.0), "AU5": (0.8, 0.9), "AU25": (0.8, 1.0),
                         "AU26": (0.9, 1.0)}),
                 (0.15, {"AU1": (1.0, 1.0), "AU2": (1.0, 1.0), "AU5": (0.9, 1.0)})],
    "Fear": [(1.0, {"AU1": (0.9, 1.0), "AU2": (0.5, 0.7), "AU4": (0.6, 0.9), "AU5": (0.9, 0.9),
                    "AU7": (0.3, 0.5), "AU20": (0.9, 0.9), "AU25": (0.8, 0.8), "AU26": (0.4, 0.6)})],
    "Disgust": [(1.0, {"AU9": (0.9, 0.9), "AU10": (0.8, 0.9), "AU4": (0.4, 0.6), "AU15": (0.5, 0.6),
                       "AU17": (0.5, 0.5), "AU7": (0.3, 0.5), "AU25": (0.4, 0.4), "AU6": (0.3, 0.3)})],
    "Happiness": [(0.5, {"AU6": (0.8, 0.9), "AU12": (1.0, 1.0)}),
                  (0.5, {"AU6": (0.9, 0.9), "AU12": (1.0, 1.0), "AU25": (0.8, 1.0), "AU26": (0.35, 0.6)})],
    "Sadness": [(1.0, {"AU1": (0.9, 0.95), "AU4": (0.5, 0.8), "AU15": (0.9, 0.9), "AU17": (0.5, 0.5),
                       "AU7": (0.2, 0.3)})],
    "Anger": [(0.7, {"AU4": (1.0, 1.0), "AU5": (0.5, 0.5), "AU7": (0.8, 0.9), "AU23": (0.8, 0.8),
                     "AU17": (0.4, 0.5)}),
              (0.3, {"AU4": (1.0, 1.0), "AU5": (0.6, 0.6), "AU7": (0.7, 0.8), "AU10": (0.6, 0.8),
                     "AU20": (0.3, 0.5), "AU25": (0.8, 1.0), "AU26": (0.5, 1.0)})],
    "Neutral": [(1.0, {})],
}
# Whose AUs leak into whose: the pairs the FER literature finds confused.
CONFUSABLE = {"Surprise": ("Fear",), "Fear": ("Surprise", "Sadness"), "Disgust": ("Anger",),
              "Happiness": ("Surprise", "Disgust"), "Sadness": ("Neutral", "Fear", "Anger"),
              "Anger": ("Disgust", "Sadness"), "Neutral": ("Sadness", "Anger", "Happiness")}


def _prototype(name: str, rng: np.random.Generator) -> dict:
    variants = EXPRESSIONS[name]
    shares = np.array([share for share, _ in variants])
    return variants[int(rng.choice(len(variants), p=shares / shares.sum()))][1]


def sample_expression(name: str, rng: np.random.Generator, difficulty: float = 1.0) -> np.ndarray:
    """AU intensities (ACTION_UNITS order) for one face of class `name`."""
    aus = np.zeros(len(ACTION_UNITS))
    strength = rng.uniform(float(np.clip(0.75 - 0.35 * difficulty, 0.05, 0.9)), 1.0)
    for au, (weight, present) in _prototype(name, rng).items():
        if rng.uniform() < present:
            aus[ACTION_UNITS.index(au)] = weight * strength * rng.uniform(0.75, 1.2)
    if rng.uniform() < 0.3 * difficulty:
        other = CONFUSABLE[name][int(rng.integers(len(CONFUSABLE[name])))]
        leak = rng.uniform(0.15, 0.5)
        for au, (weight, _present) in _prototype(other, rng).items():
            k = ACTION_UNITS.index(au)
            aus[k] = max(aus[k], weight * leak * strength)
    aus += np.abs(rng.normal(0, 0.07 * difficulty, len(aus)))
    return np.clip(aus, 0, 1.5)


def sample_pose(rng: np.random.Generator, difficulty: float = 1.0) -> Pose:
    d = difficulty
    return Pose(roll=float(np.clip(rng.normal(0, 6 * d), -20, 20)), yaw=float(rng.uniform(-14, 14) * min(d, 1.5)),
                scale=float(rng.uniform(1 - 0.08 * d, 1 + 0.06 * d)),
                dx=float(rng.normal(0, 0.025 * d)), dy=float(rng.normal(0, 0.025 * d)))


def sample_nuisances(rng: np.random.Generator, difficulty: float = 1.0) -> Nuisances:
    d = difficulty
    occluded = rng.uniform() < 0.12 * d
    grey = rng.uniform(40, 220)
    return Nuisances(
        background=tuple(0.5 * rng.uniform(30, 230, 3) + 0.5 * grey),
        clutter=int(rng.integers(0, 1 + round(5 * d))),
        light=float(rng.uniform(0, 0.45) * min(d, 1.5)), light_angle=float(rng.uniform(0, 360)),
        brightness=float(rng.uniform(1 - 0.22 * d, 1 + 0.12 * d)),
        color_cast=tuple(1 + rng.normal(0, 0.04 * d, 3)),
        blur=float(rng.uniform(0.3, 0.9)) if rng.uniform() < 0.3 * d else 0.0,
        noise=float(rng.uniform(0, 6 * d)),
        occlusion=str(rng.choice(["hand", "bar", "patch"])) if occluded else "none",
        gaze=tuple(np.clip(rng.normal(0, 0.4, 2), -0.8, 0.8)),
    )


@lru_cache(maxsize=4096)
def person(identity_id: int, seed: int = 0, difficulty: float = 1.0) -> FaceIdentity:
    """The person with this id in a set made with this seed (same id, same face)."""
    rng = np.random.default_rng([seed, _STREAM_IDENTITY, identity_id])
    return sample_identity(rng, resting_strength=min(difficulty, 2.0))


# ----------------------------------------------------------------------------- one image
def draw_face(action_units: dict[str, float] | None = None, identity: int | FaceIdentity = 0,
              pose: dict | None = None, size: int = 112, seed: int = 0, **knobs):
    """One face from explicit AU intensities (0..1, up to 1.5), e.g. {"AU12": 1, "AU6": 0.8}.

    identity: an id (the same person as in a set made with `seed`) or a FaceIdentity.
    pose: any of roll, yaw (degrees), scale, dx, dy (fractions of the image side).
    knobs: nuisances (background, clutter, light, light_angle, brightness, color_cast,
    blur, noise, occlusion, gaze); all off by default, so the face is clean.
    Returns (RGB image size x size x 3 uint8, landmarks 68 x 2 float32 in pixels).
    """
    who = person(int(identity), seed) if isinstance(identity, (int, np.integer)) else identity
    try:
        posed = Pose(**(pose or {}))
        nuisances = Nuisances(**knobs)
    except TypeError as e:
        raise UserError(f"draw_face: {e}; pose keys: roll, yaw, scale, dx, dy; knobs: "
                        f"{', '.join(f.name for f in fields(Nuisances))}") from None
    rng = np.random.default_rng([seed, _STREAM_SAMPLE, 99])
    return render(who, au_vector(action_units), posed, nuisances, size, rng)


def render_sample(split: str, index: int, label: int, identity_id: int, seed: int = 0,
                  knobs: Knobs = Knobs()) -> dict:
    """Sample `index` of a split: everything random comes from (seed, split, index)."""
    rng = np.random.default_rng([seed, _STREAM_SAMPLE, SPLITS.index(split), index])
    who = person(int(identity_id), seed, knobs.difficulty)
    aus = sample_expression(CLASSES[label], rng, knobs.difficulty)
    pose = sample_pose(rng, knobs.difficulty)
    nuisances = sample_nuisances(rng, knobs.difficulty)
    stored = label
    if rng.uniform() < knobs.label_noise:
        stored = int((label + rng.integers(1, len(CLASSES))) % len(CLASSES))
    image, landmarks = render(who, aus, pose, nuisances, knobs.size, rng)
    return dict(image=image, landmarks=landmarks, action_units=aus.astype(np.float32),
                pose=np.array([pose.roll, pose.yaw, pose.scale, pose.dx, pose.dy], np.float32),
                label=stored, true_label=label, identity=int(identity_id),
                occluded=nuisances.occlusion != "none")


# ----------------------------------------------------------------------------- a split
def _class_counts(n: int, balance: str) -> np.ndarray:
    shares = np.ones(len(CLASSES)) if balance == "uniform" else np.array(RAF_DB_COUNTS["train"], float)
    raw = n * shares / shares.sum()
    counts = np.floor(raw).astype(int)
    for k in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[k] += 1
    return counts


def identities_per_split(sizes: dict, n_identities: int | None) -> dict:
    total = sum(sizes.values())
    n_identities = n_identities or max(len(sizes), round(total / 25))
    return {split: max(1, round(n_identities * n / max(total, 1))) for split, n in sizes.items() if n > 0}


def plan_split(split: str, n: int, n_identities: int, seed: int = 0, balance: str = "uniform"):
    """Labels and identity ids of a split's n images (each person gets about n / n_identities)."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; SynthFER has {', '.join(SPLITS)}")
    rng = np.random.default_rng([seed, _STREAM_PLAN, SPLITS.index(split)])
    labels = np.repeat(np.arange(len(CLASSES)), _class_counts(n, balance))
    rng.shuffle(labels)
    people = SPLITS.index(split) * IDENTITY_BLOCK + rng.permutation(n) % max(1, n_identities)
    return labels, people


def _render_many(jobs) -> list:
    split, indices, labels, people, seed, knobs, image_dir = jobs
    out = []
    for index, label, person in zip(indices, labels, people):
        s = render_sample(split, int(index), int(label), int(person), seed, knobs)
        if image_dir is not None:
            ok, jpeg = cv2.imencode(".jpg", s["image"][:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, knobs.jpeg_quality])
            Path(image_dir, f"{_stem(split, index)}_aligned.jpg").write_bytes(jpeg.tobytes())
            s["image"] = None
        out.append(s)
    return out


def _stem(split: str, index: int) -> str:
    return f"{split}_{index + 1:05d}"


def _generate(split, n, n_identities, seed, knobs, image_dir=None, workers=1, progress=None) -> list:
    labels, people = plan_split(split, n, n_identities, seed, knobs.balance)
    chunks = [(split, range(a, min(a + _CHUNK, n)), labels[a:a + _CHUNK], people[a:a + _CHUNK], seed, knobs,
               image_dir) for a in range(0, n, _CHUNK)]
    results = []
    if workers > 1 and len(chunks) > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(workers) as pool:
            for part in pool.map(_render_many, chunks):
                results.extend(part)
                if progress:
                    progress.update(len(part))
    else:
        for chunk in chunks:
            part = _render_many(chunk)
            results.extend(part)
            if progress:
                progress.update(len(part))
    return results


# ----------------------------------------------------------------------------- on disk
def generator_fingerprint() -> str:
    """Hash of the generator's code: a changed generator means a stale set.

    Docstrings and comments are left out (the code is hashed as a syntax tree), so
    editing the documentation does not force a regeneration.
    """
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for name in ("face_geometry.py", "face_render.py", "synthfer.py", "labels.py"):
        tree = ast.parse((here / name).read_text())
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                    and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
        digest.update(ast.dump(tree).encode())
    digest.update(cv2.__version__.encode())
    return digest.hexdigest()[:16]


def _stamp(sizes: dict, seed: int, knobs: Knobs) -> dict:
    return {"generator": generator_fingerprint(), "seed": seed, "sizes": sizes, "knobs": asdict(knobs)}


# ---- which folders SynthFER may write -------------------------------------------------------
# SynthFER writes into a folder only when it is new, empty, or stamped by SynthFER itself,
# and then replaces only EmoLabel/, Image/ and the stamp, after checking that they hold
# nothing it did not write. Its own scratch entries (the lock, a pending stamp, temporary
# folders of an interrupted run) do not make a folder foreign.
LOCK_FILE = ".synthfer.lock"
PENDING_STAMP = ".stamp-pending"
_TMP_PREFIX = ".synthfer-"
_LABEL_FILE = "EmoLabel/list_patition_label.txt"
_OWN_LABEL_FILES = {"list_patition_label.txt", "synthfer_annotations.npz"}


def _is_scratch(name: str) -> bool:
    return name in (LOCK_FILE, PENDING_STAMP) or name.startswith(_TMP_PREFIX)


def _read_json(path: Path):
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and "generator" in data and isinstance(data.get("sizes"), dict) else None


def read_stamp(root):
    """The SynthFER stamp of `root` (its settings and generator), or None if SynthFER did not make it."""
    root = Path(root)
    return _read_json(root / STAMP_FILE) or _read_json(root / PENDING_STAMP)


def _expected_images(root: Path) -> set:
    """Image names any stamp in root (final, pending, the one being replaced) accounts for."""
    names = set()
    for stamp in (_read_json(root / STAMP_FILE), _read_json(root / PENDING_STAMP)):
        for sizes in (stamp or {}).get("sizes"), (stamp or {}).get("previous_sizes"):
            for split, n in (sizes or {}).items():
                if split in SPLITS and isinstance(n, int):
                    names.update(f"{_stem(split, i)}_aligned.jpg" for i in range(n))
    return names


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def foreign_entries(root) -> list:
    """What in `root` SynthFER did not write and would have to replace: [description], empty when safe.

    An unstamped folder may hold only SynthFER's scratch (and `variants/`, the default
    set's folder of other settings, when everything in it is SynthFER's too). A stamped
    one may hold anything beside EmoLabel/, Image/ and the stamp, which SynthFER replaces:
    those must hold only files it wrote, and the label file must be unchanged.
    """
    root = Path(root)
    if not root.exists():
        return []
    if not root.is_dir():
        return [f"{root} is a file"]
    stamp = read_stamp(root)
    if stamp is None:
        found = []
        for entry in sorted(root.iterdir()):
            if _is_scratch(entry.name):
                continue
            if entry.name == "variants" and entry.is_dir() and all(
                    e.is_dir() and not foreign_entries(e) for e in entry.iterdir() if not _is_scratch(e.name)):
                continue
            found.append(str(entry))
        return found
    found = []
    labels = root / "EmoLabel"
    if labels.exists():
        if not labels.is_dir():
            found.append(str(labels))
        else:
            found += [str(p) for p in sorted(labels.rglob("*")) if p.parent != labels or p.name not in _OWN_LABEL_FILES]
            label_file = root / _LABEL_FILE
            written = []        # the label files the stamps vouch for; None: a stamp from before hashes
            for s in (_read_json(root / STAMP_FILE), _read_json(root / PENDING_STAMP)):
                if s:
                    written.append(s.get("labels_sha256"))
                    if s.get("previous_sizes"):
                        written.append(s.get("previous_labels_sha256"))
            if written and None not in written and label_file.is_file() and _sha256(label_file) not in written:
                found.append(f"{label_file} (changed since SynthFER wrote it)")
    images = root / "Image"
    if images.exists():
        if not images.is_dir():
            found.append(str(images))
        else:
            expected, aligned = _expected_images(root), images / "aligned"
            for p in sorted(images.rglob("*")):
                if p == aligned and p.is_dir():
                    continue
                if p.parent != aligned or p.name not in expected or not p.is_file():
                    found.append(str(p))
    return found


def _refuse_foreign(out: Path) -> None:
    found = foreign_entries(out)
    if not found:
        return
    if found == [f"{out} is a file"]:
        raise UserError(f"{out} is a file; SynthFER writes into a folder (a new or empty one)")
    names = [f[len(str(out)) + 1:] if f.startswith(str(out) + os.sep) else f for f in found]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    what = ("is not empty and was not made by SynthFER" if read_stamp(out) is None
            else "holds files SynthFER did not write")
    raise UserError(f"{out} {what} ({shown}); SynthFER writes only into a new or empty folder or one it made "
                    f"itself, and deletes nothing else. Choose another folder (to read a RAF-DB copy use "
                    f"load('raf-db', root=...)), or move those files away yourself.")


@contextmanager
def _locked(folder: Path):
    """Hold `folder`'s lock file: a second process generating into it waits for the first.

    The lock is an OS file lock, released when the holder exits, even by kill -9, so a
    stale lock cannot block anyone; the empty lock file stays (removing it would race).
    """
    with open(folder / LOCK_FILE, "a+") as handle:
        try:
            import fcntl
        except ImportError:                     # Windows
            fcntl = None
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"another process is writing SynthFER into {folder}; waiting for it", file=sys.stderr)
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield
            return
        import msvcrt
        while True:
            try:
                msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)      # retries for 10 s, then raises
                break
            except OSError:
                print(f"another process is writing SynthFER into {folder}; waiting for it", file=sys.stderr)
        try:
            yield
        finally:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)


def _write_json_atomically(path: Path, data: dict) -> None:
    scratch = path.with_name(path.name + ".tmp")
    scratch.write_text(json.dumps(data, indent=2))
    os.replace(scratch, path)


def is_current(root, n_train: int, n_val: int, n_test: int, seed: int = 0, **knobs) -> bool:
    """True when `root` holds a complete set made by this generator with these settings."""
    found = _read_json(Path(root) / STAMP_FILE)
    if found is None:
        return False
    wanted = _stamp(dict(train=n_train, val=n_val, test=n_test), seed, Knobs.make(**knobs))
    return all(found.get(k) == v for k, v in wanted.items())


def setting_differences(root, n_train: int, n_val: int, n_test: int, seed: int = 0, **knobs) -> list:
    """How the settings of the set in `root` differ from these (generator version aside): ["seed 3 (wanted 0)"]."""
    found = _read_json(Path(root) / STAMP_FILE)
    if found is None:
        return []
    wanted = _stamp(dict(train=n_train, val=n_val, test=n_test), seed, Knobs.make(**knobs))
    differences = []
    for key in ("sizes", "knobs"):
        for name, value in wanted[key].items():
            if (found.get(key) or {}).get(name) != value:
                label = f"n_{name}" if key == "sizes" else name
                differences.append(f"{label} {(found.get(key) or {}).get(name)!r} (wanted {value!r})")
    if found.get("seed") != wanted["seed"]:
        differences.append(f"seed {found.get('seed')!r} (wanted {wanted['seed']!r})")
    return differences


def make_synthfer(out_dir, n_train: int, n_val: int, n_test: int, seed: int = 0, workers: int | None = None,
                  progress: bool = True, if_stale: bool = False, **knobs) -> Path:
    """Write a SynthFER set in the RAF-DB layout and return its root.

    out_dir/EmoLabel/list_patition_label.txt   "train_00001.jpg 4" (label 1..7, RAF-DB order)
    out_dir/Image/aligned/train_00001_aligned.jpg
    out_dir/EmoLabel/synthfer_annotations.npz  names, label, true_label, identity,
                                               landmarks (N x 68 x 2 px), action_units, pose
    out_dir/synthfer.json                      settings and generator fingerprint
    Knobs: see `Knobs` (size, difficulty, balance, label_noise, n_identities, jpeg_quality).

    out_dir must be new, empty, or a SynthFER set (then EmoLabel/, Image/ and the stamp
    are replaced, after checking they hold only SynthFER's files); anything else is
    refused with the files that are in the way, and nothing is written. The set is
    built in a temporary folder inside out_dir and moved in when complete, so an
    interrupted run never leaves a half set that looks finished. Processes writing the
    same folder take turns (a file lock); if_stale=True makes a later one keep the set
    the first one wrote when it is current.
    """
    knobs_ = Knobs.make(**knobs)
    sizes = dict(train=int(n_train), val=int(n_val), test=int(n_test))
    if any(n < 0 for n in sizes.values()) or sum(sizes.values()) == 0:
        raise UserError(f"split sizes must be non-negative and not all zero, got {sizes}")
    out = Path(out_dir).expanduser()
    _refuse_foreign(out)                 # before writing anything at all
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the SynthFER folder {out}: {e.strerror or e}") from None
    try:
        with _locked(out):
            _refuse_foreign(out)         # again: another process may have written meanwhile
            if if_stale and is_current(out, *sizes.values(), seed=seed, **asdict(knobs_)):
                return out
            for stale in out.glob(_TMP_PREFIX + "*"):        # left by a run that was killed
                shutil.rmtree(stale, ignore_errors=True)
            _write(out, sizes, seed, knobs_, workers, progress)
    except OSError as e:
        raise UserError(f"writing SynthFER into {out} failed: {e.strerror or e} ({getattr(e, 'filename', '')}); "
                        f"a set it had replaced is kept or the folder is left without one, never half written") \
            from None
    return out


def _write(out: Path, sizes: dict, seed: int, knobs_: Knobs, workers, progress: bool) -> None:
    per_split = identities_per_split(sizes, knobs_.n_identities)
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=out))
    try:
        (tmp / "EmoLabel").mkdir()
        image_dir = tmp / "Image" / "aligned"
        image_dir.mkdir(parents=True)
        from tqdm.auto import tqdm
        bar = tqdm(total=sum(sizes.values()), desc="SynthFER", unit="img", disable=not progress)
        names, rows = [], []
        for split, n in sizes.items():
            if n == 0:
                continue
            samples = _generate(split, n, per_split[split], seed, knobs_, str(image_dir), workers, bar)
            for i, s in enumerate(samples):
                names.append(f"{_stem(split, i)}.jpg")
                rows.append(s)
        bar.close()
        (tmp / _LABEL_FILE).write_text("".join(f"{name} {s['label'] + 1}\n" for name, s in zip(names, rows)))
        np.savez_compressed(
            tmp / ANNOTATIONS_FILE, names=np.array(names), label=np.array([s["label"] for s in rows]),
            true_label=np.array([s["true_label"] for s in rows]), identity=np.array([s["identity"] for s in rows]),
            landmarks=np.stack([s["landmarks"] for s in rows]), action_units=np.stack([s["action_units"] for s in rows]),
            au_names=np.array(ACTION_UNITS), pose=np.stack([s["pose"] for s in rows]),
            pose_names=np.array(["roll", "yaw", "scale", "dx", "dy"]),
            occluded=np.array([s["occluded"] for s in rows]))
        stamp = _stamp(sizes, seed, knobs_)
        stamp["identities"] = per_split
        stamp["labels_sha256"] = _sha256(tmp / _LABEL_FILE)
        stamp["seconds"] = round(time.perf_counter() - started, 2)
        # Swap in the new set. At every moment the folder carries a stamp (final or
        # pending) that accounts for every file in it, so an interrupted swap leaves a
        # folder that SynthFER still recognises as its own and may regenerate.
        previous = read_stamp(out)
        _write_json_atomically(out / PENDING_STAMP, {**stamp, "previous_sizes": (previous or {}).get("sizes"),
                                                     "previous_labels_sha256": (previous or {}).get("labels_sha256")})
        (out / STAMP_FILE).unlink(missing_ok=True)
        for name in ("EmoLabel", "Image"):
            if (out / name).exists():
                shutil.rmtree(out / name)
            (tmp / name).rename(out / name)
        _write_json_atomically(out / STAMP_FILE, stamp)      # written last: the set is complete
        (out / PENDING_STAMP).unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- in memory
def generate(split: str = "train", n: int = 700, seed: int = 0, n_identities: int | None = None,
             workers: int = 1, **knobs) -> dict:
    """A split as arrays, no files: images (n x H x W x 3 uint8), label, true_label, identity,
    landmarks (n x 68 x 2), action_units, pose. Not JPEG-compressed (the files are)."""
    knobs_ = Knobs.make(**knobs)
    n_ids = n_identities or knobs_.n_identities or max(1, round(n / 25))
    rows = _generate(split, n, n_ids, seed, knobs_, None, workers)
    keys = ("label", "true_label", "identity")
    out = {k: np.array([r[k] for r in rows]) for k in keys}
    for k in ("image", "landmarks", "action_units", "pose"):
        out[k] = np.stack([r[k] for r in rows]) if rows else np.zeros((0,))
    out["images"] = out.pop("image")
    return out


def SynthFER(split: str = "train", n: int = 700, seed: int = 0, n_identities: int | None = None,
             transform=None, workers: int = 1, **knobs):
    """An in-memory SynthFER split as a dataset (same interface as `load("synthfer")`)."""
    from .datasets import ArrayFaces
    arrays = generate(split, n, seed, n_identities, workers, **knobs)
    return ArrayFaces(arrays["images"], arrays["label"].tolist(), list(CLASSES), root=None, transform=transform,
                      identities=arrays["identity"].tolist(), landmarks=arrays["landmarks"].astype(np.float32),
                      source=f"SynthFER {split} (in memory, seed {seed})")
