"""Notebook 09's self-check: POSTER V2's window cross-attention. It accepts a correct class (written
here independently, one head and one cell pair at a time), the package's own module and a function
of the package's layers; it rejects a stub and names the usual slips."""
import math

import pytest
import torch
from torch import nn

from poster_lite import lab_checks
from poster_lite.models.window_attention import WindowCrossAttention


def offset_index(window):
    """index[p, q] for row-major cells p, q, written out with plain loops."""
    cells = [(i, j) for i in range(window) for j in range(window)]
    return torch.tensor([[(ip - iq + window - 1) * (2 * window - 1) + (jp - jq + window - 1)
                          for (iq, jq) in cells] for (ip, jp) in cells])


class SlowWindowAttention(nn.Module):
    """A correct window cross-attention, one head at a time."""

    def __init__(self, dim, num_heads, window, transpose_index=False, bias=True, swap_kv=False, scale=True):
        super().__init__()
        self.num_heads, self.window = num_heads, window
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        index = offset_index(window)
        self.register_buffer("relative_position_index", index.T.contiguous() if transpose_index else index)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias, self.swap_kv, self.use_scale = bias, swap_kv, scale

    def forward(self, queries, context):
        C = context.shape[-1]
        size = C // self.num_heads
        keys, values = self.kv(context)[..., :C], self.kv(context)[..., C:]
        if self.swap_kv:
            keys, values = values, keys
        heads = []
        for h in range(self.num_heads):
            part = slice(h * size, (h + 1) * size)
            scores = queries[..., part] @ keys[..., part].transpose(1, 2)
            if self.use_scale:
                scores = scores / math.sqrt(size)
            if self.bias:
                scores = scores + self.relative_position_bias_table[:, h][self.relative_position_index]
            heads.append(scores.softmax(-1) @ values[..., part])
        return self.proj(torch.cat(heads, dim=-1))


class UnregisteredIndex(SlowWindowAttention):
    """Keeps the index as a plain attribute: not in the state dict, so a release file would not load."""

    def __init__(self, dim, num_heads, window):
        super().__init__(dim, num_heads, window)
        index = self.relative_position_index
        del self._buffers["relative_position_index"]
        self.relative_position_index = index


class Stub(nn.Module):
    def __init__(self, dim, num_heads, window):
        raise NotImplementedError("Exercise: write WindowCrossAttentionFromScratch.__init__()")


def by_layers(queries, context, attn):
    """The same computation from the layers of a package module."""
    B, N, C = context.shape
    h = attn.num_heads
    q = queries.reshape(B, N, h, C // h).transpose(1, 2)
    k, v = attn.kv(context).reshape(B, N, 2, h, C // h).permute(2, 0, 3, 1, 4)
    bias = attn.relative_position_bias_table[attn.relative_position_index].permute(2, 0, 1)
    out = ((q @ k.transpose(-2, -1)) * attn.scale + bias).softmax(-1) @ v
    return attn.proj(out.transpose(1, 2).reshape(B, N, C))


@pytest.mark.parametrize("answer", [SlowWindowAttention, WindowCrossAttention, by_layers],
                         ids=["independent class", "package module", "function of the layers"])
def test_accepts_correct_answers(answer, capsys, one_thread):
    assert lab_checks.check_window_cross_attention(answer) is True
    assert "✅ window cross-attention" in capsys.readouterr().out


def test_rejects_a_stub(capsys):
    assert lab_checks.check_window_cross_attention(Stub) is False
    assert "not implemented yet" in capsys.readouterr().out


@pytest.mark.parametrize("slip, says", [
    (dict(bias=False), "relative position bias is missing"),
    (dict(swap_kv=True), "keys and values are swapped"),
    (dict(scale=False), "not scaled"),
    (dict(transpose_index=True), "it is transposed"),
])
def test_names_the_slip(slip, says, capsys, one_thread):
    class Slipped(SlowWindowAttention):
        def __init__(self, dim, num_heads, window):
            super().__init__(dim, num_heads, window, **slip)

    assert lab_checks.check_window_cross_attention(Slipped) is False
    out = capsys.readouterr().out
    assert "❌ window cross-attention" in out and says in out, out


def test_a_transposed_bias_in_a_function_is_named(capsys, one_thread):
    def transposed(queries, context, attn):
        B, N, C = context.shape
        h = attn.num_heads
        q = queries.reshape(B, N, h, C // h).transpose(1, 2)
        k, v = attn.kv(context).reshape(B, N, 2, h, C // h).permute(2, 0, 3, 1, 4)
        bias = attn.relative_position_bias_table[attn.relative_position_index.T].permute(2, 0, 1)
        out = ((q @ k.transpose(-2, -1)) * attn.scale + bias).softmax(-1) @ v
        return attn.proj(out.transpose(1, 2).reshape(B, N, C))

    assert lab_checks.check_window_cross_attention(transposed) is False
    assert "the bias is transposed" in capsys.readouterr().out


def test_an_unregistered_index_is_named(capsys, one_thread):
    assert lab_checks.check_window_cross_attention(UnregisteredIndex) is False
    out = capsys.readouterr().out
    assert "relative_position_index" in out and "register_buffer" in out, out
