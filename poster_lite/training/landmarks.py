"""The frozen landmark backbone must hold trained weights before POSTER trains.

POSTER never updates its MobileFaceNet: whatever weights it starts with, it ends with. From
random weights the landmark tokens are a fixed random projection of the face, and the nano
model stays near chance (docs/training.md). So `pl.train` and `poster-lite train` refuse a
model whose frozen landmark backbone was never loaded, and say the two ways out: pretrain it
on SynthFER (`poster-lite pretrain-backbones`), or use the authors' MobileFaceNet file.

"Loaded" is recorded on the backbone module itself, as the attribute `loaded_from` (the
file, or a description), by every loader that fills it: `load_official_weights` (and so
`load_pretrained_backbones`), `load_checkpoint` and the resume of a run. Teaching
experiments that train from random backbones on purpose say so: `allow_random_landmarks=True`
(command line: `--backbones none`).
"""
from __future__ import annotations

from ..errors import UserError

# The attribute of the landmark backbone module that names where its weights came from.
LOADED_FROM = "loaded_from"
# What a checkpoint's meta says when the landmark backbone it was trained with was random.
RANDOM = "random"


def mark_loaded(backbone, source: str) -> None:
    """Record on `backbone` (a MobileFaceNet) that its weights came from `source`."""
    if backbone is not None:
        setattr(backbone, LOADED_FROM, str(source))


def mark_from_checkpoint(model, recorded, path) -> None:
    """After a checkpoint's weights went into `model`: its landmark backbone is now the one the
    checkpoint's run trained with. `recorded` is that run's meta["landmark_backbone"]
    (RANDOM: it was random, so it still is; absent in older checkpoints: the file is named)."""
    backbone = getattr(model, "landmark_backbone", None)
    if backbone is None:
        return
    if recorded == RANDOM:
        if hasattr(backbone, LOADED_FROM):
            delattr(backbone, LOADED_FROM)
    else:
        mark_loaded(backbone, recorded or path)


def landmark_source(model) -> str | None:
    """Where the weights of `model`'s landmark backbone came from: a file or description,
    RANDOM if it was never loaded, None if the model has no landmark backbone."""
    backbone = getattr(model, "landmark_backbone", None)
    if backbone is None:
        return None
    return getattr(backbone, LOADED_FROM, None) or RANDOM


def needs_pretrained_landmarks(model) -> bool:
    """True when `model` has a frozen landmark backbone that was never loaded."""
    backbone = getattr(model, "landmark_backbone", None)
    if backbone is None or any(p.requires_grad for p in backbone.parameters()):
        return False            # no landmark stream, or one that trains (then random is a start)
    return landmark_source(model) == RANDOM


def preset_of(config) -> str:
    """The preset whose backbone cache serves `config` (poster-t/s/l share poster-t's)."""
    from ..pretrain import backbone_folders
    folders = backbone_folders(config)
    return folders[0].name if folders else "poster-l"


def authors_file_fits(config) -> bool:
    """True when the authors' MobileFaceNet file has this config's landmark backbone (the full-size presets)."""
    from ..config import make_config
    release = make_config("poster-l")
    return all(getattr(config, f, None) == getattr(release, f)
               for f in ("mfn_stem", "mfn_stages", "landmark_channels", "num_landmarks"))


def refusal(config, command_line: bool = False) -> str:
    """The message that names the two ways out, with the commands and the exact paths."""
    from ..pretrain import IMAGE_FILE, LANDMARK_FILE, backbone_dir

    preset = preset_of(config)
    folder = backbone_dir(preset)
    load = ("`poster-lite train` finds them there (--backbones auto)" if command_line else
            "then load them: `pl.pretrain.load_pretrained_backbones(model)`")
    lines = ["the model's landmark backbone (MobileFaceNet) is frozen and holds random weights: it never trains, "
             "so POSTER would fuse noise with the image and stay near chance. Load trained weights first:",
             f"  1. pretrain both backbones on SynthFER: `poster-lite pretrain-backbones --model {preset}` "
             f"(writes {folder / IMAGE_FILE} and {folder / LANDMARK_FILE}; {load});"]
    if authors_file_fits(config):
        from ..official_files import default_dest
        lines.append(f"  2. or use the authors' files: `poster-lite fetch-official --only {IMAGE_FILE} {LANDMARK_FILE}` "
                     f"(into {default_dest()}), then " +
                     (f"`--backbones {default_dest()}`" if command_line else
                      f"`pl.pretrain.load_pretrained_backbones(model, \"{default_dest()}\")`") +
                     f"; or copy {IMAGE_FILE} and {LANDMARK_FILE} into {folder}/.")
    else:
        lines.append(f"  (the authors' {LANDMARK_FILE} has the full-size MobileFaceNet: it fits poster-t/s/l, "
                     f"not {preset})")
    lines.append("To train from random backbones on purpose (a teaching experiment), say so: " +
                 ("--backbones none." if command_line else "allow_random_landmarks=True."))
    return "\n".join(lines)


def require_pretrained_landmarks(model, allow_random: bool = False, command_line: bool = False) -> None:
    """UserError (naming the ways out) when `model`'s frozen landmark backbone was never loaded."""
    if allow_random or not needs_pretrained_landmarks(model):
        return
    raise UserError(refusal(model.config, command_line))
