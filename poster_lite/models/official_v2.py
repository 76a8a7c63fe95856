"""The authors' POSTER V2 release: its key names, and strict loading of its checkpoints.

`v2_release_key(our_key, config)` translates a PosterV2Model key into the release's
(`PosterV2_7cls.py` / `PosterV2_8cls.py`, without `module.`). `load_official_weights`
(official.py) sends whole-V2 files here; IR-50 and MobileFaceNet backbone files go
through its backbone branches as for V1, since the backbones are the same modules.
"""
from __future__ import annotations

import re

from .official import _IR_UNIT, CheckpointMismatch, _copy_strict, _listing, ir_release_key, mfn_release_key

# Whole-V2 keys no V1 file has (V1's transformer is `pyramid_fuse.*`).
V2_ONLY_PREFIXES = ("VIT.", "attn1.", "attn2.", "attn3.", "window1.", "ffn1.", "embed_q.", "embed_k.",
                    "embed_v.", "last_face_conv.")
V1_ONLY_PREFIXES = ("pyramid_fuse.",)

_EMBED = ["embed_q", "embed_k", "embed_v"]        # per scale, finest first
_CROSS = {"norm": "window{n}.norm", "attn.kv": "attn{n}.qkv", "attn.proj": "attn{n}.proj",
          "attn.relative_position_bias_table": "attn{n}.relative_position_bias_table",
          "attn.relative_position_index": "attn{n}.relative_position_index",
          "gamma_attn": "ffn{n}.gamma1", "gamma_mlp": "ffn{n}.gamma2",
          "mlp_norm": "ffn{n}.norm", "mlp.fc1": "ffn{n}.mlp.fc1", "mlp.fc2": "ffn{n}.mlp.fc2"}
_UNUSED = {"patch_embed": "VIT.patch_embed.proj", "con1": "VIT.CON1", "ir_linear1": "VIT.IRLinear1",
           "ir_linear2": "VIT.IRLinear2", "eca": "VIT.eca_block.conv"}


def is_v2_release(keys) -> bool:
    return any(k.startswith(V2_ONLY_PREFIXES) for k in keys)


def is_v1_release(keys) -> bool:
    return any(k.startswith(V1_ONLY_PREFIXES) for k in keys)


def ir_v2_release_key(key: str) -> str:
    """IR-50 key (ours) -> the V2 release's: three Sequentials body1-3 instead of V1's one `body`."""
    m = re.match(r"stages\.(\d+)\.units\.(\d+)\.(.+)$", key)
    if m:
        stage, unit, rest = m.groups()
        for ours, theirs in _IR_UNIT.items():
            if rest.startswith(ours + "."):
                return f"body{int(stage) + 1}.{unit}.{theirs}.{rest[len(ours) + 1:]}"
    return ir_release_key(key, ())          # stem and embedding head: same names as V1


def _replace_leading(rest: str, table: dict, n: int) -> str:
    for ours in sorted(table, key=len, reverse=True):        # longest match first
        if rest.startswith(ours + "."):
            return table[ours].format(n=n) + rest[len(ours):]
        if rest == ours:
            return table[ours].format(n=n)
    raise KeyError(rest)


def v2_release_key(key: str, config) -> str:
    """A PosterV2Model state-dict key (ours) -> the release's key (without `module.`)."""
    top, rest = key.split(".", 1)
    try:
        if top == "image_backbone":
            return "ir_back." + ir_v2_release_key(rest)
        if top == "landmark_backbone":
            return "face_landback." + mfn_release_key(rest)
        if top == "landmark_conv":
            return "last_face_conv." + rest
        if top in ("image_downsample", "cross", "token_embed"):
            i, rest = rest.split(".", 1)
            scale = config.scales[int(i)]
            if top == "image_downsample":
                return f"conv{scale + 1}.{rest}"
            if top == "cross":
                return _replace_leading(rest, _CROSS, scale + 1)
            layer, leaf = rest.split(".", 1)
            return f"embed_v.proj.{leaf}" if scale == 2 else f"{_EMBED[scale]}.{layer}.{leaf}"
        if top == "vit":
            return "VIT." + rest            # cls_token, pos_embed, blocks.*, norm: the release's names
        if top == "se":
            return "VIT.se_block." + rest.replace("fc1.", "linear1.").replace("fc2.", "linear2.")
        if top == "head":
            return "VIT.head.linear." + rest
        if top == "unused":
            m = re.match(r"block_convs\.(\d+)\.(.+)$", rest)
            if m:
                return f"VIT.blocks.{m.group(1)}.conv.{m.group(2)}"
            return _replace_leading(rest, _UNUSED, 0)
    except (KeyError, IndexError, ValueError):
        pass
    raise KeyError(f"no V2 release name for key {key!r}")


