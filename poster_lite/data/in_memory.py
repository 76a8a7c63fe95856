"""A face data set decoded once into memory, augmented a whole batch at a time.

    faces = InMemoryFaces.decode(load("synthfer", split="train"), size=112)   # ~1 s for 5,000 faces
    images, labels = faces.batch([3, 1, 4, 1], train=True)                    # augmented, normalised

SynthFER's 5,000 training faces at 112 px are 188 MB as uint8: they fit in memory, so the
fast training path (pl.train's default) decodes every JPEG once, resized to the model's
input size, instead of once per epoch, and applies the release's training augmentation
(transforms.train_transform) to a batch tensor at a time instead of image by image.

The augmentation is train_transform's, image for image and bit for bit: the random numbers
are drawn from torch's global generator in the order the per-image pipeline draws them
(for each image of the batch: FlipOrNoise's draws and its noise, RandomHorizontalFlip's,
RandomErasing's), only the arithmetic runs on the whole batch. So a training run gives the
same batches from memory as from the files (tests/test_fast_training.py checks this), and
the eval view (`faces[i]`) is eval_transform's output: the stored pixels are the ones the
per-image pipeline resizes before it scales them to [0, 1].
"""
from __future__ import annotations

import math

import torch
from torch.utils.data import BatchSampler, Dataset
from torchvision.transforms import v2

from .transforms import IMAGENET_MEAN, IMAGENET_STD, _check_order

# Above this many bytes of decoded pixels the fast path keeps reading images from disk.
MAX_BYTES = 2 * 1024 ** 3
NOISE_STD = math.sqrt(30.0) / 255.0      # FlipOrNoise's variance 30 on 0..255
ERASE_SCALE, ERASE_TRIES = (0.02, 0.1), 10
LOG_RATIO = torch.log(torch.tensor((0.3, 3.3)))       # RandomErasing's aspect ratios, drawn in log space


class InMemoryFaces(Dataset):
    """N faces as one uint8 tensor N x 3 x S x S with their labels (and the source's attributes).

    `faces[i]` is (the eval transform's tensor, label); `faces.batch(indices, train)` a whole
    batch, augmented when `train`. Indexing with a list gives a training batch, which is how
    `batch_loader`'s DataLoader asks for one.
    """

    def __init__(self, images: torch.Tensor, targets, channel_order: str = "rgb", source=None, noise_stride=None):
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"InMemoryFaces needs uint8 images N x 3 x S x S, got {images.dtype} "
                             f"{tuple(images.shape)}")
        self.images = images
        self.targets = [int(t) for t in targets]
        self.channel_order = _check_order(channel_order)
        # The memory layout of one image in the per-image pipeline (ToImage gives H x W x 3
        # memory): torch draws a noise tensor's numbers in that layout's order.
        self.noise_stride = tuple(noise_stride or images[0].contiguous().stride())
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        for name in ("classes", "identities", "landmarks", "root"):
            if source is not None and hasattr(source, name):
                setattr(self, name, getattr(source, name))

    @classmethod
    def decode(cls, dataset, size: int, channel_order: str = "rgb") -> "InMemoryFaces":
        """Every image of `dataset` (PIL images) decoded and resized to size x size, as uint8.
        A file the data set skips (on_bad_image="skip") is skipped here the same way."""
        to_uint8 = v2.Compose([v2.ToImage(), v2.Resize((size, size), antialias=True)])
        images = torch.empty(len(dataset), 3, size, size, dtype=torch.uint8)
        targets, stride = [], None
        for i in range(len(dataset)):
            image, label = dataset[i]
            pixels = to_uint8(image)                                     # 3 x S x S uint8
            images[i] = pixels
            targets.append(label)
            stride = stride or pixels.stride()
        return cls(images, targets, channel_order, source=dataset, noise_stride=stride)

    @staticmethod
    def fits(dataset, size: int) -> bool:
        return len(dataset) * 3 * size * size <= MAX_BYTES

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index):
        if isinstance(index, (list, tuple)):
            return self.batch(index, train=True)
        x = self._normalise(self.images[index: index + 1].float().mul_(1.0 / 255))
        return x[0], self.targets[index]

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.channel_order == "bgr":
            x = x.flip(1)
        return x.sub_(self.mean).div_(self.std)      # Normalize's order of operations

    def batch(self, indices, train: bool = True):
        """(images B x 3 x S x S float, labels B): the eval view, or augmented when `train`."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        x = self.images[index].float().mul_(1.0 / 255)                       # B x 3 x S x S in [0, 1]
        labels = torch.tensor([self.targets[i] for i in index.tolist()])
        if not train:
            return self._normalise(x), labels
        draws = [draw_augmentation(x.shape[-2:], self.noise_stride) for _ in range(len(x))]   # per-image order
        x = _flip_where(x, [d.extra_flip for d in draws])
        noisy = [k for k, d in enumerate(draws) if d.noise is not None]
        if noisy:
            noise = torch.stack([draws[k].noise for k in noisy])
            x[noisy] = (x[noisy] + noise * NOISE_STD).clamp_(0, 1)
        x = self._normalise(_flip_where(x, [d.flip for d in draws]))
        for k, d in enumerate(draws):
            if d.erase is not None:
                top, left, h, w = d.erase
                x[k, :, top:top + h, left:left + w] = 0
        return x, labels


def _flip_where(x: torch.Tensor, chosen: list) -> torch.Tensor:
    """x with the chosen images mirrored left-right (in place)."""
    picked = [k for k, flip in enumerate(chosen) if flip]
    if picked:
        x[picked] = x[picked].flip(-1)
    return x


class Draw:
    """One image's augmentation: extra flip, noise (3 x S x S or None), flip, erased box (or None)."""
    __slots__ = ("extra_flip", "noise", "flip", "erase")


def draw_augmentation(size, noise_stride) -> Draw:
    """The random numbers train_transform draws for one image of `size` (H, W), in its order.
    noise_stride: the image's memory layout there (randn_like fills that layout)."""
    d, (height, width) = Draw(), size
    d.extra_flip, d.noise = False, None
    if torch.rand(()) < 0.5:                             # FlipOrNoise(0.5) applies ...
        if torch.rand(()) < 0.5:                         # ... as a flip
            d.extra_flip = True
        else:                                            # ... or as noise
            d.noise = torch.empty_strided((3, height, width), noise_stride).normal_()
    d.flip = bool(torch.rand(1) < 0.5)                   # RandomHorizontalFlip
    d.erase = _erase_box(height, width) if torch.rand(1) < 0.5 else None     # RandomErasing(p=0.5)
    return d


def _erase_box(height: int, width: int):
    """RandomErasing's box (top, left, h, w): up to ERASE_TRIES draws of area and aspect ratio,
    the first that fits; None when none fits."""
    area = height * width
    for _ in range(ERASE_TRIES):
        erase_area = area * torch.empty(1).uniform_(*ERASE_SCALE).item()
        ratio = torch.exp(torch.empty(1).uniform_(float(LOG_RATIO[0]), float(LOG_RATIO[1]))).item()
        h, w = int(round(math.sqrt(erase_area * ratio))), int(round(math.sqrt(erase_area / ratio)))
        if h < height and w < width:
            top = int(torch.randint(0, height - h + 1, size=(1,)).item())
            left = int(torch.randint(0, width - w + 1, size=(1,)).item())
            return top, left, h, w
    return None


class EpochBatchSampler(BatchSampler):
    """A BatchSampler that passes set_epoch on to its sampler (fit reshuffles every epoch)."""

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)
