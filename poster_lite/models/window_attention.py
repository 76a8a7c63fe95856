"""Window cross-attention with a relative position bias: POSTER V2's fusion at one scale.

At every scale the landmark map asks the image map. Queries are the landmark map's
channels as they are (no projection, no norm); keys and values come from the
LayerNormed image map through one Linear(C, 2C). Attention runs inside square
windows of w x w cells and adds a learned bias that depends only on the OFFSET
between the query cell and the key cell (Swin's relative position bias: a table of
(2w-1)^2 offsets x heads). In the release the window is the whole map, so this is
global attention whose scores know how far apart, and in which direction, two cells
lie: unlike POSTER V1's tokens, these ARE places on the face.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .fusion import DropPath, Mlp


def relative_position_index(window: int) -> torch.Tensor:
    """[w*w, w*w] int64: the table row of the offset between cells p and q (row-major cells).

    index[p, q] = (i_p - i_q + w - 1) * (2w - 1) + (j_p - j_q + w - 1), so equal offsets
    share a row and the (2w-1)^2 possible offsets each have one.
    """
    rows, cols = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    cells = torch.stack([rows.flatten(), cols.flatten()])                 # 2 x N (row, col)
    offset = cells[:, :, None] - cells[:, None, :] + (window - 1)          # 2 x N x N, in 0..2w-2
    return offset[0] * (2 * window - 1) + offset[1]                        # N x N


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """B x H x W x C -> (B * H/w * W/w) x w*w x C: the windows, each row-major inside."""
    B, H, W, C = x.shape
    x = x.reshape(B, H // window, window, W // window, window, C)          # B x nh x w x nw x w x C
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, C)     # B*nh*nw x w*w x C


def window_reverse(windows: torch.Tensor, window: int, H: int, W: int) -> torch.Tensor:
    """The inverse of `window_partition`: (B * H/w * W/w) x w*w x C -> B x H x W x C."""
    C = windows.shape[-1]
    x = windows.reshape(-1, H // window, W // window, window, window, C)   # B x nh x nw x w x w x C
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


class WindowCrossAttention(nn.Module):
    """softmax(q k^T * scale + bias) v over the cells of one window; queries arrive ready-made.

    The fused path calls `scaled_dot_product_attention` with the bias as an additive
    mask; the explicit path computes the softmax by hand and, when `record` is set,
    keeps the weights (windows x heads x N x N) in `self.weights`. A test checks that
    both paths agree.
    """

    def __init__(self, dim: int, num_heads: int, window: int, fused: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window = window
        # The release computes the scale as a float32 tensor (torch.div(dim, heads) ** -0.5),
        # which `.double()` leaves in float32: 0.1767766922712326 for head size 32, not
        # 32 ** -0.5. The difference moves float64 logits by ~1e-9; keep the release's value.
        self.scale = float(torch.tensor(dim / num_heads, dtype=torch.float32) ** -0.5)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        # A constant, but persistent: the release's checkpoints hold it and a strict load needs it.
        self.register_buffer("relative_position_index", relative_position_index(window))
        # Named `qkv` in the release, it gives only keys (first C outputs) and values (next C).
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        # A module, as in the release, not a function call: thop-style counting (the paper's
        # 8.4G) counts an nn.Softmax and ignores the ViT's functional softmax.
        self.softmax = nn.Softmax(dim=-1)
        self.fused = fused
        self.record = False
        self.weights = None

    def position_bias(self) -> torch.Tensor:
        """heads x N x N: the bias each head adds to the score of query cell p for key cell q."""
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]  # N*N x heads
        return bias.reshape(n, n, self.num_heads).permute(2, 0, 1)                           # heads x N x N

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """queries, context: windows x N x C (N = w*w cells) -> windows x N x C."""
        B, N, C = context.shape
        q = queries.reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)   # B x h x N x hd
        kv = self.kv(context).reshape(B, N, 2, self.num_heads, self.head_dim)
        k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)                                  # each B x h x N x hd
        bias = self.position_bias()
        if self.fused and not self.record:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
        else:
            attn = self.softmax((q * self.scale) @ k.transpose(-2, -1) + bias)      # B x h x N x N
            if self.record:
                self.weights = attn.detach()
            out = attn @ v
        out = out.transpose(1, 2).reshape(B, N, C)                                  # B x N x C
        return self.proj(out)


class WindowCrossBlock(nn.Module):
    """One scale of V2's fusion: the image map refined by what the landmark map asks of it.

        X = LayerNorm(image map)            (X is also the residual shortcut)
        Y = X + gamma_attn * Attn(queries = landmark map, keys/values from X)
        Z = Y + gamma_mlp  * MLP(LayerNorm(Y))

    with per-channel layer-scale vectors `gamma_*` and stochastic depth on both branches.
    Input and output maps are channels-first, B x C x H x W; the landmark map has the
    same shape as the image map. Nothing updates the landmark map (V2 dropped V1's
    image-to-landmark branch).
    """

    def __init__(self, dim: int, num_heads: int, window: int, mlp_ratio: float = 4.0,
                 drop_path: float = 0.0, eps: float = 1e-5, layer_scale_init: float = 1e-5,
                 fused: bool = True):
        super().__init__()
        self.window = window
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.attn = WindowCrossAttention(dim, num_heads, window, fused)
        self.gamma_attn = nn.Parameter(torch.full((dim,), float(layer_scale_init)))
        self.mlp_norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma_mlp = nn.Parameter(torch.full((dim,), float(layer_scale_init)))
        self.drop_path = DropPath(drop_path)

    def forward(self, image_map: torch.Tensor, landmark_map: torch.Tensor) -> torch.Tensor:
        B, C, H, W = image_map.shape
        w = self.window
        x = self.norm(image_map.permute(0, 2, 3, 1))                           # B x H x W x C
        q = landmark_map.permute(0, 2, 3, 1)                                   # B x H x W x C
        out = self.attn(window_partition(q, w), window_partition(x, w))        # B*H*W/w^2 x w*w x C
        x = x + self.drop_path(self.gamma_attn * window_reverse(out, w, H, W))  # B x H x W x C
        x = x + self.drop_path(self.gamma_mlp * self.mlp(self.mlp_norm(x)))
        return x.permute(0, 3, 1, 2)                                           # B x C x H x W
