"""What every picture needs: a figure that is not tied to pyplot, saving, and images to show.

Figures are made with `matplotlib.figure.Figure`, not `pyplot`, on purpose: a notebook
then shows a returned figure exactly once (pyplot would show it a second time at the
end of the cell), widget callbacks do not pile up open figures, and plain scripts work
under any backend. Show one in a notebook by leaving it as a cell's last value or with
`display(fig)`; in a script pass `save="picture.png"`.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from ..data import labels


def new_figure(nrows: int = 1, ncols: int = 1, size=(4.0, 4.0), into=None, **subplot_kw):
    """(figure, 2-D array of axes) with constrained layout, so that nothing is clipped.

    `into`: draw into this existing Figure or SubFigure instead (widgets compose
    several pictures into one figure that way); `size` is then ignored.
    """
    fig = into if into is not None else Figure(figsize=size, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **subplot_kw)
    return fig, axes


def finish(fig: Figure, save=None, dpi: int = 110) -> Figure:
    """Save the figure as a PNG when `save` is a path; always hand the figure back."""
    if save is not None:
        path = Path(save)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.figure.savefig(path, dpi=dpi)          # a SubFigure saves its whole figure
    return fig


def png_bytes(fig: Figure, dpi: int = 90) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def channel_order_of(model, channel_order=None) -> str:
    """An explicit choice wins; otherwise the checkpoint's metadata; otherwise RGB."""
    if channel_order is not None:
        return channel_order
    meta = getattr(model, "meta", None) or {}
    return meta.get("channel_order", "rgb")


def class_names(source=None, num_classes: int | None = None) -> list:
    """Class names from a results dict, a model's metadata or a dataset; else the package's list."""
    return labels.class_names(source, num_classes=num_classes)


def as_image(image, channel_order: str = "rgb") -> np.ndarray:
    """Anything image-like -> float RGB array H x W x 3 in [0, 1], ready for imshow.

    A tensor with values outside [0, 1] is taken to be a normalised model input and
    is undone by `poster_lite.data.transforms.denormalize` (which also turns BGR
    inputs back into RGB). Arrays and PIL images are taken to be RGB.
    """
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if isinstance(image, torch.Tensor):
        tensor = image.detach().cpu().float()
        if tensor.dim() == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.dim() != 3 or tensor.shape[0] not in (1, 3):
            raise ValueError(f"expected an image tensor C x H x W, got shape {tuple(image.shape)}")
        if tensor.min() < 0 or tensor.max() > 1:
            from ..data.transforms import denormalize
            return np.clip(np.asarray(denormalize(tensor, channel_order=channel_order)), 0, 1)
        array = tensor.expand(3, -1, -1).permute(1, 2, 0).numpy()
        return array[..., ::-1].copy() if channel_order == "bgr" else array
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = array.transpose(1, 2, 0)                                  # C x H x W -> H x W x C
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an image H x W x 3, got an array of shape {array.shape}")
    array = array[..., :3] if array.shape[-1] != 1 else np.repeat(array, 3, axis=-1)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    return np.clip(array.astype(np.float32), 0, 1)


def model_input(model, image, channel_order: str | None = None):
    """(1 x 3 x S x S tensor on the model's device, RGB display image H x W x 3).

    A ready tensor (already normalised, 3 x S x S or 1 x 3 x S x S) is used as it is;
    PIL images and arrays go through the evaluation transform of `poster_lite.data`.
    """
    order = channel_order_of(model, channel_order)
    device = next(model.parameters()).device
    if isinstance(image, torch.Tensor) and image.dim() in (3, 4) and image.shape[-3] == 3:
        batch = image if image.dim() == 4 else image.unsqueeze(0)
        return batch[:1].to(device), as_image(batch[0], order)
    from ..data.transforms import eval_transform
    rgb = as_image(image)
    pil = Image.fromarray((rgb * 255).round().astype(np.uint8))
    batch = eval_transform(size=model.config.input_size, channel_order=order)(pil).unsqueeze(0)
    return batch.to(device), rgb


class eval_mode:
    """Put a model in eval mode for a while and give it back in the mode it had."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        self.model.train(self.was_training)
        return False
