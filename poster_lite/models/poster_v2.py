"""POSTER V2 (POSTER++): three scales from both backbones, window cross-attention, a small ViT.

    image (224) --nearest--> 112 --+--> IR-50 stages 1-3: 64x56x56, 128x28x28, 256x14x14
                                   |      each halved by its own 3x3 stride-2 conv -> 28, 14, 7
                                   +--> MobileFaceNet (frozen): 64x28x28, 128x14x14, 512x7x7
                                          (the last through a trainable 3x3 conv to 256x7x7)
    per scale: landmark map = queries, image map = keys/values (WindowCrossBlock)
            -> 49 tokens of width d (strided 3x3 convs; 1x1 at 7x7)
    [49 | 49 | 49] finest scale first -> class token + position embedding -> 2 ViT blocks
            -> final LayerNorm's class token -> SE gate -> Linear -> logits

What V2 removed from V1: the landmark stream is never updated (no image-to-landmark
attention), there is no pyramid over the embedding axis, and the image tokens are
real places on the face (convolutions of spatial maps, not V1's channel slabs).
"""
from __future__ import annotations

import contextlib
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from ..config_v2 import TOKEN_GRID, PosterV2Config, make_v2_config
from .class_token_vit import ClassTokenViT, SelfAttention
from .ir50 import IRBackbone
from .mobilefacenet import MobileFaceNet
from .poster import SEGate
from .recording import forward_recording_attention
from .window_attention import WindowCrossAttention, WindowCrossBlock


def token_embedder(channels: int, dim: int, map_size: int) -> nn.Sequential:
    """C x m x m map -> d x 7 x 7: stride-2 3x3 convs until the map is 7x7 (a 1x1 conv at 7x7).

    The release: embed_q = two convs (28 -> 14 -> 7), embed_k = one (14 -> 7), embed_v =
    Conv2d(256, 768, 1); no norm or activation in between.
    """
    layers, c, m = [], channels, map_size
    while m > TOKEN_GRID:
        layers.append(nn.Conv2d(c, dim, 3, 2, 1))
        c, m = dim, (m + 1) // 2
    if not layers:
        layers.append(nn.Conv2d(c, dim, 1))
    return nn.Sequential(*layers)


class ReleaseUnusedLayers(nn.Module):
    """Layers the release's ViT holds but never runs, kept only so that its checkpoints
    load strictly and its stored parameter count (58.3M) is reproduced. Nothing calls them."""

    def __init__(self, cfg: PosterV2Config):
        super().__init__()
        c3, d = cfg.ir_widths[-1], cfg.embed_dim
        self.patch_embed = nn.Conv2d(c3, d, 1)
        self.con1 = nn.Conv2d(c3, d, 1, bias=False)
        self.ir_linear1 = nn.Linear(4 * c3, d)
        self.ir_linear2 = nn.Linear(d, cfg.landmark_channels)
        self.eca = nn.Conv1d(1, 1, 5, padding=2, bias=False)
        self.block_convs = nn.ModuleList(nn.Conv1d(cfg.num_tokens, cfg.num_tokens, 1) for _ in range(cfg.depth))

    def forward(self, *args):
        raise RuntimeError("the release's unused layers are never run")


