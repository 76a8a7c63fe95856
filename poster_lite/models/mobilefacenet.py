"""The landmark backbone: MobileFaceNet trained to regress 68 facial landmarks.

Its building unit is the inverted-residual, depthwise-separable block of
MobileNetV2: a 1x1 conv expands the channels, a 3x3 depthwise conv (one filter per
channel, `groups=channels`) looks at the neighbourhood, and a 1x1 conv without
activation projects back. POSTER reads the 7x7x512 map of `features` (the release's
`conv_6_sep`) as 49 landmark tokens; the 136-output landmark head exists because the
net was pretrained for it, but POSTER never uses its output.
"""
from __future__ import annotations

import torch
from torch import nn


class ConvBN(nn.Sequential):
    """conv + BN (+ PReLU unless `act=False`, the linear bottleneck of MobileNetV2)."""

    def __init__(self, in_ch, out_ch, kernel=1, stride=1, padding=0, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        if act:
            self.act = nn.PReLU(out_ch)


class DepthwiseSeparable(nn.Module):
    """expand (1x1) -> depthwise (3x3, stride) -> project (1x1, linear) [+ input]."""

    def __init__(self, in_ch: int, out_ch: int, expand: int, stride: int, residual: bool):
        super().__init__()
        self.expand = ConvBN(in_ch, expand)
        self.depthwise = ConvBN(expand, expand, 3, stride, 1, groups=expand)
        self.project = ConvBN(expand, out_ch, act=False)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class MobileFaceNetStage(nn.Module):
    """A strided unit that changes the size, then residual units at that size."""

    def __init__(self, in_ch: int, out_ch: int, down_expand: int, units: int, expand: int):
        super().__init__()
        self.down = DepthwiseSeparable(in_ch, out_ch, down_expand, stride=2, residual=False)
        self.blocks = nn.Sequential(
            *[DepthwiseSeparable(out_ch, out_ch, expand, stride=1, residual=True) for _ in range(units)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.down(x))


class LandmarkHead(nn.Module):
    """Global depthwise conv (7x7, one per channel) -> linear -> BN: 2 x 68 outputs."""

    def __init__(self, channels: int, outputs: int, grid: int = 7):
        super().__init__()
        self.depthwise = ConvBN(channels, channels, grid, groups=channels, act=False)
        self.linear = nn.Linear(channels, outputs, bias=False)
        self.bn = nn.BatchNorm1d(outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(self.depthwise(x).flatten(1)))  # B x C x 1 x 1 -> B x C


class MobileFaceNet(nn.Module):
    """112x112 face -> (B x 512 x 7 x 7 features, B x 136 landmarks in [0, 1] units).

    `forward` returns only the feature map, which is all POSTER needs; call
    `landmarks(features)` for the head's output (pretraining, visualisation).
    """

    def __init__(self, stem: int, stages, channels: int, num_landmarks: int = 68):
        super().__init__()
        self.stem = ConvBN(3, stem, 3, 2, 1)                       # 112 -> 56
        self.stem_dw = ConvBN(stem, stem, 3, 1, 1, groups=stem)
        blocks, in_ch = [], stem
        for out_ch, down_expand, units, expand in stages:         # 56 -> 28 -> 14 -> 7
            blocks.append(MobileFaceNetStage(in_ch, out_ch, down_expand, units, expand))
            in_ch = out_ch
        self.stages = nn.ModuleList(blocks)
        self.features = ConvBN(in_ch, channels)                    # the release's conv_6_sep
        self.landmark_head = LandmarkHead(channels, 2 * num_landmarks)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_dw(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return self.features(x)

    def stage_outputs(self, x: torch.Tensor) -> list:
        """Every stage's output, then `features` (POSTER V2 reads the first two and the last).

        At 112 px: 28x28, 14x14, 7x7 stage maps (the release's conv_3, conv_4, conv_5)
        and the 7x7 conv_6_sep map.
        """
        x = self.stem_dw(self.stem(x))
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs + [self.features(x)]

    def landmarks(self, features: torch.Tensor) -> torch.Tensor:
        return self.landmark_head(features)
