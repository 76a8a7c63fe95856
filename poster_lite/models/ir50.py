"""The image backbone: IR-50, the ArcFace-style residual network, cut after stage 3.

An "IR" unit (improved residual) is pre-activation-like:
    BN -> 3x3 conv -> PReLU -> 3x3 conv (stride s) -> BN,   plus a shortcut.
The shortcut is a stride-s identity (MaxPool2d(1, s), i.e. subsampling) when the
width does not change, else a strided 1x1 conv + BN. The first unit of each stage
halves the map: 112 -> 56 -> 28 -> 14 for POSTER's three stages.
"""
from __future__ import annotations

import torch
from torch import nn


class ConvBNPReLU(nn.Sequential):
    """3x3 conv, BatchNorm, PReLU: the stem of IR-50."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.PReLU(out_ch)


class IRUnit(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False)
        self.act = nn.PReLU(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, stride, 1, bias=False)
        self.bn_out = nn.BatchNorm2d(out_ch)
        if in_ch == out_ch:
            # A 1x1 max-pool with stride is plain subsampling: no parameters.
            self.shortcut = nn.MaxPool2d(1, stride)
        else:
            self.shortcut = nn.Sequential()
            self.shortcut.add_module("conv", nn.Conv2d(in_ch, out_ch, 1, stride, bias=False))
            self.shortcut.add_module("bn", nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn_out(self.conv2(self.act(self.conv1(self.bn_in(x)))))
        return residual + self.shortcut(x)


class IRStage(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, units: int):
        super().__init__()
        self.units = nn.Sequential(
            *[IRUnit(in_ch if i == 0 else out_ch, out_ch, 2 if i == 0 else 1) for i in range(units)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.units(x)


class EmbeddingHead(nn.Module):
    """ArcFace's output layer: BN2d, Dropout, flatten, Linear(C*7*7, E), BN1d."""

    def __init__(self, channels: int, embedding_size: int, grid: int = 7):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(channels)
        self.dropout = nn.Dropout()
        self.linear = nn.Linear(channels * grid * grid, embedding_size)
        self.bn_out = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.bn_in(x)).flatten(1)  # B x C x 7 x 7 -> B x C*49
        return self.bn_out(self.linear(x))


class IRBackbone(nn.Module):
    """IR-50 trunk. `forward` returns the last stage's map (B x 256 x 14 x 14 in POSTER).

    With `stage4_units > 0` it is the full face-recognition IR-50 (stage 4 and the
    embedding head run, giving a 512-d identity embedding from `embed`): the layout
    of the official `ir50.pth`, which is what backbone pretraining trains.
    """

    def __init__(self, stem: int, widths, units, embedding_head: bool = True,
                 embedding_size: int = 512, stage4_width: int = 512, stage4_units: int = 0):
        super().__init__()
        self.stem = ConvBNPReLU(3, stem)
        chans = [stem, *widths]
        self.stages = nn.ModuleList(IRStage(chans[i], chans[i + 1], n) for i, n in enumerate(units))
        self.stage4 = IRStage(widths[-1], stage4_width, stage4_units) if stage4_units else None
        self.embedding_head = EmbeddingHead(stage4_width, embedding_size) if embedding_head else None
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def stage_outputs(self, x: torch.Tensor) -> list:
        """The output of every stage (POSTER V2's three image scales: 56, 28, 14 at 112 px)."""
        x = self.stem(x)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Identity embedding of the full IR-50 (needs stage 4 and the head)."""
        if self.stage4 is None or self.embedding_head is None:
            raise RuntimeError("embed() needs the full IR-50: build it with stage4_units > 0 and the embedding head")
        return self.embedding_head(self.stage4(self.forward(x)))