def to_classic_ir_layout(sd: dict) -> dict:
    """An IR-50 state dict in V2's layout (`body1.*`, `body2.*`, `body3.*`, as the V2 authors'
    own conversion writes it) renamed to the classic one-Sequential layout (`body.N`) that
    `ir50.pth` and POSTER V1 use; any other dict is returned unchanged."""
    pattern = re.compile(r"^(body)(\d)\.(\d+)\.(.+)$")
    if not any(pattern.match(k) for k in sd):
        return sd
    units = {}
    for k in sd:
        if (m := pattern.match(k)):
            units[int(m.group(2))] = max(units.get(int(m.group(2)), 0), int(m.group(3)) + 1)
    offsets = {b: sum(units[c] for c in units if c < b) for b in units}
    out = {}
    for k, v in sd.items():
        m = pattern.match(k)
        out[f"body.{offsets[int(m.group(2))] + int(m.group(3))}.{m.group(4)}" if m else k] = v
    return out


def _v2_hints(config, file_sd):
    """(test(missing, extra, shapes), hint) pairs for a whole-V2 file that does not fit."""
    head = file_sd.get("VIT.head.linear.weight")
    file_scales = sorted(int(k[4]) - 1 for k in file_sd if re.match(r"^attn\d\.qkv\.weight$", k))
    unused = tuple(f"{v}." for v in _UNUSED.values()) + ("VIT.blocks.",)

    def only_unused(keys):
        return keys and all(k.startswith(unused) and (not k.startswith("VIT.blocks.") or ".conv." in k)
                            for k in keys)

    return [
        (lambda m, e, s: head is not None and head.shape[0] != config.num_classes,
         f"the file's classifier has {head.shape[0] if head is not None else '?'} classes, this model "
         f"{config.num_classes}: build it with num_classes={head.shape[0] if head is not None else '?'} "
         "(the AffectNet-8 release has 8; the release's 7-class file is always 7-way)"),
        (lambda m, e, s: tuple(file_scales) != tuple(config.scales),
         f"the file fuses scales {tuple(file_scales)}, this model {tuple(config.scales)}: build it with "
         f"scales={tuple(file_scales)}"),
        (lambda m, e, s: only_unused(e),
         "the file holds the release's never-run ViT layers: build the model with release_unused_layers=True"),
        (lambda m, e, s: only_unused(m),
         "the file lacks the release's never-run ViT layers: build the model with release_unused_layers=False"),
    ]


def load_v2_release(model, sd: dict, where: str) -> dict:
    """Load a whole-model file into a POSTER V2 strictly, or refuse a V1/V2 mix-up by name."""
    from .poster import PosterModel
    from .poster_v2 import PosterV2Model

    keys = list(sd)
    if is_v2_release(keys) and not isinstance(model, PosterV2Model):
        kind = "a POSTER (V1) model" if isinstance(model, PosterModel) else f"a {type(model).__name__}"
        raise CheckpointMismatch(
            f"{where} holds a whole POSTER V2 (POSTER++: keys VIT.*, attn1-3.*, embed_q/k/v.*, e.g. "
            f"{_listing([k for k in keys if k.startswith(V2_ONLY_PREFIXES)], 2)}), but the model is {kind}. "
            "Build a V2 model for it: pl.build_model('poster-v2') (num_classes=8 for the AffectNet-8 release).")
    if is_v1_release(keys):
        raise CheckpointMismatch(
            f"{where} holds a whole POSTER (V1: keys pyramid_fuse.*, e.g. "
            f"{_listing([k for k in keys if k.startswith(V1_ONLY_PREFIXES)], 2)}), but the model is a "
            "POSTER V2. Build a V1 model for it: pl.build_model('poster-l') (depth 4/6/8 for POSTER-T/S/L, "
            "mix_tokens=False for the AffectNet release), or load a V2 checkpoint into this one.")
    config = model.config
    _copy_strict(model, sd, lambda k: v2_release_key(k, config), where, _v2_hints(config, sd))
    return {"source": where, "unused": [], "kind": "poster-v2", "loaded": len(sd)}


def v2_release_state_dict(model) -> dict:
    """A PosterV2Model's state dict in the release's key layout (no `module.` prefix)."""
    return {v2_release_key(k, model.config): v for k, v in model.state_dict().items()}
