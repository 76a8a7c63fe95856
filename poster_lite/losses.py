"""POSTER's training loss: cross-entropy + 2 x label-smoothing cross-entropy (0.2).

Label smoothing stops the network from pushing one logit to infinity: the target
keeps (1 - s) on the true class and spreads s over all classes, so

    LSCE = (1 - s) * (-log p[true]) + s * mean over classes of (-log p[c]).

The release adds it to a plain cross-entropy with weight 2, which is the same as
one smoothed loss of 3 x CE with smoothing 2s/3 (0.133): a softer target than 0.2.
`smoothing_weight=0` gives plain cross-entropy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LabelSmoothingCrossEntropy(nn.Module):
    def __init__(self, smoothing: float = 0.2):
        super().__init__()
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=-1)
        nll = -log_p.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        uniform = -log_p.mean(dim=-1)
        return ((1.0 - self.smoothing) * nll + self.smoothing * uniform).mean()


class PosterLoss(nn.Module):
    """CE + smoothing_weight x LSCE(smoothing): the release's (1, 2, 0.2) by default."""

    def __init__(self, smoothing: float = 0.2, smoothing_weight: float = 2.0):
        super().__init__()
        self.smoothed = LabelSmoothingCrossEntropy(smoothing)
        self.smoothing_weight = smoothing_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, target)
        if self.smoothing_weight:
            loss = loss + self.smoothing_weight * self.smoothed(logits, target)
        return loss
