"""The authors' released weights: the one place that knows the release's key names.

`release_key(our_key)` translates a parameter name of this package into the
release's name. Loading inverts that table for the model at hand and then insists
that the file and the model agree key by key and shape by shape: the release's own
loader silently skips mismatches, which leaves random layers behind.
"""
from __future__ import annotations

import os
import re

import torch
from torch import nn

# ---- our names -> release names ---------------------------------------------------
_TOP = {"image_backbone": "ir_back", "landmark_backbone": "face_landback",
        "image_proj": "ir_layer", "fusion": "pyramid_fuse", "se": "se_block"}
_IR_UNIT = {"bn_in": "res_layer.0", "conv1": "res_layer.1", "act": "res_layer.2",
            "conv2": "res_layer.3", "bn_out": "res_layer.4",
            "shortcut.conv": "shortcut_layer.0", "shortcut.bn": "shortcut_layer.1"}
_IR_HEAD = {"bn_in": "output_layer.0", "linear": "output_layer.3", "bn_out": "output_layer.4"}
_MFN_DOWN = ["conv_23", "conv_34", "conv_45"]
_MFN_RES = ["conv_3", "conv_4", "conv_5"]
_MFN_UNIT = {"expand": "conv", "depthwise": "conv_dw", "project": "project"}
_LEVEL = ["block_l", "block_m", "block_s"]            # levels 3+ get generic names
_BRANCH = {("img", "norm"): "norm1", ("img", "attn"): "attn_img", ("img", "mlp_norm"): "norm2",
           ("img", "mlp"): "mlp1", ("lm", "norm"): "norm3", ("lm", "attn"): "attn_lm",
           ("lm", "mlp_norm"): "norm4", ("lm", "mlp"): "mlp2"}
# The release names the transposed convs crosswise: upsample_m maps m -> l (our
# upsample.0), upsample_s maps s -> m (our upsample.1).
_UPSAMPLE = ["upsample_m", "upsample_s"]
_DOWNSAMPLE = ["downsample_m", "downsample_s"]


def _conv_bn(rest: str) -> str:
    """ConvBN inside MobileFaceNet: our `act` is the release's `prelu`."""
    return re.sub(r"^act\.", "prelu.", rest)


def ir_release_key(key: str, units) -> str:
    """IR-50 key (ours, without prefix) -> the release's / ir50.pth's key."""
    if key.startswith("stem."):
        part, leaf = key[len("stem."):].split(".", 1)
        return f"input_layer.{ {'conv': 0, 'bn': 1, 'act': 2}[part] }.{leaf}"
    m = re.match(r"stages\.(\d+)\.units\.(\d+)\.(.+)$", key) or re.match(r"stage4()\.units\.(\d+)\.(.+)$", key)
    if m:
        stage, unit, rest = m.groups()
        offset = sum(units) if stage == "" else sum(units[: int(stage)])
        for ours, theirs in _IR_UNIT.items():
            if rest.startswith(ours + "."):
                return f"body.{offset + int(unit)}.{theirs}.{rest[len(ours) + 1:]}"
    if key.startswith("embedding_head."):
        part, leaf = key[len("embedding_head."):].split(".", 1)
        return f"{_IR_HEAD[part]}.{leaf}"
    raise KeyError(f"no release name for IR-50 key {key!r}")


def mfn_release_key(key: str) -> str:
    """MobileFaceNet key (ours) -> the release's / mobilefacenet checkpoint's key."""
    if key.startswith("stem."):
        return "conv1." + _conv_bn(key[len("stem."):])
    if key.startswith("stem_dw."):
        return "conv2_dw." + _conv_bn(key[len("stem_dw."):])
    if key.startswith("features."):
        return "conv_6_sep." + _conv_bn(key[len("features."):])
    if key.startswith("landmark_head."):
        rest = key[len("landmark_head."):]
        if rest.startswith("depthwise."):
            return "output_layer.conv_6_dw." + rest[len("depthwise."):]
        return "output_layer." + rest
    m = re.match(r"stages\.(\d+)\.(down|blocks\.(\d+))\.(\w+)\.(.+)$", key)
    if m:
        stage, where, block, unit, rest = m.groups()
        stage = int(stage)
        base = _MFN_DOWN[stage] if where == "down" else f"{_MFN_RES[stage]}.model.{block}"
        return f"{base}.{_MFN_UNIT[unit]}.{_conv_bn(rest)}"
    raise KeyError(f"no release name for MobileFaceNet key {key!r}")


