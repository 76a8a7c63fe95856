"""Every architectural choice of POSTER V2 (POSTER++) in one dataclass, and its presets.

The defaults reproduce the authors' V2 release (`PosterV2_7cls.py`; `num_classes=8`
gives `PosterV2_8cls.py`). V2 keeps POSTER's two backbones but reads THREE scales
from each, lets the landmark maps query the image maps (window cross-attention with
a relative position bias, no landmark-side update), turns each refined map into 49
tokens and ends in a two-block ViT with a learned class token. The backbone fields
are named and defaulted exactly as in `PosterConfig`, so a V2 preset shares the
pretrained backbone files of the V1 preset with the same backbones.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

# The fusion works on the outputs of the backbones' three stages ("scales"): 0 is the
# finest (a 28x28 map at the 112 px backbone input), 2 the coarsest (7x7).
NUM_SCALES = 3
# Every scale becomes a 7x7 grid of tokens (the coarsest map's size).
TOKEN_GRID = 7
FAMILY = "poster-v2"


@dataclass(frozen=True)
class PosterV2Config:
    # 7 = RAF-DB, AffectNet-7, CAER-S; 8 = AffectNet-8 (adds Contempt). The release's
    # 7-class file ignores num_classes (always 7-way); its 8-class file honours it.
    num_classes: int = 7

    # ---- cross-scale fusion (the release's window/attn/ffn 1-3) --------------------
    # Which scales take part, finest first. The release uses all three; (2,) is a
    # single-scale model on the 7x7 maps (V1's scale), the multi-scale ablation of
    # the V2 paper. Every scale adds 49 tokens to the ViT.
    scales: tuple = (0, 1, 2)
    # Heads per scale. The release keeps the head size at 32: 64/2, 128/4, 256/8.
    window_heads: tuple = (2, 4, 8)
    # Attention window side per scale. The release's windows cover the whole map
    # (28, 14, 7 on 28x28, 14x14, 7x7 maps): one window per image, i.e. global
    # attention with a relative position bias. Smaller divisors of the map size give
    # Swin-style local windows (the window-size ablation); the bias table shrinks
    # to (2w-1)^2 entries per head.
    window_sizes: tuple = (28, 14, 7)
    # Hidden width of each scale's MLP = ratio x channels (the release: 4).
    window_mlp_ratio: float = 4.0
    # The window/MLP LayerNorms use torch's default eps (1e-5), unlike the ViT's 1e-6.
    window_norm_eps: float = 1e-5
    # Layer-scale vectors on both residual branches of every scale start at this
    # value, so a freshly built fusion starts close to the LayerNormed image map.
    layer_scale_init: float = 1e-5
    # Stochastic depth per scale (training only): the release takes
    # linspace(0, 0.5, 5)[:3] = 0, 0.125, 0.25, so the coarse scales drop most.
    window_drop_path: tuple = (0.0, 0.125, 0.25)

    # ---- the ViT over the 1 + 49 x len(scales) tokens --------------------------------
    # Token width; every scale's map is embedded to it by strided 3x3 convs (1x1 at 7x7).
    embed_dim: int = 768
    # Number of ViT blocks (the release: 2).
    depth: int = 2
    # ViT heads (the release hard-codes 8: head size 96).
    num_heads: int = 8
    # The ViT's MLP hidden width = ratio x embed_dim (the release: 4).
    mlp_ratio: float = 4.0
    # timm's ViT value for its LayerNorms (1e-5 here moves logits by ~6e-3).
    norm_eps: float = 1e-6
    # Stochastic depth of the ViT blocks rises linearly to this (the release: 0).
    drop_path_rate: float = 0.0
    # Fused attention (scaled_dot_product_attention) in the window and ViT attention.
    # The explicit softmax path runs whenever attention weights are recorded.
    fused_attn: bool = True
    # The release holds layers its forward never runs (inside the ViT: patch_embed,
    # CON1, IRLinear1, IRLinear2, eca_block and a Conv1d per block; 1.62M
    # parameters). Keep them to load the release's checkpoints strictly and to count
    # its 58.3M stored parameters; they never touch the logits.
    release_unused_layers: bool = True

    # ---- input -------------------------------------------------------------
    # The release feeds 224x224 images; both backbones shrink them to 112 first.
    input_size: int = 224
    backbone_size: int = 112
    # `F.interpolate(x, size=112)` without a mode: "nearest", i.e. the even pixels.
    # Bilinear or "nearest-exact" moves the logits by O(1) (POSTER_V2_FACTS.md).
    backbone_resize: str = "nearest"

    # ---- image backbone: IR-50 cut after its third stage (as in PosterConfig) --------
    ir_stem: int = 64
    # The three stage widths are also the three scales' channels (64, 128, 256).
    ir_widths: tuple = (64, 128, 256)
    ir_units: tuple = (3, 4, 14)
    # The face-recognition head (12.85M parameters) is in the release's model and
    # checkpoints but never runs.
    ir_embedding_head: bool = True
    ir_embedding_size: int = 512
    # Stage 4 exists only in the pretraining file `ir50.pth` (same as PosterConfig).
    ir_stage4_width: int = 512
    ir_stage4_units: int = 3

    # ---- landmark backbone: MobileFaceNet, frozen --------------------------------
    mfn_stem: int = 64
    # (out_channels, expansion of the strided unit, residual units, their expansion).
    # The outputs of the first two stages ARE the queries of scales 0 and 1, so their
    # widths must equal ir_widths[0] and ir_widths[1].
    mfn_stages: tuple = ((64, 128, 4, 128), (128, 256, 6, 256), (128, 512, 2, 256))
    # conv_6_sep width; a trainable 3x3 conv maps it to ir_widths[2] for scale 2's queries.
    landmark_channels: int = 512
    num_landmarks: int = 68
    # The release calls model.train() on everything, so the frozen landmark net's
    # BatchNorms normalise with batch statistics and their running statistics drift
    # during training. True keeps them fixed (eval mode), as this package does for V1;
    # False reproduces the release's training behaviour.
    freeze_landmark_bn: bool = True

    # ---------------------------------------------------------------------------
    @property
    def family(self) -> str:
        return FAMILY

    @property
    def map_sizes(self) -> tuple:
        """Side of each scale's maps where image and landmark meet: 28, 14, 7 at 112 px."""
        return tuple(self.backbone_size // 2 ** (s + 2) for s in range(NUM_SCALES))

    @property
    def num_tokens(self) -> int:
        """ViT sequence length: the class token + 49 per scale (148 in the release)."""
        return 1 + TOKEN_GRID * TOKEN_GRID * len(self.scales)

    def validate(self) -> "PosterV2Config":
        problems = []
        if self.num_classes < 2:
            problems.append(f"num_classes must be at least 2, got {self.num_classes}")
        if self.depth < 1:
            problems.append(f"depth must be at least 1, got {self.depth}")
        scales = tuple(self.scales)
        if not scales or len(set(scales)) != len(scales) or list(scales) != sorted(scales) \
                or not all(isinstance(s, int) and 0 <= s < NUM_SCALES for s in scales):
            problems.append(f"scales must be distinct, increasing ids in 0..{NUM_SCALES - 1}, got {scales}")
        lengths = len(problems)
        for name in ("window_heads", "window_sizes", "window_drop_path", "ir_widths", "ir_units"):
            if len(getattr(self, name)) != NUM_SCALES:
                problems.append(f"{name} must have one entry per scale ({NUM_SCALES}), got {getattr(self, name)}")
        if len(self.mfn_stages) != NUM_SCALES:
            problems.append(f"mfn_stages must have {NUM_SCALES} stages, got {len(self.mfn_stages)}")
        per_scale_ok = len(problems) == lengths
        bad_size = self.backbone_size != TOKEN_GRID * 2 ** (NUM_SCALES + 1)
        if bad_size:
            problems.append(f"backbone_size must be {TOKEN_GRID * 2 ** (NUM_SCALES + 1)} (the release's: maps of "
                            f"28, 14, 7, each embedded into a {TOKEN_GRID}x{TOKEN_GRID} token grid), "
                            f"got {self.backbone_size}")
        if per_scale_ok and not bad_size:
            for s in range(NUM_SCALES):
                c, heads, w, m = self.ir_widths[s], self.window_heads[s], self.window_sizes[s], self.map_sizes[s]
                if heads < 1 or c % heads:
                    problems.append(f"window_heads[{s}]={heads} does not divide the scale's {c} channels")
                if w < 1 or m % w:
                    problems.append(f"window_sizes[{s}]={w} does not divide the {m}x{m} map of scale {s}")
                if not 0.0 <= self.window_drop_path[s] < 1.0:
                    problems.append(f"window_drop_path[{s}] must be in [0, 1), got {self.window_drop_path[s]}")
            for s in range(NUM_SCALES - 1):
                if self.mfn_stages[s][0] != self.ir_widths[s]:
                    problems.append(f"mfn_stages[{s}] outputs {self.mfn_stages[s][0]} channels but scale {s}'s "
                                    f"image map has ir_widths[{s}]={self.ir_widths[s]}: the landmark map is "
                                    "used as the queries without a projection, so they must be equal")
        if self.embed_dim % self.num_heads:
            problems.append(f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}")
        if self.backbone_resize not in ("nearest", "bilinear", "nearest-exact", "bicubic", "area"):
            problems.append(f"backbone_resize must be an F.interpolate mode, got {self.backbone_resize!r}")
        if problems:
            raise ValueError("Invalid PosterV2Config:\n  - " + "\n  - ".join(problems))
        return self

    def to_dict(self) -> dict:
        """Plain JSON types; "family" tells a checkpoint reader which config class to rebuild."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = [list(x) if isinstance(x, tuple) else x for x in v]
        return {"family": FAMILY, **d}

    @classmethod
    def from_dict(cls, d: dict) -> "PosterV2Config":
        d = dict(d)
        family = d.pop("family", FAMILY)
        if family != FAMILY:
            raise ValueError(f"this config is of the {family!r} family, not {FAMILY!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"Unknown PosterV2Config fields: {unknown}")
        clean = {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                 for k, v in d.items()}
        return cls(**clean).validate()


# CPU teaching scale with every element of V2 kept: both backbones' three scales,
# per-scale cross-attention with landmark queries and relative position bias over
# the same 28/14/7 maps and heads, the token embedders, the two-block ViT with a class
# token, the SE gate, the head. Its backbones are poster-nano's exactly, so the two
# nano models share their pretrained backbone files (a like-for-like V1 vs V2).
_V2_NANO = dict(
    embed_dim=128,
    num_heads=4,
    release_unused_layers=False,
    input_size=112,
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

V2_PRESETS = {
    # The release: 7 classes (PosterV2_7cls.py); num_classes=8 is PosterV2_8cls.py.
    "poster-v2": dict(),
    "poster-v2-nano": _V2_NANO,
}


def make_v2_config(name: str = "poster-v2", **overrides) -> PosterV2Config:
    """The config of a V2 preset, with any field overridden by keyword."""
    key = name.lower()
    if key not in V2_PRESETS:
        raise ValueError(f"Unknown POSTER V2 model name {name!r}. Known presets: {', '.join(V2_PRESETS)}")
    known = {f.name for f in fields(PosterV2Config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"Unknown PosterV2Config field(s) {unknown}. Known fields: {', '.join(sorted(known))}")
    values = dict(V2_PRESETS[key])
    values.update(overrides)
    for k, v in values.items():
        if isinstance(v, list):
            values[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
    return PosterV2Config(**values).validate()


__all__ = ["PosterV2Config", "V2_PRESETS", "make_v2_config", "NUM_SCALES", "TOKEN_GRID", "FAMILY"]
