"""`poster-lite data check PATH`: everything wrong with a data set, found in one pass, before training.

    report = check_dataset("data/raf-basic")     # a DataReport (a dict, so json.dumps works)
    print(format_report(report))
    report.ok, report.exit_code                   # no problems; 0, or 2 when there are

It builds every split the folder offers with the loaders' own code (so it finds what
training would trip over), collects every bad label line, missing or unreadable file
and class mismatch instead of stopping at the first, counts images per class and split,
and, when decoding, reads every image through `images.read_image` (the same contract
as the loaders and `predict`) and spots byte-identical images across splits.
`problems` are what would stop or corrupt training; `notes` are worth a look (files
that are ignored, classes without images, duplicates). It reads only; it writes nothing.
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image

from ..errors import UserError
from . import datasets
from .images import IMAGE_SUFFIXES, BadImage, MissingImage, read_image

LAYOUTS = ("raf-db", "affectnet", "fer2013", "folder")
# How many lines of each list the text report shows; the JSON report holds all.
SHOWN = 100


class DataReport(dict):
    """What `check_dataset` found. A dict (prints as JSON) with attribute access.

    root, layout, classes (the reference split's), splits {name: {"total", "per_class"}},
    problems [str] (stop or corrupt training), notes [str] (worth a look), modes
    {PIL mode: count of non-RGB files}, decoded (whether every image was decoded).
    """

    __getattr__ = dict.get

    @property
    def ok(self) -> bool:
        return not self["problems"]

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 2


def detect_layout(root) -> str:
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"{root} does not exist")
    if root.is_file():
        if root.suffix.lower() == ".csv":
            return "fer2013"
        raise UserError(f"{root} is a file; give the data set's folder (or a FER2013 csv)")
    if (root / "EmoLabel").is_dir() or (root / "Image").is_dir():
        return "raf-db"
    if (root / "train_set").is_dir() or (root / "valid_set").is_dir():
        return "affectnet"
    try:
        datasets.find_fer2013_csv(root)
        return "fer2013"
    except UserError:
        pass
    if any(d.is_dir() and datasets._visible(d.name) for d in root.iterdir()):
        return "folder"
    if not any(datasets._visible(p.name) for p in root.iterdir()):
        raise UserError(f"{root} is empty: put a data set there (layouts in data/README.md)")
    loose = [p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    hint = f" ({len(loose)} images lie directly in it: put them in one folder per class)" if loose else ""
    raise UserError(f"cannot tell which data set {root} holds{hint}: expected EmoLabel/ and Image/aligned/ "
                    f"(RAF-DB), train_set/ and valid_set/ (AffectNet), fer2013.csv (FER2013) or class folders; "
                    f"see data/README.md")


def _builders(root: Path, layout: str, scans: dict) -> dict:
    """split name -> function(problems) building that split with the loader's private code."""
    if layout == "raf-db":
        label_file = root / datasets.RAF_LABEL_FILE
        has_val = label_file.is_file() and any(line.startswith("val_") for line in
                                               label_file.open(encoding="utf-8-sig", errors="replace"))
        splits = ("train", "val", "test") if has_val else ("train", "test")
        return {s: (lambda p, s=s: datasets._raf_db(root, s, None, 0.0, 0, None, p)) for s in splits}
    if layout == "affectnet":
        counts = [n for n in (7, 8) if (root / "train_set" / f"train_annotations_{n}class.txt").exists()
                  or (root / "valid_set" / f"valid_annotations_{n}class.txt").exists()]
        return {f"{s} ({n} classes)": (lambda p, s=s, n=n: datasets._affectnet(root, s, None, n, 0.0, 0, None, p))
                for n in counts or [7] for s in ("train", "test")}
    if layout == "fer2013":
        path = datasets.find_fer2013_csv(root)
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            has_usage = "usage" in f.readline().lower()
        splits = ("train", "val", "test") if has_usage else ("train",)
        return {s: (lambda p, s=s: datasets._fer2013(root, s, None, None, p)) for s in splits}
    return {s: (lambda p, s=s: datasets._image_folder(root, s, None, None, p, scans))
            for s in datasets.folder_splits(root)}


def check_dataset(path, layout: str = "auto", decode: bool = True, progress: bool = True) -> DataReport:
    """Everything `poster-lite data check` finds about a data set, in one pass; see the module doc.

    layout: "auto" (detected), or one of LAYOUTS. decode: read every image (else lists only).
    Raises UserError only when the path is missing or no layout fits; every other finding
    goes into the report.
    """
    root = Path(path).expanduser()
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}; known: auto, {', '.join(LAYOUTS)}")
    if not root.exists():
        raise UserError(f"{root} does not exist")
    report = DataReport(root=str(root), layout=layout, classes=[], splits={}, problems=[], notes=[], modes={},
                        decoded=decode)
    problems, notes, built, scans = [], [], {}, {}
    try:
        builders = _builders(root, layout, scans)
    except UserError as e:
        builders = {}
        problems.append(str(e))
    for name, build in builders.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                ds = build(problems)
            except UserError as e:
                problems.append(f"{name}: {e}")
                continue
        notes += [str(w.message) for w in caught]
        built[name] = ds
        report["splits"][name] = {"total": len(ds), "per_class": ds.class_counts()}
        empty = [c for c, n in ds.class_counts().items() if n == 0]
        if empty and len(ds):
            notes.append(f"{name}: no images of {', '.join(empty)}")
    if built:
        report["classes"] = list(next(iter(built.values())).classes)
        by_count = defaultdict(dict)        # AffectNet's 7- and 8-class lists are two data sets
        for name, ds in built.items():
            by_count[name.split(" (")[1] if " (" in name else ""][name] = ds
        for group in by_count.values():
            try:
                datasets.check_same_classes(group)
            except UserError as e:
                problems.append(str(e))
    notes += _layout_notes(root, layout, built, scans)
    if decode:
        _decode_all(built, problems, notes, report["modes"], progress)
    if not built and not problems:
        problems.append(f"no usable split found in {root}")
    report["problems"] = list(dict.fromkeys(problems))      # the splits of one file share its bad lines
    report["notes"] = list(dict.fromkeys(notes))
    return report