def fusion_release_key(key: str) -> str:
    if key == "learned_cls_token":
        return "cls_token"
    if key == "image_pos_embed":
        return "pos_embed"
    m = re.match(r"downsample\.(\d+)\.(.+)$", key)
    if m:
        k = int(m.group(1))
        return f"{_DOWNSAMPLE[k] if k < 2 else f'downsample_{k}'}.{m.group(2)}"
    m = re.match(r"blocks\.(\d+)\.upsample\.(\d+)\.(.+)$", key)
    if m:
        b, k, rest = m.groups()
        k = int(k)
        return f"blocks.{b}.{_UPSAMPLE[k] if k < 2 else f'upsample_{k}'}.{rest}"
    m = re.match(r"blocks\.(\d+)\.levels\.(\d+)\.(.+)$", key)
    if m:
        b, lvl, rest = m.groups()
        lvl = int(lvl)
        level = _LEVEL[lvl] if lvl < 3 else f"block_{lvl}"
        if rest.startswith("token_mixer."):
            return f"blocks.{b}.{level}.conv.{rest[len('token_mixer.'):]}"
        stream, part, leaf = rest.split(".", 2)
        return f"blocks.{b}.{level}.{_BRANCH[(stream, part)]}.{leaf}"
    if key.startswith("norm."):
        return key
    raise KeyError(f"no release name for fusion key {key!r}")


def release_key(key: str, config) -> str:
    """A POSTER state-dict key (ours) -> the release's key (without `module.`)."""
    top, rest = key.split(".", 1)
    if top == "image_backbone":
        return "ir_back." + ir_release_key(rest, config.ir_units)
    if top == "landmark_backbone":
        return "face_landback." + mfn_release_key(rest)
    if top == "fusion":
        return "pyramid_fuse." + fusion_release_key(rest)
    if top == "head":
        return "head.linear." + rest
    if top == "se":
        return "se_block." + rest.replace("fc1.", "linear1.").replace("fc2.", "linear2.")
    if top in _TOP:
        return f"{_TOP[top]}.{rest}"
    raise KeyError(f"no release name for key {key!r}")


# ---- loading -------------------------------------------------------------------------
class CheckpointMismatch(ValueError):
    """The file and the model disagree on keys or shapes."""