class PosterV2Model(nn.Module):
    """images (B x 3 x S x S, S = config.input_size) -> logits (B x num_classes)."""

    def __init__(self, config: PosterV2Config):
        super().__init__()
        self.config = cfg = config.validate()
        self.image_backbone = IRBackbone(cfg.ir_stem, cfg.ir_widths, cfg.ir_units,
                                         embedding_head=cfg.ir_embedding_head,
                                         embedding_size=cfg.ir_embedding_size,
                                         stage4_width=cfg.ir_stage4_width, stage4_units=0)
        self.landmark_backbone = MobileFaceNet(cfg.mfn_stem, cfg.mfn_stages, cfg.landmark_channels,
                                               cfg.num_landmarks)
        self.landmark_backbone.requires_grad_(False)
        # Scale 2's queries: conv_6_sep (512) -> the image scale's width (256). Trainable.
        last = len(cfg.ir_widths) - 1
        self.landmark_conv = (nn.Conv2d(cfg.landmark_channels, cfg.ir_widths[last], 3, 1, 1)
                              if last in cfg.scales else None)
        widths = [cfg.ir_widths[s] for s in cfg.scales]
        sizes = [cfg.map_sizes[s] for s in cfg.scales]
        self.image_downsample = nn.ModuleList(nn.Conv2d(c, c, 3, 2, 1) for c in widths)
        self.cross = nn.ModuleList(
            WindowCrossBlock(cfg.ir_widths[s], cfg.window_heads[s], cfg.window_sizes[s], cfg.window_mlp_ratio,
                             cfg.window_drop_path[s], cfg.window_norm_eps, cfg.layer_scale_init, cfg.fused_attn)
            for s in cfg.scales)
        self.token_embed = nn.ModuleList(token_embedder(c, cfg.embed_dim, m) for c, m in zip(widths, sizes))
        self.vit = ClassTokenViT(cfg.num_tokens - 1, cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio,
                                 cfg.norm_eps, cfg.drop_path_rate, cfg.fused_attn)
        self.se = SEGate(cfg.embed_dim)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        self.unused = ReleaseUnusedLayers(cfg) if cfg.release_unused_layers else None
        # The frozen landmark stream needs no autograd bookkeeping; explanation methods
        # (Grad-CAM on the landmark net) switch this off while they run.
        self.landmark_no_grad = True
        self._init_weights()
        self.train()                          # applies freeze_landmark_bn from the start

    def _init_weights(self):
        """The release's initialisation for training from scratch (POSTER_V2_FACTS.md):
        inside its ViT (blocks, SE gate, head) Linear ~ trunc_normal(0.01), LayerNorm 1/0,
        class token and position embedding ~ trunc_normal(0.02); the window bias tables
        ~ trunc_normal(0.02); gammas at layer_scale_init; everything else PyTorch's default."""
        vit_parts = [self.vit, self.se, self.head] + ([self.unused] if self.unused is not None else [])
        for part in vit_parts:
            for m in part.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.01)
                elif isinstance(m, nn.LayerNorm):
                    nn.init.ones_(m.weight)
                elif isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if isinstance(m, (nn.Linear, nn.LayerNorm, nn.Conv2d)) and m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.vit.cls_token, std=0.02)
        nn.init.trunc_normal_(self.vit.pos_embed, std=0.02)
        for block in self.cross:
            nn.init.trunc_normal_(block.attn.relative_position_bias_table, std=0.02)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.freeze_landmark_bn:
            self.landmark_backbone.eval()      # frozen means its BatchNorm statistics too
        return self

    # -- input checks ------------------------------------------------------------
    def check_input(self, x) -> None:
        size = self.config.input_size
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"POSTER V2 expects a torch.Tensor of images, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"POSTER V2 expects a batch B x 3 x {size} x {size} (3 colour channels), "
                             f"got a tensor of shape {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != (size, size):
            raise ValueError(f"This model was built for {size}x{size} inputs, got {x.shape[-2]}x{x.shape[-1]}; "
                             f"resize the images (the data transforms do this) or build the model with "
                             f"input_size={x.shape[-1]}")

    # -- the two backbones, three scales each ----------------------------------------
    def _backbone_input(self, x):
        s = self.config.backbone_size
        if x.shape[-1] == s and x.shape[-2] == s:
            return x
        return F.interpolate(x, size=s, mode=self.config.backbone_resize)

    def scale_maps(self, x: torch.Tensor) -> list:
        """[(image map, landmark map)] per used scale, both B x C x m x m (m = 28, 14, 7)."""
        x = self._backbone_input(x)
        image = self.image_backbone.stage_outputs(x)                # 64x56², 128x28², 256x14²
        ctx = torch.no_grad() if self.landmark_no_grad else contextlib.nullcontext()
        with ctx:
            landmark = self.landmark_backbone.stage_outputs(x)      # 64x28², 128x14², 128x7², 512x7²
            # The release runs the landmark head in every forward and discards its output.
            self.landmark_backbone.landmarks(landmark[-1])
        maps = []
        for i, s in enumerate(self.config.scales):
            queries = self.landmark_conv(landmark[-1]) if s == len(image) - 1 else landmark[s]
            maps.append((self.image_downsample[i](image[s]), queries))
        return maps

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The ViT's input: B x 49*len(scales) x d, finest scale first, each grid row-major."""
        out = []
        for (image_map, landmark_map), cross, embed in zip(self.scale_maps(x), self.cross, self.token_embed):
            fused = cross(image_map, landmark_map)                             # B x C x m x m
            out.append(embed(fused).flatten(2).transpose(1, 2))                # B x 49 x d
        return torch.cat(out, dim=1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The SE-gated final class token, B x d (the input of the classifier)."""
        self.check_input(x)
        return self.se(self.vit(self.tokens(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))

    # -- attention ------------------------------------------------------------------
    def attention_modules(self) -> dict:
        """{("window", scale): WindowCrossAttention, ("vit", block): SelfAttention}."""
        out = {("window", s): block.attn for s, block in zip(self.config.scales, self.cross)}
        out.update({("vit", b): block.attn for b, block in enumerate(self.vit.blocks)})
        return out

    def forward_with_attention(self, x: torch.Tensor):
        """(logits, {key: attention weights}) through the explicit softmax path.

        ("window", s): windows x heads x N x N over the cells of scale s (query = landmark
        cell, key = image cell; with the release's whole-map windows, B x heads x m² x m²);
        ("vit", b): B x heads x T x T over [class token, tokens of the scales].
        """
        return forward_recording_attention(self, x)

    def set_fused_attn(self, fused: bool) -> "PosterV2Model":
        for m in self.modules():
            if isinstance(m, (WindowCrossAttention, SelfAttention)):
                m.fused = fused
        return self


def build_v2_model(name="poster-v2", **overrides) -> PosterV2Model:
    """Build a V2 preset (poster-v2, poster-v2-nano) or a PosterV2Config. Never reads a file."""
    if isinstance(name, PosterV2Config):
        return PosterV2Model(replace(name, **overrides).validate())
    return PosterV2Model(make_v2_config(name, **overrides))