def _layout_notes(root: Path, layout: str, built: dict, scans: dict) -> list:
    notes = []
    if layout == "raf-db" and (root / datasets.RAF_IMAGE_DIR).is_dir():
        listed = {os.path.basename(p) for ds in built.values() for p in ds.paths}
        present = [n for n in os.listdir(root / datasets.RAF_IMAGE_DIR) if datasets._visible(n)]
        unlisted = sorted(n for n in present if n not in listed)
        if unlisted and built:
            notes.append(f"{len(unlisted)} file(s) in {root / datasets.RAF_IMAGE_DIR} are in no split's list and "
                         f"are not used, e.g. {', '.join(unlisted[:3])}")
    if layout == "folder":
        hidden = [p for s in scans.values() for p in s.hidden]
        other = [p for s in scans.values() for p in s.other]
        if hidden:
            notes.append(f"{len(hidden)} hidden file(s) skipped (e.g. {hidden[0]})")
        if other:
            kinds = Counter(p.suffix.lower() or "(no extension)" for p in other)
            notes.append(f"{len(other)} file(s) that are not images by their extension are ignored "
                         f"({', '.join(f'{n} {s}' for s, n in kinds.most_common(5))}; e.g. {other[0]})")
    return notes


def _digest_and_mode(ds, i):
    """(sha1 of the image's bytes, PIL mode or None, decoding error or None) of sample i."""
    if ds.paths is None:
        return hashlib.sha1(ds.images[i].tobytes()).hexdigest(), None, None
    where = f"{ds.paths[i]} ({ds.where(i)})" if ds.where(i) != ds.paths[i] else ds.paths[i]
    try:
        with open(ds.paths[i], "rb") as f:
            data = f.read()
    except OSError as e:
        return None, None, f"unreadable image {where}: {e.strerror or e}"
    digest = hashlib.sha1(data).hexdigest()
    try:
        read_image(data, name=where)
        with Image.open(io.BytesIO(data)) as image:
            mode = image.mode
    except (BadImage, MissingImage) as e:
        return digest, None, str(e)
    except Exception as e:      # a decoder failure of any kind is a finding, not a crash of the check
        return digest, None, f"unreadable image {where}: {e}"
    return digest, mode, None


