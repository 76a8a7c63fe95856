"""Checkpoints: one file each, written atomically, readable with `weights_only=True`.

A poster-lite checkpoint is a `torch.save`d dict of plain types:

    {"format": "poster-lite-checkpoint", "version": 1,
     "meta": "<JSON text>",            # config, classes, channel_order, metrics, epoch ...
     "state_dict": {name: tensor},    # the model's weights
     "training": {...}}               # only in `last`: optimiser, schedule, RNG, history

Nothing in it is a pickled Python object, so `torch.load(..., weights_only=True)`
reads it and a downloaded checkpoint cannot run code. The metadata is JSON text so
that its keys stay simple and anyone can print it.

Writes go to a temporary file in the same folder and are then renamed over the
target (`os.replace`), so a run killed mid-write leaves the previous file intact.

`load_checkpoint` also reads the authors' released POSTER checkpoints: their
class order and channel order follow from the release's facts (RAF-DB: token
mixers, BGR, RAF-DB order; AffectNet: no token mixers, RGB, AffectNet order,
which is reordered into the package's class order on loading). POSTER V2's files
(keys VIT.*, attn1-3.*) load as `poster-v2`: RGB, RAF-DB's order for 7 classes;
AffectNet-8's order is not settled by that release (AffectNet's own is assumed).
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from .data.labels import AFFECTNET_ORDER, CLASSES_8, RAF_DB_ORDER
from .errors import UserError

FORMAT = "poster-lite-checkpoint"
VERSION = 1

# The release's label orders (POSTER_FACTS.md) live with the package's class names in
# data/labels.py; PACKAGE_ORDER is the package's 8-class order (RAF-DB's plus Contempt).
PACKAGE_ORDER = CLASSES_8


def atomic_write(path, write) -> Path:
    """Call write(temp_path), then rename the temporary file onto `path`.

    A failed write (a full disk, no permission) leaves `path` as it was and raises
    OSError naming `path`; torch.save reports a full disk as a RuntimeError, so that too.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OSError(e.errno, f"could not write {path}: {e.strerror}") from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())       # mkstemp makes private files; use the usual mode
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        _remove_quietly(tmp)
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]
        raise OSError(getattr(e, "errno", None) or errno.EIO, f"could not write {path}: {reason}") from None
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def _remove_quietly(path) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def load_weights_only(path, what: str = "checkpoint"):
    """torch.load(path, weights_only=True); a file it refuses is a UserError that says why.

    A file holding pickled Python objects is refused, never loaded another way: unpickling
    can run any code. (torch's own message suggests weights_only=False; we do not.)
    """
    import re

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except OSError:            # unreadable (permissions, a vanished file): the error names the path
        raise
    except Exception as e:     # torch's messages advise weights_only=False: say why instead
        text = str(e)
    found = re.search(r"GLOBAL (\S+)", text)
    if found:
        raise UserError(f"{path} holds a pickled Python object ({found.group(1)}) beside its tensors; "
                        "poster-lite does not load those (unpickling can run code). Ask for the "
                        f"{what} as a plain state dict of tensors, or save it with save_checkpoint")
    cut = " (it looks cut off or corrupt)" if "zip archive" in text else ""
    raise UserError(f"{path} is not a readable {what}: not a PyTorch file of tensors{cut}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model


def default_meta(model: nn.Module) -> dict:
    meta = dict(getattr(model, "meta", None) or {})
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        meta.setdefault("config", config.to_dict())
    meta.setdefault("channel_order", "rgb")
    return meta


def save_checkpoint(model: nn.Module, path, meta: dict | None = None, training: dict | None = None) -> Path:
    """Write `model`'s weights and JSON metadata to `path` (atomically).

    `meta` adds to / overrides the model's own `meta` and config. Give at least
    `classes` so that predictions can be named. `training` is the resumable state
    the engine stores in `last`.
    """
    model = _unwrap(model)
    full_meta = default_meta(model)
    full_meta.update(meta or {})
    try:
        meta_text = json.dumps(full_meta)
    except TypeError as e:
        raise TypeError(f"checkpoint metadata must be JSON-serialisable: {e}") from None
    payload = {"format": FORMAT, "version": VERSION, "meta": meta_text,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    if training is not None:
        payload["training"] = training
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read_checkpoint_file(path) -> dict:
    """The raw contents of a poster-lite checkpoint: {"meta": dict, "state_dict", "training"}."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a checkpoint file "
                        f"(a training run's folder holds the checkpoints `last` and `best`)")
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    obj = load_weights_only(path)
    if not (isinstance(obj, dict) and obj.get("format") == FORMAT):
        return {"release": obj, "path": str(path)}
    if obj.get("version", 0) > VERSION:
        raise UserError(f"{path} was written by a newer poster-lite (checkpoint version "
                        f"{obj['version']}; this one reads up to {VERSION})")
    return {"meta": json.loads(obj["meta"]), "state_dict": obj["state_dict"],
            "training": obj.get("training"), "path": str(path)}


def _release_model(obj, path: str, classes=None, channel_order=None) -> nn.Module:
    """Build and fill a POSTER from the authors' checkpoint; the config follows from its keys."""
    from .models.official import _as_state_dict, load_official_weights
    from .models.official_v2 import is_v2_release
    from .models.poster import build_model

    try:
        sd = _as_state_dict(obj, path)
    except ValueError as e:
        raise UserError(str(e)) from None
    if is_v2_release(sd):
        return _release_v2_model(sd, path, classes, channel_order)
    if not any(k.startswith("pyramid_fuse.") for k in sd):
        raise UserError(f"{path} is neither a poster-lite checkpoint nor a whole POSTER or POSTER V2 from "
                        "the authors' releases (a backbone file like ir50.pth goes through "
                        "load_official_weights)")
    block_ids = {int(k.split(".")[2]) for k in sd if k.startswith("pyramid_fuse.blocks.")}
    mix_tokens = any(k.startswith("pyramid_fuse.blocks.") and ".conv." in k for k in sd)
    num_classes = sd["head.linear.weight"].shape[0]
    model = build_model("poster-l", depth=max(block_ids) + 1, mix_tokens=mix_tokens, num_classes=num_classes)
    load_official_weights(model, sd, verbose=False)
    if mix_tokens:
        # RAF-DB release: token mixers, images read by OpenCV (BGR), RAF-DB's label order.
        names, order = list(RAF_DB_ORDER[:num_classes]), "bgr"
    else:
        # AffectNet release: RGB, AffectNet's label order. Reorder the head's rows into
        # the package's order so its outputs line up with every loader's labels.
        names, order = [c for c in PACKAGE_ORDER if c in AFFECTNET_ORDER[:num_classes]], "rgb"
        rows = torch.tensor([AFFECTNET_ORDER.index(c) for c in names])
        with torch.no_grad():
            model.head.weight.copy_(model.head.weight[rows])
            model.head.bias.copy_(model.head.bias[rows])
    model.meta = {"classes": list(classes or names), "channel_order": channel_order or order,
                  "config": model.config.to_dict(), "source": "authors' release", "metrics": {}}
    return model


def _release_v2_model(sd: dict, path: str, classes=None, channel_order=None) -> nn.Module:
    """A POSTER V2 from the authors' file (POSTER_V2_FACTS.md): RGB input (their loader is PIL's);
    the class count from the head. 7 classes: RAF-DB's label order (the confusion matrix the
    release ships fits RAF-DB's test set in that order; an AffectNet-7 file has the same layout,
    so pass `classes` if yours is one). 8 classes (AffectNet-8): the release does not settle the
    order; AffectNet's own numbering is assumed, as in POSTER's AffectNet release, and the head is
    reordered into the package's order; `meta["label_order"]` says so."""
    import warnings

    from .models import build_model, load_official_weights

    num_classes = sd["VIT.head.linear.weight"].shape[0]
    model = build_model("poster-v2", num_classes=num_classes)
    load_official_weights(model, sd, verbose=False)
    note = "RAF-DB's order, from the release's confusion matrix"
    if num_classes <= len(RAF_DB_ORDER):
        names = list(RAF_DB_ORDER[:num_classes])
    elif num_classes == len(AFFECTNET_ORDER):
        names = list(PACKAGE_ORDER)
        rows = torch.tensor([AFFECTNET_ORDER.index(c) for c in names])
        with torch.no_grad():
            model.head.weight.copy_(model.head.weight[rows])
            model.head.bias.copy_(model.head.bias[rows])
        note = ("not settled by the POSTER V2 release: AffectNet's own numbering (0 Neutral ... 7 Contempt) "
                "assumed; check the predictions on a few faces of known expression")
        if classes is None:
            warnings.warn(f"{path}: an 8-class POSTER V2 (AffectNet-8) file; its label order is {note}",
                          stacklevel=3)
    else:
        names, note = [f"class {i}" for i in range(num_classes)], "unknown: pass classes="
    model.meta = {"classes": list(classes or names), "channel_order": channel_order or "rgb",
                  "config": model.config.to_dict(), "source": "authors' release (POSTER V2)", "metrics": {},
                  "label_order": "given by the caller" if classes else note}
    return model


def load_checkpoint(path, device=None, classes=None, channel_order=None) -> nn.Module:
    """A model (eval mode) from a checkpoint file, with `model.meta` (classes, channel_order, config, metrics).

    Reads poster-lite checkpoints (`DIR/best`, `DIR/last`) of POSTER or POSTER V2, and the
    authors' released whole-POSTER and POSTER V2 checkpoints. `classes` / `channel_order`
    override the metadata.
    """
    from .config import config_from_dict
    from .models import build_model

    contents = read_checkpoint_file(path)
    if "release" in contents:
        model = _release_model(contents["release"], contents["path"], classes, channel_order)
    else:
        meta = contents["meta"]
        if "config" not in meta:
            raise UserError(f"{path} holds no POSTER config in its metadata, so the model cannot be "
                            "rebuilt; load its state_dict into your own module with read_checkpoint_file")
        try:
            config = config_from_dict(meta["config"])
        except (ValueError, TypeError) as e:
            raise UserError(f"{path}: its config cannot be rebuilt: {e}") from None
        model = build_model(config)
        try:
            model.load_state_dict(contents["state_dict"], strict=True)
        except RuntimeError as e:
            raise UserError(f"{path} does not fit the model its config describes: {e}") from None
        from .training.landmarks import mark_from_checkpoint
        mark_from_checkpoint(model, meta.get("landmark_backbone"), path)
        model.meta = dict(meta)
        if classes is not None:
            model.meta["classes"] = list(classes)
        if channel_order is not None:
            model.meta["channel_order"] = channel_order
    model.meta.setdefault("metrics", {})
    if model.meta.get("channel_order") not in ("rgb", "bgr"):
        raise UserError(f"{path}: channel_order must be 'rgb' or 'bgr', got {model.meta.get('channel_order')!r}")
    if device is not None:
        model.to(device)
    return model.eval()
