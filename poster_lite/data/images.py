"""One input contract for images: every file, upload, PIL image or array becomes RGB here.

    from poster_lite.data.images import read_image
    image = read_image("face.png")            # an RGB PIL image, fully decoded

The loaders, `data check`, `predict` and the upload widget all call this module, so an
image reads the same everywhere. What it does, in order:

- EXIF orientation is applied (phone photos store pixels sideways plus a rotation tag).
- 16-bit greyscale (PIL modes I;16*, I) is scaled by 255/65535, so a 16-bit copy of an
  8-bit image reads back as that image (plain `convert("RGB")` clips it to white).
  Floating-point images (mode F) are taken as 0..1 when their maximum is at most 1,
  else as 0..255.
- Transparency (RGBA, LA, PA, palette or greyscale with a transparent colour) is laid
  over mid grey, the colour a normalised image has at zero.
- Palette, CMYK, YCbCr, 1-bit and the rest go through PIL's conversion to RGB.
- More than MAX_PIXELS pixels (a decompression bomb, or a scan far beyond any face) and
  fewer than MIN_SIDE pixels on a side (a thumbnail or a tracking pixel) are errors.
- A missing, empty, truncated or undecodable file is an error naming the file.
Multi-frame files (GIF, TIFF) give their first frame.
"""
from __future__ import annotations

import io
import os
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import UserError

# 90 megapixels: a 108 MP phone photo is refused, a 48 MP one is read. Decoding a
# 90 MP image takes about 270 MB as RGB; past that a file is more likely a bomb.
MAX_PIXELS = 90_000_000
# 16 px: the smallest face worth classifying is FER2013's 48 px; anything under 16 px
# on a side is a thumbnail, an icon or a broken export, not a face.
MIN_SIDE = 16
# The colour transparent pixels get: mid grey is what the normalisation maps to about 0.
BACKGROUND = (128, 128, 128)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif",
                  ".pgm", ".ppm", ".pnm"}
Image.init()
if "AVIF" in Image.OPEN:        # Pillow 11.2+ wheels decode AVIF
    IMAGE_SUFFIXES.add(".avif")
# Photo formats this cannot decode: a folder holding them is told so, not silently emptied.
UNREADABLE_PHOTO_SUFFIXES = {".heic", ".heif", ".avif", ".jxl", ".svg", ".raw", ".dng", ".cr2", ".nef",
                             ".arw"} - IMAGE_SUFFIXES

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_WITH_ALPHA = ("RGBA", "RGBa", "LA", "La", "PA")


class BadImage(UserError):
    """An image that exists but cannot be used: undecodable, truncated, too large or too small."""


class MissingImage(UserError, FileNotFoundError):
    """An image path that names no file (a UserError for the CLI, a FileNotFoundError for callers)."""


def _describe(source, name) -> str:
    if name is not None:
        return str(name)
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return "the image"