def _decode_all(built: dict, problems: list, notes: list, modes: dict, progress: bool) -> None:
    from tqdm.auto import tqdm

    total = sum(len(ds) for ds in built.values())
    seen = {}           # digest -> [(split, class, where)]
    with tqdm(total=total, desc="decoding", unit="img", disable=not progress, leave=False) as bar:
        for split, ds in built.items():
            for i in range(len(ds)):
                digest, mode, error = _digest_and_mode(ds, i)
                bar.update(1)
                if error:
                    problems.append(error)
                if mode is not None and mode != "RGB":
                    modes[mode] = modes.get(mode, 0) + 1
                if digest is not None:
                    place = ds.paths[i] if ds.paths is not None else ds.where(i)
                    seen.setdefault(digest, []).append((split, ds.classes[ds.targets[i]], place))
    across, conflicting, within = [], [], 0
    for copies in seen.values():
        if len(copies) < 2:
            continue
        if len({split.split(" (")[0] for split, _, _ in copies}) > 1:
            across.append(copies)
        if len({label for _, label, _ in copies}) > 1:
            conflicting.append(copies)
        within += len(copies) - 1
    for copies in across[:SHOWN]:
        notes.append("the same image is in several splits (test images seen in training inflate the numbers): "
                     + "; ".join(f"{s}/{c}: {w}" for s, c, w in copies[:3]))
    if len(across) > SHOWN:
        notes.append(f"... and {len(across) - SHOWN} more images shared between splits")
    for copies in conflicting[:SHOWN]:
        notes.append("the same image carries different labels: " + "; ".join(f"{s}/{c}: {w}" for s, c, w in copies[:3]))
    if within and not across and not conflicting:
        notes.append(f"{within} byte-identical duplicate image(s) (same split and label)")


def format_report(report: DataReport) -> str:
    """The report as text: a table of counts per split and class, then every problem and note."""
    lines = [f"{report['root']}: {report['layout']} layout"]
    if report["splits"]:
        classes = list(report.get("classes") or [])
        for split in report["splits"].values():
            classes += [c for c in split["per_class"] if c not in classes]
        width = max(12, max(len(s) for s in report["splits"]) + 1)
        lines.append(f"{'split':<{width}}{'total':>7}" + "".join(f"{c:>11}" for c in classes))
        for name, split in report["splits"].items():
            counts = "".join(f"{split['per_class'].get(c, '-'):>11}" for c in classes)
            lines.append(f"{name:<{width}}{split['total']:>7}{counts}")
    if report["modes"]:
        converted = ", ".join(f"{n} {mode}" for mode, n in sorted(report["modes"].items()))
        lines.append(f"note: non-RGB images (converted to RGB when read): {converted}")
    for title, items in (("note", report.get("notes") or []), ("problem", report["problems"])):
        if not items:
            continue
        lines.append(f"{len(items)} {title}(s):")
        lines += [f"  - {item}" for item in items[:SHOWN]]
        if len(items) > SHOWN:
            lines.append(f"  ... and {len(items) - SHOWN} more (--json lists all)")
    if not report["problems"]:
        lines.append("every image decoded fine" if report["decoded"] else "layout and labels fine (images not decoded)")
    return "\n".join(lines)
