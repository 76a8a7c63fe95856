"""`poster-lite data check PATH`: which layout a folder holds, counts per split and class, what is wrong."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from ..errors import UserError
from . import datasets

LAYOUTS = ("raf-db", "affectnet", "fer2013", "folder")


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
    if any(d.is_dir() and not d.name.startswith(".") for d in root.iterdir()):
        return "folder"
    raise UserError(f"cannot tell which data set {root} holds: expected EmoLabel/ and Image/aligned/ (RAF-DB), "
                    f"train_set/ and valid_set/ (AffectNet), fer2013.csv (FER2013) or class folders; "
                    f"see data/README.md")


def _candidates(root: Path, layout: str) -> dict:
    """split name -> a function building that split's dataset."""
    if layout == "raf-db":
        label_file = root / datasets.RAF_LABEL_FILE
        has_val = label_file.exists() and any(line.startswith("val_") for line in label_file.open(errors="replace"))
        splits = ("train", "val", "test") if has_val else ("train", "test")
        return {s: (lambda s=s: datasets.raf_db(root, s, val_fraction=0.0)) for s in splits}
    if layout == "affectnet":
        counts = [n for n in (7, 8) if (root / "train_set" / f"train_annotations_{n}class.txt").exists()
                  or (root / "valid_set" / f"valid_annotations_{n}class.txt").exists()]
        return {f"{s} ({n} classes)": (lambda s=s, n=n: datasets.affectnet(root, s, num_classes=n, val_fraction=0.0))
                for n in counts or [7] for s in ("train", "test")}
    if layout == "fer2013":
        return {s: (lambda s=s: datasets.fer2013(root, s)) for s in ("train", "val", "test")}
    split_dirs = [d for d in datasets.SPLIT_FOLDERS if (root / d).is_dir()]
    return {s: (lambda s=s: datasets.image_folder(root, s)) for s in (split_dirs or ["train"])}


def _decode_all(ds, problems: list, notes: dict, progress: bool) -> None:
    from tqdm.auto import tqdm

    for i in tqdm(range(len(ds)), desc="decoding", unit="img", disable=not progress, leave=False):
        try:
            with Image.open(ds.paths[i]) as image:
                mode = image.mode
                image.load()
        except Exception as e:      # report every kind of decoding failure, keep going
            problems.append(f"unreadable image {ds.paths[i]} ({ds.where(i)}): {e}")
            continue
        if mode != "RGB":
            notes[mode] = notes.get(mode, 0) + 1


def check_dataset(path, layout: str = "auto", decode: bool = True, progress: bool = True) -> dict:
    """Build every split a folder offers; count images per class; optionally decode every file.

    Returns {"root", "layout", "splits": {name: {"total", "per_class"}}, "problems": [str],
    "modes": {PIL mode: count of non-RGB files (converted to RGB on loading)}, "decoded": bool}.
    """
    root = Path(path).expanduser()
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in LAYOUTS:
        raise UserError(f"unknown layout {layout!r}; known: auto, {', '.join(LAYOUTS)}")
    report = {"root": str(root), "layout": layout, "splits": {}, "problems": [], "modes": {}, "decoded": decode}
    for name, build in _candidates(root, layout).items():
        try:
            ds = build()
        except UserError as e:
            report["problems"].append(f"{name}: {e}")
            continue
        report["splits"][name] = {"total": len(ds), "per_class": ds.class_counts()}
        if decode and ds.paths is not None:
            _decode_all(ds, report["problems"], report["modes"], progress)
    if not report["splits"] and not report["problems"]:
        report["problems"].append(f"no usable split found in {root}")
    return report


def format_report(report: dict) -> str:
    lines = [f"{report['root']}: {report['layout']} layout"]
    if report["splits"]:
        classes = list(next(iter(report["splits"].values()))["per_class"])
        for split in report["splits"].values():
            classes += [c for c in split["per_class"] if c not in classes]
        width = max(12, max(len(s) for s in report["splits"]) + 1)
        lines.append(f"{'split':<{width}}{'total':>7}" + "".join(f"{c:>11}" for c in classes))
        for name, split in report["splits"].items():
            counts = "".join(f"{split['per_class'].get(c, '-'):>11}" for c in classes)
            lines.append(f"{name:<{width}}{split['total']:>7}{counts}")
    if report["modes"]:
        converted = ", ".join(f"{n} {mode}" for mode, n in sorted(report["modes"].items()))
        lines.append(f"note: non-RGB images (converted to RGB when loaded): {converted}")
    if report["problems"]:
        lines.append(f"{len(report['problems'])} problem(s):")
        lines += [f"  - {p}" for p in report["problems"][:20]]
        if len(report["problems"]) > 20:
            lines.append(f"  ... and {len(report['problems']) - 20} more")
    else:
        lines.append("every image decoded fine" if report["decoded"] else "layout and labels fine (images not decoded)")
    return "\n".join(lines)
