"""A small plain ViT over given tokens: POSTER V2's last stage (the release's `VIT`).

Unlike V1's cross-fusion, every token attends to every token with its own
projected queries. A LEARNED class token is prepended, a learned position embedding
is added to all tokens (class token included), pre-norm blocks follow, and the
final LayerNorm's class token is the output.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fusion import DropPath, Mlp


class SelfAttention(nn.Module):
    """timm-style multi-head self-attention: one Linear(d, 3d) for q, k, v, then Linear(d, d).

    `fused` calls `scaled_dot_product_attention`; the explicit path records the
    weights (B x heads x N x N) in `self.weights` when `record` is set.
    """

    def __init__(self, dim: int, num_heads: int, fused: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.fused = fused
        self.record = False
        self.weights = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                  # each B x h x N x hd
        if self.fused and not self.record:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q @ k.transpose(-2, -1)) * self.scale                # B x h x N x N
            attn = attn.softmax(dim=-1)
            if self.record:
                self.weights = attn.detach()
            out = attn @ v
        return self.proj(out.transpose(1, 2).reshape(B, N, C))           # B x N x C


class ViTBlock(nn.Module):
    """x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, eps: float,
                 drop_path: float = 0.0, fused: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = SelfAttention(dim, num_heads, fused)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ClassTokenViT(nn.Module):
    """B x T x d tokens -> B x d: the final-LayerNormed learned class token."""

    def __init__(self, num_tokens: int, dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0,
                 eps: float = 1e-6, drop_path_rate: float = 0.0, fused: bool = True):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_tokens + 1, dim))
        rates = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(ViTBlock(dim, num_heads, mlp_ratio, eps, r, fused) for r in rates)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        B = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(B, -1, -1), tokens], dim=1) + self.pos_embed  # B x (T+1) x d
        for block in self.blocks:
            x = block(x)
        # The release normalises every token and then keeps the class token (same numbers
        # as normalising only that one; the thop-style count sees the whole LayerNorm).
        return self.norm(x)[:, 0]                                                          # B x d
