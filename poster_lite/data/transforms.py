"""The release's input pipelines (torchvision transforms v2), with an explicit channel order.

Train: resize to size x size, with probability 0.5 either an extra flip or Gaussian noise
(variance 30 on 0..255), horizontal flip, ImageNet normalisation, RandomErasing
(scale 0.02-0.1). Eval: resize and normalise.

channel_order: the datasets give RGB images. The release's RAF-DB code reads files with
OpenCV and never converts, so its published RAF-DB weights expect BGR input, normalised
with the ImageNet mean/std listed in RGB order (a BGR tensor, RGB-ordered statistics).
channel_order="bgr" reproduces exactly that: the channels are flipped after scaling to
[0, 1] and before Normalize. Use "bgr" with the release's RAF-DB weights, "rgb" (the
default) for AffectNet weights and for anything trained here.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms import v2

from ..errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CHANNEL_ORDERS = ("rgb", "bgr")


def _check_order(channel_order: str) -> str:
    order = str(channel_order).lower()
    if order not in CHANNEL_ORDERS:
        raise UserError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    return order


class ChannelOrder(torch.nn.Module):
    """RGB -> BGR when asked (a no-op for "rgb")."""

    def __init__(self, channel_order: str = "rgb"):
        super().__init__()
        self.channel_order = _check_order(channel_order)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image.flip(-3) if self.channel_order == "bgr" else image

    def extra_repr(self) -> str:
        return f"channel_order={self.channel_order!r}"


class FlipOrNoise(torch.nn.Module):
    """The release's extra augmentation: with probability p, a flip or (as often) Gaussian noise.

    Works on float images in [0, 1]; the noise's variance is 30 on the 0..255 scale.
    """

    def __init__(self, p: float = 0.5, variance_255: float = 30.0):
        super().__init__()
        self.p = p
        self.std = math.sqrt(variance_255) / 255.0

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return image
        if torch.rand(()) < 0.5:
            return image.flip(-1)
        return (image + torch.randn_like(image) * self.std).clamp_(0, 1)


def train_transform(size: int = 224, channel_order: str = "rgb") -> v2.Compose:
    """PIL RGB image -> normalised float tensor 3 x size x size, augmented as the release trains."""
    return v2.Compose([
        v2.ToImage(),
        v2.Resize((size, size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        FlipOrNoise(0.5),
        v2.RandomHorizontalFlip(),
        ChannelOrder(channel_order),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        v2.RandomErasing(scale=(0.02, 0.1)),
    ])


def eval_transform(size: int = 224, channel_order: str = "rgb") -> v2.Compose:
    """PIL RGB image -> normalised float tensor 3 x size x size (no randomness)."""
    return v2.Compose([
        v2.ToImage(),
        v2.Resize((size, size), antialias=True),
        v2.ToDtype(torch.float32, scale=True),
        ChannelOrder(channel_order),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def denormalize(tensor: torch.Tensor, channel_order: str = "rgb") -> np.ndarray:
    """A normalised tensor (3 x H x W, or B x 3 x H x W) -> RGB float image(s) ... x H x W x 3 in [0, 1]."""
    order = _check_order(channel_order)
    t = torch.as_tensor(tensor).detach().float().cpu()
    if t.dim() not in (3, 4) or t.shape[-3] != 3:
        raise UserError(f"denormalize expects 3 x H x W or B x 3 x H x W, got shape {tuple(t.shape)}")
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    t = t * std + mean
    if order == "bgr":
        t = t.flip(-3)
    return t.clamp(0, 1).movedim(-3, -1).numpy()
