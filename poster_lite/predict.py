"""Expressions on real photos: find the faces, crop each with a margin, classify.

    results = predict(["me.jpg"], checkpoint="runs/nano/best")
    results[0]["faces"][0]["label"], results[0]["faces"][0]["probability"]

Faces are found by OpenCV's Haar cascade (Viola and Jones, 2001), a detector that
ships inside the OpenCV wheel, so nothing is downloaded. It finds upright, roughly
frontal faces; profiles and strongly tilted heads are missed, and such a photo is
reported as "no face found" (`detect_faces=False` classifies the whole image).

The detector's box is tight around eyes, nose and mouth, while training faces are
crops that include brows, forehead and chin: `margin` widens the box on every side
before cropping. The class names and the channel order (RGB, or BGR for the
authors' RAF-DB weights) come from the model's metadata, never from a guess.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import torch
from PIL import Image

from .errors import UserError

NO_FACE = "no face found"


# ---- reading the inputs --------------------------------------------------------------
# Every input goes through data.images, the package's one decoding contract (EXIF
# orientation, 16-bit, palette, CMYK, transparency, size limits), so a photo reads here
# exactly as the loaders read it for training.
def _read(source, index: int, array_channel_order: str):
    """(name for messages, RGB array) for a path, bytes, a PIL image or an array."""
    from .data.images import array_to_rgb, read_image, to_rgb

    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        return path, np.asarray(read_image(path))
    name = f"image {index}"
    if isinstance(source, (bytes, bytearray)):
        return name, np.asarray(read_image(source, name=name))
    if isinstance(source, Image.Image):
        return name, np.asarray(to_rgb(source, name))
    if isinstance(source, np.ndarray):
        return name, np.asarray(array_to_rgb(source, array_channel_order, where=name))
    hint = " (for an H x W x 3 tensor pass tensor.numpy(); for 3 x H x W, tensor.permute(1, 2, 0).numpy())" \
        if type(source).__name__ == "Tensor" else ""
    raise TypeError(f"predict takes image paths, bytes, PIL images or numpy arrays, got {type(source).__name__}{hint}")


def _inputs(images) -> list:
    if isinstance(images, np.ndarray) and images.ndim == 4:       # a batch N x H x W x C
        return list(images)
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


# ---- faces --------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def face_detector():
    import cv2

    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        raise UserError(f"OpenCV {cv2.__version__} has no bundled Haar face detector (OpenCV 5 dropped it); "
                        "install opencv-python-headless<5, or pass detect_faces=False")
    path = os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml")
    detector = cv2.CascadeClassifier(path)
    if detector.empty():
        raise UserError(f"OpenCV's face detector could not be loaded from {path}")
    return detector


def find_faces(rgb: np.ndarray) -> list:
    """Face boxes (x0, y0, x1, y1) in pixels, left to right."""
    import cv2

    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    smallest = max(24, min(grey.shape) // 12)
    # Windows grow 5% per scale; a face must be found by 5 overlapping windows, which
    # keeps chance patterns (foliage, fabric) from counting as faces.
    found = face_detector().detectMultiScale(grey, scaleFactor=1.05, minNeighbors=5, minSize=(smallest, smallest))
    boxes = [(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in found]
    return sorted(boxes)


def widen(box, margin: float, width: int, height: int):
    """The box grown by `margin` x its size on every side, clipped to the image."""
    x0, y0, x1, y1 = box
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    return (max(0, int(round(x0 - dx))), max(0, int(round(y0 - dy))),
            min(width, int(round(x1 + dx))), min(height, int(round(y1 + dy))))


# ---- the model ------------------------------------------------------------------------------
def _model_and_meta(model, checkpoint, device):
    if model is None and checkpoint is None:
        raise UserError("predict needs a model or a checkpoint")
    if model is None:
        from .checkpoint import load_checkpoint
        model = load_checkpoint(checkpoint, device=device)
    meta = getattr(model, "meta", None) or {}
    if "classes" not in meta or "channel_order" not in meta:
        raise UserError("the model carries no meta (classes, channel_order): load it with load_checkpoint, "
                        "train it with poster_lite.train, or set model.meta = {'classes': [...], "
                        "'channel_order': 'rgb'}")
    return model, meta


@torch.no_grad()
def predict(images, model=None, checkpoint=None, detect_faces: bool = True, array_channel_order: str = "rgb",
            margin: float = 0.15, device=None, batch_size: int = 32) -> list:
    """Classify the expression of every face in `images`.

    images: a path, the bytes of an image file, a PIL image, a numpy array (H x W x 3
    in `array_channel_order`: "rgb", or "bgr" for arrays from cv2.imread; H x W grey;
    N x H x W x 3 batch) or a list of these. All are read by `data.images` (16-bit,
    palette, CMYK, EXIF rotation, transparency over grey; too large or too small is an
    error naming the image). Returns one dict per image: {"source", "faces": [{"box": (x0, y0,
    x1, y1), "label", "probability", "probabilities": {class: p}}], "message"}, where
    message is "no face found" when the detector found none, else None.
    """
    from .data.transforms import eval_transform

    if array_channel_order not in ("rgb", "bgr"):
        raise UserError(f"array_channel_order must be 'rgb' or 'bgr', got {array_channel_order!r}")
    if not isinstance(margin, (int, float)) or not 0 <= margin <= 1:
        raise UserError(f"margin must be a number in 0..1 (a share of the face box added on each side), got {margin!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise UserError(f"batch_size must be a whole number of at least 1, got {batch_size!r}")
    model, meta = _model_and_meta(model, checkpoint, device)
    classes = list(meta["classes"])
    transform = eval_transform(size=model.config.input_size, channel_order=meta["channel_order"])

    results, crops, owners = [], [], []
    for index, source in enumerate(_inputs(images)):
        name, rgb = _read(source, index, array_channel_order)
        height, width = rgb.shape[:2]
        if detect_faces:
            boxes = [widen(b, margin, width, height) for b in find_faces(rgb)]
        else:
            boxes = [(0, 0, width, height)]
        results.append({"source": name, "faces": [], "message": None if boxes else NO_FACE})
        for box in boxes:
            x0, y0, x1, y1 = box
            crops.append(transform(Image.fromarray(rgb[y0:y1, x0:x1])))
            owners.append((len(results) - 1, box))

    was_training = model.training
    model.eval()
    device = next(iter(model.parameters())).device
    try:
        for start in range(0, len(crops), batch_size):
            batch = torch.stack(crops[start:start + batch_size]).to(device)
            logits = model(batch)
            if isinstance(logits, (tuple, list)):
                logits = logits[0]
            for probs, (owner, box) in zip(torch.softmax(logits.float(), -1).cpu().tolist(),
                                           owners[start:start + batch_size]):
                best = int(np.argmax(probs))
                results[owner]["faces"].append({
                    "box": box, "label": classes[best], "probability": probs[best],
                    "probabilities": dict(zip(classes, probs))})
    finally:
        model.train(was_training)
    return results