def _listing(keys, limit=8) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def read_checkpoint(source, what: str = "checkpoint"):
    """torch.load with weights_only=True and a clear message for non-checkpoints."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{what} not found: {path}")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except OSError:
            raise
        except Exception as e:  # pickle errors, zip errors, unsafe globals...
            # torch's own message advises weights_only=False; say why we refuse instead.
            why = ("it holds pickled Python objects, which poster-lite never unpickles (that can run code)"
                   if "GLOBAL" in str(e) or "Unsupported global" in str(e) else
                   "not a file of tensors, or cut off")
            raise ValueError(f"{path} is not a readable PyTorch {what}: {why}") from None
    return source


def _strip_module(sd: dict) -> dict:
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}
    return dict(sd)


def _as_state_dict(obj, where: str) -> dict:
    if isinstance(obj, dict):
        for key in ("model_state_dict", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{where} is not a checkpoint: expected a state dict of tensors "
                         "(or a dict with 'model_state_dict' / 'state_dict')")
    return _strip_module(obj)


def _copy_strict(target: nn.Module, file_sd: dict, translate, where: str, hints=(),
                 allow_unused=()) -> list:
    """Copy file tensors into `target` via translate(our_key) -> file_key, strictly.

    Keys matching a regex in `allow_unused` may be in the file without a place in the
    model; they are returned. Anything else missing, extra or misshapen raises.
    """
    ours = target.state_dict()
    wanted = {translate(k): k for k in ours}
    missing = [fk for fk in wanted if fk not in file_sd]
    extra = [fk for fk in file_sd if fk not in wanted]
    unused = [fk for fk in extra if any(re.match(p, fk) for p in allow_unused)]
    extra = [fk for fk in extra if fk not in unused]
    shapes = [f"{fk}: file {tuple(file_sd[fk].shape)} vs model {tuple(ours[k].shape)}"
              for fk, k in wanted.items() if fk in file_sd and file_sd[fk].shape != ours[k].shape]
    if missing or extra or shapes:
        lines = [f"{where} does not fit this model ({type(target).__name__}):"]
        if missing:
            lines.append(f"  {len(missing)} key(s) the model needs are missing from the file: {_listing(missing)}")
        if extra:
            lines.append(f"  {len(extra)} key(s) in the file have no place in the model: {_listing(extra)}")
        if shapes:
            lines.append(f"  {len(shapes)} shape mismatch(es): " + "; ".join(shapes[:6]))
        for test, hint in hints:
            if test(missing, extra, shapes):
                lines.append("  hint: " + hint)
        raise CheckpointMismatch("\n".join(lines))
    with torch.no_grad():
        for fk, k in wanted.items():
            ours[k].copy_(file_sd[fk])
    return unused


_MIXER = re.compile(r"^pyramid_fuse\.blocks\.\d+\.block_\w+\.conv\.")
_BLOCK = re.compile(r"^pyramid_fuse\.blocks\.(\d+)\.")


def _blocks_in(keys) -> int:
    found = [int(m.group(1)) for k in keys if (m := _BLOCK.match(k))]
    return max(found) + 1 if found else 0


def _poster_hints(config, file_keys):
    """(test(missing, extra, shapes), hint) pairs; each test looks only at its own evidence."""
    depth_in_file = _blocks_in(file_keys)
    return [
        (lambda m, e, s: depth_in_file != config.depth,
         f"the file has {depth_in_file} pyramid blocks, this model {config.depth}: build it with "
         f"depth={depth_in_file} (POSTER-T/S/L have 4/6/8)"),
        (lambda m, e, s: e and all(_MIXER.match(k) for k in e),
         "the file has per-block token mixers (RAF-DB release): build the model with mix_tokens=True"),
        (lambda m, e, s: m and all(_MIXER.match(k) for k in m),
         "the file has no token mixers (AffectNet release): build the model with mix_tokens=False"),
        (lambda m, e, s: any(x.startswith("head.linear.weight") for x in s),
         f"the classifier has another number of classes than this model's num_classes={config.num_classes}"),
    ]


def load_official_weights(model: nn.Module, source, verbose: bool = True) -> dict:
    """Load the authors' weights into `model`, strictly. Returns a small report.

    `source` is a path or an already-loaded object:
      - the release's training checkpoint ({'model_state_dict': ...}, keys `module.`-prefixed)
        or a bare state dict in the release's layout (with or without `module.`): the
        whole POSTER;
      - `ir50.pth` (a raw IR-50 state dict): the image backbone; its stage-4 keys have no
        place in POSTER and are reported as unused;
      - `mobilefacenet_model_best.pth.tar` ({'state_dict': ...}): the landmark backbone;
      - the POSTER V2 release's checkpoints and state dicts (same forms): the whole V2
        (models/official_v2.py). A V1 file for a V2 model, or the reverse, is refused by name.
    `model` is a POSTER model, or a bare IRBackbone / MobileFaceNet (pretraining).
    """
    from .ir50 import IRBackbone
    from .mobilefacenet import MobileFaceNet
    from .official_v2 import is_v1_release, is_v2_release, load_v2_release, to_classic_ir_layout
    from .poster import PosterModel
    from .poster_v2 import PosterV2Model

    where = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the given checkpoint"
    # An IR-50 in V2's layout (body1-3) reads as the classic one (body.N).
    sd = to_classic_ir_layout(_as_state_dict(read_checkpoint(source), where))
    keys = list(sd)
    # Whole POSTER V2 files, and whole V1 files offered to a V2 model (refused by name):
    # official_v2.py. Backbone files go through the branches below for either model.
    if is_v2_release(keys) or (isinstance(model, PosterV2Model) and is_v1_release(keys)):
        report = load_v2_release(model, sd, where)
        _mark_landmarks(getattr(model, "landmark_backbone", None), where)
        return report
    report = {"source": where, "unused": []}

    if any(k.startswith(("ir_back.", "pyramid_fuse.", "face_landback.")) for k in keys):
        if not isinstance(model, PosterModel):
            raise TypeError(f"{where} holds a whole POSTER; load it into a POSTER model")
        _copy_strict(model, sd, lambda k: release_key(k, model.config), where, _poster_hints(model.config, sd))
        _mark_landmarks(model.landmark_backbone, where)
        report.update(kind="poster", loaded=len(sd))
    elif any(k.startswith(("input_layer.", "body.")) for k in keys):
        target = model.image_backbone if isinstance(model, (PosterModel, PosterV2Model)) else model
        if not isinstance(target, IRBackbone):
            raise TypeError(f"{where} holds an IR-50; load it into a POSTER model or an IRBackbone")
        # Units past POSTER's three stages (stage 4) are allowed to go unused.
        n_units = sum(len(s.units) for s in target.stages) + (len(target.stage4.units) if target.stage4 else 0)
        later = [rf"body\.{i}\." for i in range(n_units, n_units + 64)]
        if target.embedding_head is None:
            later.append(r"output_layer\.")
        units = [len(s.units) for s in target.stages]
        report["unused"] = _copy_strict(target, sd, lambda k: ir_release_key(k, units), where, allow_unused=later)
        report.update(kind="ir50", loaded=len(sd) - len(report["unused"]))
    elif any(k.startswith(("conv1.", "conv_6_sep.", "conv2_dw.")) for k in keys):
        target = model.landmark_backbone if isinstance(model, (PosterModel, PosterV2Model)) else model
        if not isinstance(target, MobileFaceNet):
            raise TypeError(f"{where} holds a MobileFaceNet; load it into a POSTER model (not image-only) "
                            "or a MobileFaceNet")
        _copy_strict(target, sd, mfn_release_key, where)
        _mark_landmarks(target, where)
        report.update(kind="mobilefacenet", loaded=len(sd))
    else:
        raise ValueError(f"{where} is not a POSTER, IR-50 or MobileFaceNet checkpoint "
                         f"(first keys: {_listing(keys, 4)})")
    if verbose and report["unused"]:
        print(f"load_official_weights: {len(report['unused'])} key(s) of {where} have no place in "
              f"POSTER and were not loaded (IR-50 stage 4 / head): {_listing(report['unused'], 4)}")
    return report


def _mark_landmarks(backbone, where: str) -> None:
    """The landmark backbone now holds trained weights: pl.train checks this (training/landmarks.py)."""
    from ..training.landmarks import mark_loaded
    mark_loaded(backbone, where)


def to_release_state_dict(module: nn.Module, config=None) -> dict:
    """Our state dict renamed into the release's layout (POSTER, IR-50 or MobileFaceNet)."""
    from .ir50 import IRBackbone
    from .mobilefacenet import MobileFaceNet
    from .official_v2 import v2_release_state_dict
    from .poster_v2 import PosterV2Model

    if isinstance(module, PosterV2Model):
        return v2_release_state_dict(module)
    sd = module.state_dict()
    if isinstance(module, IRBackbone):
        units = [len(s.units) for s in module.stages]
        return {ir_release_key(k, units): v for k, v in sd.items()}
    if isinstance(module, MobileFaceNet):
        return {mfn_release_key(k): v for k, v in sd.items()}
    cfg = config or module.config
    return {release_key(k, cfg): v for k, v in sd.items()}
