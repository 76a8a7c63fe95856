"""The pyramid: cross-fusion at several embedding sizes at once.

POSTER's pyramid runs over the EMBEDDING axis, not over tokens. From the 100 x 512
sequence, a Conv1d(100, 100, kernel r, stride r) that treats the 100 tokens as
channels makes a 100 x (512 / r) copy (r = 2 and 4 give the 256 and 128 levels).
Each pyramid block runs one cross-fusion block per level, then adds every smaller
level back into the next larger one with a ConvTranspose1d (kernel = stride = the
size ratio), smallest first. Only the largest level reaches the classifier.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import TOKENS_PER_STREAM, PosterConfig
from .fusion import CrossFusionBlock


class PyramidBlock(nn.Module):
    def __init__(self, cfg: PosterConfig, drop_path: float, swap: bool):
        super().__init__()
        T = cfg.num_tokens
        self.levels = nn.ModuleList(
            CrossFusionBlock(d, cfg.num_heads, cfg.mlp_ratio, T, drop_path, swap=swap,
                             mix_tokens=cfg.mix_tokens, image_only=cfg.image_only,
                             eps=cfg.norm_eps, fused=cfg.fused_attn)
            for d in cfg.pyramid_dims)
        # upsample[k] maps level k+1 up to level k.
        dims = cfg.pyramid_dims
        self.upsample = nn.ModuleList(
            nn.ConvTranspose1d(T, T, dims[k] // dims[k + 1], dims[k] // dims[k + 1])
            for k in range(len(dims) - 1))

    @property
    def swap(self) -> bool:
        return self.levels[0].swap

    def forward(self, levels: list) -> list:
        levels = [block(x) for block, x in zip(self.levels, levels)]
        for k in reversed(range(len(self.upsample))):                  # smallest level first
            levels[k] = levels[k] + self.upsample[k](levels[k + 1])
        return levels


class PyramidFusion(nn.Module):
    """(image tokens B x 49 x d, landmark tokens B x 49 x d) -> B x d image class token."""

    def __init__(self, cfg: PosterConfig):
        super().__init__()
        d, T = cfg.embed_dim, cfg.num_tokens
        # The release defines a learned class token but never uses it (the class
        # token is the mean of the stream's tokens). Kept so that parameter counts
        # and checkpoints match; it receives no gradient.
        self.learned_cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.image_pos_embed = nn.Parameter(torch.zeros(1, TOKENS_PER_STREAM, d))   # image stream only
        dims = cfg.pyramid_dims
        self.downsample = nn.ModuleList(
            nn.Conv1d(T, T, d // dk, d // dk) for dk in dims[1:])
        rates = torch.linspace(0, cfg.drop_path_rate, cfg.depth).tolist()
        self.blocks = nn.ModuleList(
            PyramidBlock(cfg, rates[i], swap=i < cfg.swap_blocks) for i in range(cfg.depth))
        self.norm = nn.LayerNorm(d, eps=cfg.norm_eps)

    @staticmethod
    def with_mean_token(tokens: torch.Tensor) -> torch.Tensor:
        """Prepend the stream's class token: the mean of its tokens. B x 49 x d -> B x 50 x d."""
        return torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)

    def forward_tokens(self, image_tokens: torch.Tensor, landmark_tokens=None) -> torch.Tensor:
        """The normalised largest-level sequence after all blocks: B x T x d."""
        x = self.with_mean_token(image_tokens) + self.image_pos_embed
        if landmark_tokens is not None:
            x = torch.cat([x, self.with_mean_token(landmark_tokens)], dim=1)  # B x 100 x d
        levels = [x] + [down(x) for down in self.downsample]                   # B x T x d/r each
        for block in self.blocks:
            levels = block(levels)
        return self.norm(levels[0])

    def forward(self, image_tokens: torch.Tensor, landmark_tokens=None) -> torch.Tensor:
        return self.forward_tokens(image_tokens, landmark_tokens)[:, 0]        # image class token
