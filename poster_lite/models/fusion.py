"""The cross-fusion block: two pre-norm transformer branches that swap queries.

The block sees the concatenated sequence [image cls, 49 image, landmark cls, 49
landmark]. Each branch projects keys and values from ITS OWN stream, but takes its
queries from the OTHER stream's normed tokens, unprojected ("query swap"). So the
image stream is updated by "what the landmarks ask of the image", and vice versa.
With `swap=False` each stream queries itself: the same parameters doing plain
self-attention per stream (the "no swap" ablation of the paper's Table 2).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class GivenQueryAttention(nn.Module):
    """Multi-head attention whose queries arrive ready-made (no query projection).

    Keys and values come from `context` through one Linear(d, 2d). The fused path
    calls `scaled_dot_product_attention`; the explicit path computes the softmax by
    hand and, when `record` is set, keeps the weights (B x heads x Nq x Nk) in
    `self.weights` for visualisation. A test checks that both paths agree.
    """

    def __init__(self, dim: int, num_heads: int, fused: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.fused = fused
        self.record = False
        self.weights = None

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        B, Nq, C = queries.shape
        Nk = context.shape[1]
        q = queries.reshape(B, Nq, self.num_heads, self.head_dim).transpose(1, 2)  # B x h x Nq x hd
        # `context` is a half of the token axis (a strided view). A Linear on such a view falls
        # back to a batched matmul that copies the weight once per sample (24% of poster-l's
        # bf16 forward); one copy of the small activation instead is the same maths.
        kv = self.kv(context.contiguous()).reshape(B, Nk, 2, self.num_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)                                # each B x h x Nk x hd
        if self.fused and not self.record:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)                           # B x h x Nq x Nk
            attn = attn.softmax(dim=-1)
            if self.record:
                self.weights = attn.detach()
            out = attn @ v
        out = out.transpose(1, 2).reshape(B, Nq, C)                                 # B x Nq x d
        return self.proj(out)


class StreamBranch(nn.Module):
    """One pre-norm branch: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim, num_heads, mlp_ratio, drop_path, eps, fused):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.attn = GivenQueryAttention(dim, num_heads, fused)
        self.mlp_norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x_own: torch.Tensor, normed_own: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Update one stream. `normed_own` is this branch's LayerNorm of the stream (keys and
        values come from it); `queries` are normed tokens of the other stream (the swap) or
        `normed_own` again (no swap, and the image-only baseline)."""
        x_own = x_own + self.drop_path(self.attn(queries, normed_own))
        return x_own + self.drop_path(self.mlp(self.mlp_norm(x_own)))


class CrossFusionBlock(nn.Module):
    """One level of one pyramid block. Input and output: B x tokens x dim.

    Parameter names follow the two streams: `img_*` updates the image half,
    `lm_*` the landmark half. In the image-only baseline the `lm_*` branch is absent.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, num_tokens: int,
                 drop_path: float = 0.0, swap: bool = True, mix_tokens: bool = True,
                 image_only: bool = False, eps: float = 1e-6, fused: bool = True):
        super().__init__()
        self.swap = swap and not image_only
        self.image_only = image_only
        self.img = StreamBranch(dim, num_heads, mlp_ratio, drop_path, eps, fused)
        self.lm = None if image_only else StreamBranch(dim, num_heads, mlp_ratio, drop_path, eps, fused)
        # Conv1d over the token axis (tokens are channels): every output token is a
        # learned mix of all input tokens. RAF-DB release only.
        self.token_mixer = nn.Conv1d(num_tokens, num_tokens, 1) if mix_tokens else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image_only:
            normed = self.img.norm(x)
            x = self.img(x, normed, queries=normed)                                 # self-attention
        else:
            half = x.shape[1] // 2
            x_img, x_lm = x[:, :half], x[:, half:]
            # Each branch norms the WHOLE sequence with its own LayerNorm (the release's
            # layout), then takes its keys/values from its own half of that norm.
            n_img, n_lm = self.img.norm(x).split(half, dim=1)
            new_img = self.img(x_img, n_img, queries=n_lm if self.swap else n_img)
            n_img, n_lm = self.lm.norm(x).split(half, dim=1)
            new_lm = self.lm(x_lm, n_lm, queries=n_img if self.swap else n_lm)
            x = torch.cat([new_img, new_lm], dim=1)                                 # B x 100 x d
        if self.token_mixer is not None:
            x = self.token_mixer(x)
        return x