def read_image(source, name=None, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> Image.Image:
    """A path, bytes or a binary file object -> a fully decoded RGB PIL image.

    name: what error messages call the image (default: the path). Raises MissingImage
    for a path without a file and BadImage for everything else that is wrong; both
    name the image and say what was wrong.
    """
    where = _describe(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise BadImage(f"cannot read image {where}: it is empty (0 bytes)")
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            raise BadImage(f"cannot read image {where}: it is a folder, not a file")
        if not os.path.exists(path):
            kind = "a link to a missing file" if os.path.islink(path) else "missing"
            raise MissingImage(f"image file is {kind}: {where}")
        if os.path.getsize(path) == 0:
            raise BadImage(f"cannot read image {where}: the file is empty (0 bytes)")
    elif not hasattr(source, "read"):
        raise TypeError(f"read_image takes a path, bytes or a binary file, got {type(source).__name__}")
    try:
        with warnings.catch_warnings():
            # PIL warns past 89 MP; _check_size below refuses with a message of its own.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
        with image:
            _check_size(image, where, max_pixels, min_side)
            _load_complete(image)
            return to_rgb(image, where)
    except (BadImage, MissingImage):
        raise
    except PermissionError:
        raise BadImage(f"cannot read image {where}: permission denied") from None
    except Image.DecompressionBombError as e:
        raise BadImage(f"image {where} is too large to decode safely ({e}); the limit is {max_pixels:,} "
                       f"pixels") from None
    except UnidentifiedImageError:
        raise BadImage(f"cannot read image {where}: not an image format this can decode "
                       f"(PIL reads {', '.join(sorted(s.lstrip('.') for s in IMAGE_SUFFIXES))})") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        # PIL's plugins report truncation and corruption with any of these.
        raise BadImage(f"cannot read image {where}: {e or type(e).__name__} (the file is truncated or "
                       f"corrupt)") from None


def _check_size(image: Image.Image, where: str, max_pixels: int, min_side: int) -> None:
    width, height = image.size
    if width * height > max_pixels:
        raise BadImage(f"image {where} is {width} x {height} = {width * height:,} pixels, over the limit of "
                       f"{max_pixels:,} (a decompression bomb, or far larger than a face needs); shrink it first")
    if min(width, height) < min_side:
        raise BadImage(f"image {where} is {width} x {height} pixels, too small to hold a face (at least "
                       f"{min_side} px a side)")


def _load_complete(image: Image.Image) -> None:
    # Another library may have switched on PIL's global "fill truncated images with grey";
    # a truncated face must still be an error here.
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        image.load()
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def to_rgb(image: Image.Image, where: str = "the image") -> Image.Image:
    """A PIL image in any mode (EXIF-rotated if tagged) -> RGB, by the rules of this module."""
    try:
        image = ImageOps.exif_transpose(image) or image
    except Exception:       # a damaged EXIF block must not cost the pixels: keep them unrotated
        pass
    mode = image.mode
    if mode in _SIXTEEN_BIT:
        values = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.rint(values * (255.0 / 65535.0)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)).convert("RGB")
    if mode in _WITH_ALPHA or (mode in ("P", "L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return image
    try:
        return image.convert("RGB")
    except ValueError as e:
        raise BadImage(f"cannot convert image {where} from colour mode {mode} to RGB: {e}") from None


def array_to_rgb(array, channel_order: str = "rgb", where: str = "the image array",
                 min_side: int = MIN_SIDE) -> Image.Image:
    """An H x W, H x W x 1, H x W x 3 or H x W x 4 array -> RGB PIL image.

    uint8 is taken as is, uint16 as 16-bit (scaled by 255/65535, as files are), other
    integers as 0..255, floats as 0..1 when their maximum is at most 1 (else 0..255),
    booleans as black and white. channel_order "bgr" (cv2.imread's order) is flipped.
    A fourth channel is alpha, laid over mid grey.
    """
    if channel_order not in ("rgb", "bgr"):
        raise UserError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        hint = (" (channels first? use array.transpose(1, 2, 0))"
                if array.ndim == 3 and array.shape[0] in (1, 3, 4) else "")
        raise UserError(f"{where} must be H x W (grey) or H x W x 3/4, got shape {array.shape}{hint}")
    if array.size == 0 or min(array.shape[:2]) < min_side:
        raise BadImage(f"{where} is {array.shape[1] if array.ndim > 1 else 0} x {array.shape[0]} pixels, too "
                       f"small to hold a face (at least {min_side} px a side)")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype == np.uint16:
        array = np.rint(array * (255.0 / 65535.0)).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise BadImage(f"{where} holds NaN or infinite values")
        scale = 255.0 if array.max() <= 1.0 else 1.0
        array = np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.integer):
            raise UserError(f"{where} has dtype {array.dtype}; give uint8, uint16, float or bool pixels")
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 3 and channel_order == "bgr":
        array = array[..., [2, 1, 0, 3][:array.shape[-1]]]
    image = Image.fromarray(np.ascontiguousarray(array))
    return to_rgb(image, where)
