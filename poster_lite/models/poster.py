"""POSTER: two backbones, tokens, the cross-fusion pyramid, an SE gate and a head."""
from __future__ import annotations

import contextlib
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PosterConfig, make_config
from .fusion import GivenQueryAttention
from .ir50 import IRBackbone
from .mobilefacenet import MobileFaceNet
from .pyramid import PyramidFusion
from .recording import forward_recording_attention


class SEGate(nn.Module):
    """Squeeze-and-excitation on a vector: x * sigmoid(fc2(relu(fc1(x))))."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """How far each number of x is let through, in (0, 1)."""
        return torch.sigmoid(self.fc2(F.relu(self.fc1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


def image_tokens_from_map(fmap: torch.Tensor, mode: str) -> torch.Tensor:
    """B x C x 14 x 14 -> B x 49 x 4C image tokens.

    "official" is the release's raw reshape of the contiguous tensor: token i is the
    i-th run of 4C numbers in channel-major memory, i.e. ~5 whole channel maps, not
    a place on the face. "spatial" is 2x2 space-to-depth: token i is cell i of a
    7x7 grid, its 4C numbers the channels of that 2x2 patch.
    """
    B, C, H, W = fmap.shape
    if mode == "official":
        return fmap.contiguous().reshape(B, (H // 2) * (W // 2), 4 * C)       # B x 49 x 4C
    x = F.pixel_unshuffle(fmap, 2)                                             # B x 4C x 7 x 7
    return x.flatten(2).transpose(1, 2)                                        # B x 49 x 4C


class PosterModel(nn.Module):
    """images (B x 3 x S x S, S = config.input_size) -> logits (B x num_classes)."""

    def __init__(self, config: PosterConfig):
        super().__init__()
        self.config = cfg = config.validate()
        self.image_backbone = IRBackbone(cfg.ir_stem, cfg.ir_widths, cfg.ir_units,
                                         embedding_head=cfg.ir_embedding_head,
                                         embedding_size=cfg.ir_embedding_size,
                                         stage4_width=cfg.ir_stage4_width, stage4_units=0)
        if cfg.image_only:
            self.landmark_backbone = None
        else:
            self.landmark_backbone = MobileFaceNet(cfg.mfn_stem, cfg.mfn_stages,
                                                   cfg.landmark_channels, cfg.num_landmarks)
            self.landmark_backbone.requires_grad_(False)
        self.image_proj = nn.Linear(cfg.image_token_dim, cfg.embed_dim)
        self.fusion = PyramidFusion(cfg)
        self.se = SEGate(cfg.embed_dim)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        # The frozen landmark stream needs no autograd bookkeeping; explanation
        # methods (Grad-CAM on the landmark net) switch this off while they run.
        self.landmark_no_grad = True
        self._init_transformer()

    def _init_transformer(self):
        for m in [self.image_proj, self.fusion, self.se, self.head]:
            for mod in m.modules() if isinstance(m, nn.Module) else []:
                if isinstance(mod, nn.Linear):
                    nn.init.trunc_normal_(mod.weight, std=0.02)
                    nn.init.zeros_(mod.bias)
                elif isinstance(mod, nn.LayerNorm):
                    nn.init.ones_(mod.weight)
                    nn.init.zeros_(mod.bias)
        nn.init.trunc_normal_(self.fusion.image_pos_embed, std=0.02)
        nn.init.trunc_normal_(self.fusion.learned_cls_token, std=0.02)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.landmark_backbone is not None:
            self.landmark_backbone.eval()      # frozen means its BatchNorm statistics too
        return self

    # -- input checks ------------------------------------------------------------
    def check_input(self, x) -> None:
        cfg = self.config
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"POSTER expects a torch.Tensor of images, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"POSTER expects a batch B x 3 x {cfg.input_size} x {cfg.input_size}, "
                             f"got a tensor of shape {tuple(x.shape)}")
        if x.shape[1] != 3:
            raise ValueError(f"POSTER expects 3 colour channels, got {x.shape[1]} "
                             f"(shape {tuple(x.shape)}); convert grayscale/RGBA images to 3 channels")
        if tuple(x.shape[-2:]) != (cfg.input_size, cfg.input_size):
            raise ValueError(f"This model was built for {cfg.input_size}x{cfg.input_size} inputs, "
                             f"got {x.shape[-2]}x{x.shape[-1]}; resize the images (the data "
                             f"transforms do this) or build the model with input_size={x.shape[-1]}")

    # -- the two streams -----------------------------------------------------------
    def _backbone_input(self, x):
        s = self.config.backbone_size
        if x.shape[-1] == s:
            return x
        return F.interpolate(x, size=s, mode=self.config.backbone_resize)

    def image_tokens(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.image_backbone(self._backbone_input(x))                    # B x 256 x 14 x 14
        return self.image_proj(image_tokens_from_map(fmap, self.config.image_tokens))  # B x 49 x d

    def landmark_tokens(self, x: torch.Tensor) -> torch.Tensor:
        ctx = torch.no_grad() if self.landmark_no_grad else contextlib.nullcontext()
        with ctx:
            fmap = self.landmark_backbone(self._backbone_input(x))             # B x 512 x 7 x 7
        return fmap.flatten(2).transpose(1, 2)                                 # B x 49 x 512

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The SE-gated image class token, B x d (the release's second output)."""
        self.check_input(x)
        img = self.image_tokens(x)
        lm = None if self.landmark_backbone is None else self.landmark_tokens(x)
        return self.se(self.fusion(img, lm))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    # -- conveniences ---------------------------------------------------------------
    def attention_modules(self) -> dict:
        """{(block, level, stream): GivenQueryAttention}, stream "img" or "lm"."""
        out = {}
        for b, block in enumerate(self.fusion.blocks):
            for lvl, level in enumerate(block.levels):
                out[(b, lvl, "img")] = level.img.attn
                if level.lm is not None:
                    out[(b, lvl, "lm")] = level.lm.attn
        return out

    def forward_with_attention(self, x: torch.Tensor):
        """(logits, {(block, level, stream): B x heads x Nq x Nk attention weights}).

        Runs the explicit softmax path. For stream "img" (the branch that updates
        the image tokens) keys are image tokens and queries are the landmark tokens
        when the block swaps, the image tokens otherwise; "lm" mirrors it.
        """
        return forward_recording_attention(self, x)

    def set_fused_attn(self, fused: bool) -> "PosterModel":
        for m in self.modules():
            if isinstance(m, GivenQueryAttention):
                m.fused = fused
        return self


def build_model(name="poster-l", **overrides) -> PosterModel:
    """Build a preset (poster-t, poster-s, poster-l, image-only, poster-nano, ...).

    Any PosterConfig field can be overridden by keyword. Never reads a file.
    """
    if isinstance(name, PosterConfig):
        cfg = replace(name, **overrides).validate()
    else:
        cfg = make_config(name, **overrides)
    return PosterModel(cfg)
