"""Every architectural choice of POSTER in one dataclass, and the named presets.

The defaults reproduce the authors' RAF-DB release of POSTER (the "large" model:
8 pyramid blocks). Presets only change fields; `build_model` turns a config into
a network without reading any file.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Optional

from .config_v2 import FAMILY as FAMILY_V2
from .config_v2 import V2_PRESETS, PosterV2Config, make_v2_config

IMAGE_TOKEN_MODES = ("official", "spatial")

# Both backbones end in a 7x7 map (IR-50's 14x14 map is regrouped into 7x7 tokens;
# MobileFaceNet's conv_6_sep is 7x7), so each stream carries 49 tokens, plus one
# class token: 50 per stream, 100 in the two-stream sequence.
GRID_CELLS = 7 * 7
TOKENS_PER_STREAM = 1 + GRID_CELLS


@dataclass(frozen=True)
class PosterConfig:
    # 7 = RAF-DB basic and AffectNet-7; AffectNet-8 adds "Contempt".
    num_classes: int = 7
    # Number of pyramid blocks. The paper's POSTER-T / POSTER-S / POSTER use 4 / 6 / 8
    # (the release calls them small / base / large).
    depth: int = 8
    # Embedding sizes of the pyramid levels, largest first. Each smaller level is
    # made from the largest by a strided Conv1d over the EMBEDDING axis, so every
    # size must divide the first one. (512,) is a pyramid of one level.
    pyramid_dims: tuple = (512, 256, 128)
    # All levels use the same number of heads, so head size shrinks with the level
    # (64, 32, 16 at the default dims).
    num_heads: int = 8
    # The release uses hidden = 2 x dim in every MLP (not ViT's 4).
    mlp_ratio: float = 2.0
    # How many leading blocks swap queries between the two streams ("cross fusion").
    # None means all blocks (the paper's choice); 0 is plain self-attention per stream.
    swap_depth: Optional[int] = None
    # The RAF-DB release ends every block with a Conv1d(tokens, tokens, 1) that mixes
    # tokens; the AffectNet release has no such layer (fewer parameters, other keys).
    mix_tokens: bool = True
    # "official": the release's raw reshape of the 256x14x14 map into 49x1024, which
    # is NOT spatial (each token is a slab of ~5 whole channel maps) but is what the
    # released weights expect. "spatial": 2x2 space-to-depth, same shapes, and
    # token i really is the i-th cell of a 7x7 grid over the face.
    image_tokens: str = "official"
    # Drop the landmark stream entirely: the paper's single-stream "image only"
    # baseline (Table 4). The transformer then sees 50 image tokens.
    image_only: bool = False
    # Stochastic depth rises linearly from 0 at the first block to this at the last.
    drop_path_rate: float = 0.1
    # LayerNorm epsilon of the release (timm's ViT value, not torch's 1e-5).
    norm_eps: float = 1e-6
    # Fused attention (scaled_dot_product_attention). The explicit softmax path is
    # used whenever attention weights are being recorded for visualisation.
    fused_attn: bool = True

    # ---- input -------------------------------------------------------------
    # The release feeds 224x224 images; both backbones immediately resize to 112,
    # so 224 buys nothing but matches the published checkpoints and FLOPs.
    input_size: int = 224
    backbone_size: int = 112
    # How the release resizes: `F.interpolate(x, size=112)` with torch's default mode,
    # which is "nearest" (every second pixel), not bilinear. The published test
    # vectors match "nearest" to 1e-14 and bilinear not at all.
    backbone_resize: str = "nearest"

    # ---- image backbone: IR-50 cut after its third stage -----------------------
    ir_stem: int = 64
    ir_widths: tuple = (64, 128, 256)
    ir_units: tuple = (3, 4, 14)
    # The face-recognition embedding head (BN, Dropout, Linear(512*7*7, 512), BN1d)
    # sits in the release's model and counts in the paper's parameter totals
    # (12.85M) although POSTER never runs it. Keep it for parity and for
    # pretraining the backbone on identities; set False to drop the dead weight.
    ir_embedding_head: bool = True
    ir_embedding_size: int = 512
    # The full IR-50 has a fourth stage (512 channels, 3 units, 14x14 -> 7x7) that
    # feeds the embedding head. POSTER drops it; pretraining on identities builds it
    # (the layout of the official `ir50.pth`), and POSTER's loader reports it unused.
    ir_stage4_width: int = 512
    ir_stage4_units: int = 3

    # ---- landmark backbone: MobileFaceNet (frozen inside POSTER) ---------------
    mfn_stem: int = 64
    # (out_channels, expansion of the strided unit, residual units, their expansion)
    mfn_stages: tuple = ((64, 128, 4, 128), (128, 256, 6, 256), (128, 512, 2, 256))
    # conv_6_sep output: the 7x7 feature map whose 49 cells are the landmark tokens.
    # It must equal pyramid_dims[0]: the release feeds it to the transformer as is.
    landmark_channels: int = 512
    num_landmarks: int = 68

    # ---------------------------------------------------------------------------
    @property
    def swap_blocks(self) -> int:
        """Number of leading blocks that swap queries (resolved from `swap_depth`)."""
        if self.image_only:
            return 0
        return self.depth if self.swap_depth is None else self.swap_depth

    @property
    def embed_dim(self) -> int:
        return self.pyramid_dims[0]

    @property
    def image_token_dim(self) -> int:
        # 2x2 cells of the last IR stage per token: 256 x 4 = 1024 in the release.
        return self.ir_widths[-1] * 4

    @property
    def num_tokens(self) -> int:
        return TOKENS_PER_STREAM if self.image_only else 2 * TOKENS_PER_STREAM

    def validate(self) -> "PosterConfig":
        problems = []
        if self.num_classes < 2:
            problems.append(f"num_classes must be at least 2, got {self.num_classes}")
        if self.depth < 1:
            problems.append(f"depth must be at least 1, got {self.depth}")
        dims = tuple(self.pyramid_dims)
        if not dims:
            problems.append("pyramid_dims must name at least one embedding size")
        for i, d in enumerate(dims):
            if d % self.num_heads:
                problems.append(f"pyramid_dims[{i}]={d} is not divisible by num_heads={self.num_heads}")
            if i and (dims[i - 1] % d or dims[i - 1] <= d):
                problems.append(
                    f"pyramid_dims must shrink by whole factors, got {dims[i - 1]} -> {d}")
        if self.swap_depth is not None and not 0 <= self.swap_depth <= self.depth:
            problems.append(f"swap_depth must be in 0..depth={self.depth}, got {self.swap_depth}")
        if self.image_tokens not in IMAGE_TOKEN_MODES:
            problems.append(f"image_tokens must be one of {IMAGE_TOKEN_MODES}, got {self.image_tokens!r}")
        if not self.image_only and dims and self.landmark_channels != dims[0]:
            problems.append(
                f"landmark_channels={self.landmark_channels} must equal pyramid_dims[0]={dims[0]}"
                " (landmark tokens enter the transformer without a projection)")
        if len(self.ir_widths) != len(self.ir_units):
            problems.append("ir_widths and ir_units must have the same length")
        if self.backbone_size % 16:
            problems.append(f"backbone_size must be a multiple of 16 (a 7x7 grid after 4 halvings), got {self.backbone_size}")
        if problems:
            raise ValueError("Invalid PosterConfig:\n  - " + "\n  - ".join(problems))
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = [list(x) if isinstance(x, tuple) else x for x in v]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PosterConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown PosterConfig fields: {unknown}")
        clean = {}
        for k, v in d.items():
            if isinstance(v, list):
                v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
            clean[k] = v
        return cls(**clean).validate()


# The nano preset keeps every element of POSTER (two backbones, 7x7 token grids,
# mean class tokens, a three-level pyramid, swapping cross-fusion, SE gate, head)
# at a size that trains on a laptop CPU: 112 px input, thin backbones, dims 128/64/32.
_NANO = dict(
    depth=2,
    pyramid_dims=(128, 64, 32),
    num_heads=4,
    input_size=112,
    backbone_size=112,
    ir_stem=16,
    ir_widths=(16, 32, 64),
    ir_units=(1, 1, 1),
    ir_embedding_size=128,
    ir_stage4_width=128,
    ir_stage4_units=1,
    mfn_stem=16,
    mfn_stages=((16, 32, 1, 32), (32, 64, 2, 64), (64, 128, 1, 64)),
    landmark_channels=128,
)

PRESETS = {
    "poster-t": dict(depth=4),
    "poster-s": dict(depth=6),
    "poster-l": dict(depth=8),
    # Table 4's single-stream baseline: 8 blocks over image tokens only.
    "image-only": dict(depth=8, image_only=True),
    "poster-nano": _NANO,
    "image-only-nano": dict(_NANO, depth=4, image_only=True),
}


# POSTER V2 has its own config class and presets (config_v2.py). ALL_PRESETS names
# every model this package builds; PRESETS stays POSTER (V1) only, since code that
# iterates it expects PosterConfig fields.
ALL_PRESETS = {**PRESETS, **V2_PRESETS}


def make_config(name: str = "poster-l", **overrides):
    """The config of a preset, with any field overridden by keyword (a PosterV2Config for V2 names)."""
    key = name.lower()
    if key in V2_PRESETS:
        return make_v2_config(key, **overrides)
    if key not in PRESETS:
        raise ValueError(f"Unknown model name {name!r}. Known presets: {', '.join(ALL_PRESETS)}")
    known = {f.name for f in fields(PosterConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"Unknown PosterConfig field(s) {unknown}. Known fields: {', '.join(sorted(known))}")
    values = dict(PRESETS[key])
    values.update(overrides)
    if "pyramid_dims" in values:
        values["pyramid_dims"] = tuple(values["pyramid_dims"])
    return PosterConfig(**values).validate()


def config_from_dict(d: dict):
    """A config saved by `to_dict` (e.g. in a checkpoint's metadata), of either family."""
    if d.get("family") == FAMILY_V2:
        return PosterV2Config.from_dict(d)
    return PosterConfig.from_dict(d)


__all__ = ["PosterConfig", "PosterV2Config", "PRESETS", "ALL_PRESETS", "make_config", "config_from_dict",
           "IMAGE_TOKEN_MODES", "replace"]
