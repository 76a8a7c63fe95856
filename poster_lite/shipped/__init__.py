"""What ships inside the package: small trained models and the ablation grid, read through importlib.resources.

A pip-installed poster-lite (Colab, a fresh venv) has no repository around it, so what the
notebooks need that takes long to make travels in the wheel, in this folder:

- `manifest.json`: for each shipped model its recipe, the command that made it, the date,
  the fingerprint of the SynthFER test split it was scored on and its test accuracy;
- `poster-nano.safetensors`, `image-only-nano.safetensors`, `poster-v2-nano.safetensors`: the
  suite's trained nano models (weights in half precision, BatchNorm statistics in float32);
- `backbones-poster-nano.safetensors`: the pretrained nano backbones (IR-50 identity net and
  MobileFaceNet landmark net) that the nano models start from, in the
  release's key layout (`ir50.` and `mobilefacenet.` prefixes);
- `ablations_nano_frozen.json` and `ablations_nano_paper.json`: notebook 07's early-stopped
  grids (frozen-feature and paper protocol, `make ablations` adds rows and seeds to them);
  `ablations_nano.json`: the earlier grid (a fixed 8 epochs, no early stopping), kept for comparison.

`make zoo` (tools/zoo.py) regenerates the models and the manifest. The accuracy in the
manifest is that of the shipped (half-precision) weights, measured in float32 on the
SynthFER test split whose fingerprint it records, so anyone can check it
(tests/test_shipped.py does).
"""
from __future__ import annotations

import hashlib
import json
from importlib import resources

from ..errors import UserError

MANIFEST = "manifest.json"
ABLATIONS = "ablations_nano.json"                  # the earlier grid: a fixed 8 epochs, not converged
EARLY_STOPPED_GRID = "ablations_nano_frozen.json"  # tools/ablations.py, early stopping, 3 seeds per row
BACKBONE_PREFIXES = {"ir50.pth": "ir50.", "mobilefacenet_model_best.pth.tar": "mobilefacenet."}


def files():
    """This folder as an importlib.resources Traversable (a plain folder for a normal install)."""
    return resources.files(__name__)


def manifest() -> dict:
    """The manifest of the shipped models ({} when none are shipped)."""
    entry = files() / MANIFEST
    return json.loads(entry.read_text(encoding="utf-8")) if entry.is_file() else {}


def ablation_results_file(early_stopped: bool = True):
    """The shipped ablation grid of notebook 07: the early-stopped frozen-feature grid when it
    has trained rows (and `early_stopped`), else the earlier fixed-epoch one."""
    entry = files() / EARLY_STOPPED_GRID
    if early_stopped and entry.is_file() and json.loads(entry.read_text(encoding="utf-8")).get("runs"):
        return entry
    return files() / ABLATIONS


def ablation_results() -> dict:
    """The earlier, fixed-epoch grid (ablations_nano.json)."""
    entry = ablation_results_file(early_stopped=False)
    if not entry.is_file():
        raise UserError(f"the ablation grid {ABLATIONS} is not in this poster-lite ({files()}): "
                        "`make ablations` in a clone of the repository makes it")
    return json.loads(entry.read_text(encoding="utf-8"))


def shipped_models() -> list:
    return sorted(manifest().get("models", {}))


def has_model(name: str) -> bool:
    entry = manifest().get("models", {}).get(name)
    return bool(entry) and (files() / entry["file"]).is_file()


def _read_tensors(file_name: str) -> dict:
    from safetensors.torch import load

    return load((files() / file_name).read_bytes())


def _as_float32(tensors: dict) -> dict:
    return {k: v.float() if v.is_floating_point() else v for k, v in tensors.items()}


def load_model(name: str, device=None):
    """The shipped trained `name` in eval mode, float32, with `model.meta` from the manifest.

    meta: classes, channel_order, config, metrics (the chosen epoch's validation metrics and
    test_accuracy, the manifest's), source ("shipped"), recipe, epoch, batch_size, command, date,
    dataset (its test split's fingerprint), history (the training run's per-epoch rows, for curves)
    and, for runs with early stopping, how the run ended (stopped_by, patience, max_epochs, epochs_trained).
    """
    from ..config import config_from_dict
    from ..model_cache import RUN_ENDING
    from ..models import build_model

    entry = manifest().get("models", {}).get(name)
    if not entry or not (files() / entry["file"]).is_file():
        raise UserError(f"no shipped model {name!r} in this poster-lite; shipped: {shipped_models() or 'none'}")
    model = build_model(config_from_dict(entry["config"]))      # POSTER or POSTER V2, by the config's family
    tensors = _as_float32(_read_tensors(entry["file"]))
    fresh = model.state_dict()
    for key in entry.get("rebuilt_on_load", []):     # index tables the model computes itself (not shipped)
        tensors[key] = fresh[key]
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise UserError(f"the shipped {entry['file']} does not fit its config in {MANIFEST}: {e}") from None
    # Trained from the shipped backbones, so `pl.train` may fine-tune it: the mark that
    # training/landmarks.py reads (its LOADED_FROM; tests/test_shipped.py checks the two agree), set
    # here without importing poster_lite.training, whose imports (scikit-learn, torchvision) would
    # double the time this load takes.
    if model.landmark_backbone is not None:
        model.landmark_backbone.loaded_from = f"shipped {entry['file']}"
    metrics = dict(entry.get("metrics_at_training", {}))
    if "test_accuracy" in entry:
        metrics["test_accuracy"] = entry["test_accuracy"]
    model.meta = {"classes": list(entry["classes"]), "channel_order": entry["channel_order"],
                  "config": entry["config"], "source": "shipped", "metrics": metrics,
                  **{k: entry[k] for k in ("recipe", "epoch", "batch_size", "command", "date", "dataset", "history",
                                              *RUN_ENDING) if k in entry}}
    if device is not None:
        model.to(device)
    return model.eval()


def install_backbones(preset: str = "poster-nano", folder=None) -> dict | None:
    """Write the shipped pretrained backbones of `preset` into its cache folder, in the release's
    file layout (ir50.pth, mobilefacenet_model_best.pth.tar, report.json), unless files are
    already there (nothing is overwritten). Returns their report, or None when none are shipped.
    """
    import torch

    from ..checkpoint import atomic_write
    from ..pretrain import backbone_dir

    entry = manifest().get("backbones", {}).get(preset)
    if not entry or not (files() / entry["file"]).is_file():
        return None
    from pathlib import Path

    out = Path(folder) if folder is not None else backbone_dir(preset)
    present = [n for n in (*BACKBONE_PREFIXES, "report.json") if (out / n).exists()]
    if present:
        raise UserError(f"{out} already holds {present}: not overwriting it with the shipped backbones")
    tensors = _as_float32(_read_tensors(entry["file"]))
    for file_name, prefix in BACKBONE_PREFIXES.items():
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        payload = state if file_name == "ir50.pth" else {"state_dict": state}
        atomic_write(out / file_name, lambda tmp, p=payload: torch.save(p, tmp))
    report = {**entry["report"], "source": f"shipped with poster-lite ({entry['file']})"}
    atomic_write(out / "report.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1)))
    return report


def split_fingerprint(root=None, split: str = "test") -> str:
    """sha256 (first 16 hex digits) of a SynthFER split as a model sees it: each image's name,
    label and decoded pixels, read straight from the files in `root` (default: the data
    folder's synthfer/, which must exist; `pl.data.load("synthfer")` makes it).

    Two sets with the same fingerprint give any model the same accuracy; the manifest records
    the one its accuracies were measured on. Reading the files directly (not through the
    loader) never regenerates a set that an older generator drew.
    """
    from pathlib import Path

    import numpy as np
    from PIL import Image

    from ..data import data_dir

    root = Path(root) if root is not None else data_dir() / "synthfer"
    labels = root / "EmoLabel" / "list_patition_label.txt"
    if not labels.is_file():
        raise UserError(f"no SynthFER set in {root} (missing {labels.relative_to(root)})")
    rows = sorted(line.split() for line in labels.read_text().splitlines() if line.startswith(f"{split}_"))
    if not rows:
        raise UserError(f"{labels} lists no {split} images")
    digest = hashlib.sha256()
    for name, label in rows:
        image = root / "Image" / "aligned" / f"{Path(name).stem}_aligned.jpg"
        with Image.open(image) as im:
            pixels = np.asarray(im.convert("RGB"))
        digest.update(f"{name}:{label}:".encode())
        digest.update(pixels.tobytes())
    return digest.hexdigest()[:16]


def install_shipped_backbones(config) -> dict | None:
    """Install the shipped pretrained backbones that fit `config` (same backbone fields) into their
    preset's cache folder, when that folder holds none. Returns their report, or None."""
    from ..config import make_config
    from ..pretrain import BACKBONE_FIELDS, backbone_dir

    for preset in manifest().get("backbones", {}):
        if all(getattr(make_config(preset), f) == getattr(config, f) for f in BACKBONE_FIELDS):
            folder = backbone_dir(preset)
            if not any((folder / n).exists() for n in (*BACKBONE_PREFIXES, "report.json")):
                return install_backbones(preset, folder)
    return None
