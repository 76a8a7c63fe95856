"""One input contract for images: every odd file reads the same in the loaders, `predict` and `data check`."""
import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from poster_lite.data import CLASSES, load
from poster_lite.data.images import BACKGROUND, BadImage, MissingImage, array_to_rgb, read_image, to_rgb
from poster_lite.errors import UserError
from poster_lite.predict import predict

pytestmark = pytest.mark.usefixtures("one_thread")


def _pattern(width=40, height=32, seed=0):
    """An RGB test picture with structure, so a rotation or a channel swap shows."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    pixels[:, : width // 2, 0] = 250         # left half reddish: orientation is visible
    return pixels


def _grey(width=40, height=32, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)


def _save(image: Image.Image, path, **kw):
    image.save(path, **kw)
    return path


# ----------------------------------------------------------------------------- modes
def test_sixteen_bit_png_reads_as_its_eight_bit_copy(tmp_path):
    grey = _grey()
    sixteen = Image.fromarray(grey.astype(np.uint16) * 257)          # 0..255 -> 0..65535 exactly
    assert sixteen.mode == "I;16"
    path16 = _save(sixteen, tmp_path / "face16.png")
    path8 = _save(Image.fromarray(grey), tmp_path / "face8.png")
    assert Image.open(path16).mode.startswith("I")
    a, b = np.asarray(read_image(path16)), np.asarray(read_image(path8))
    assert a.shape == (32, 40, 3) and np.array_equal(a, b)
    # A plain convert("RGB") clips 16-bit values at 255: the bug this contract removes.
    assert np.asarray(Image.open(path16).convert("RGB")).mean() > 250 > a.mean()
    # mode I (a 32-bit int image) follows the same 16-bit rule
    assert np.array_equal(np.asarray(to_rgb(sixteen.convert("I"))), b)


def test_sixteen_bit_png_predicts_the_same_as_its_eight_bit_copy(tmp_path, nano):
    nano.meta = {"classes": list(CLASSES), "channel_order": "rgb"}
    face = np.random.default_rng(3).integers(0, 256, (112, 112), dtype=np.uint8)
    path8 = _save(Image.fromarray(face), tmp_path / "face8.png")
    path16 = _save(Image.fromarray(face.astype(np.uint16) * 257), tmp_path / "face16.png")
    torch.manual_seed(0)
    eight, sixteen, array16 = predict([str(path8), str(path16), face.astype(np.uint16) * 257], model=nano.eval(),
                                      detect_faces=False)
    p8 = list(eight["faces"][0]["probabilities"].values())
    assert list(sixteen["faces"][0]["probabilities"].values()) == pytest.approx(p8, abs=1e-6)
    assert list(array16["faces"][0]["probabilities"].values()) == pytest.approx(p8, abs=1e-6)
    # and the loaders read that file exactly as predict does
    root = tmp_path / "faces"
    for name in ("happy", "sad"):
        (root / name).mkdir(parents=True)
        _save(Image.fromarray(face.astype(np.uint16) * 257), root / name / "a.png")
    image, _ = load("folder", root=root)[0]
    assert np.array_equal(np.asarray(image), np.asarray(read_image(path8)))


def test_palette_with_transparency_and_alpha_go_over_grey(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:10, :, 3] = 255                     # top half opaque red, bottom half transparent
    image = read_image(_save(Image.fromarray(rgba), tmp_path / "rgba.png"))
    pixels = np.asarray(image)
    assert tuple(pixels[2, 2]) == (200, 0, 0) and tuple(pixels[15, 15]) == BACKGROUND
    palette = Image.fromarray(rgba[..., :3]).convert("P")
    transparent = palette.getpixel((15, 15))
    path = _save(palette, tmp_path / "palette.png", transparency=transparent)
    assert Image.open(path).mode == "P" and "transparency" in Image.open(path).info
    pixels = np.asarray(read_image(path))
    assert tuple(pixels[15, 15]) == BACKGROUND
    la = Image.fromarray(np.stack([_grey(20, 20), rgba[..., 3]], -1), mode="LA")
    pixels = np.asarray(read_image(_save(la, tmp_path / "la.png")))
    assert tuple(pixels[15, 15]) == BACKGROUND and pixels[2, 2, 0] == pixels[2, 2, 1] == pixels[2, 2, 2]
    one_bit = read_image(_save(Image.fromarray(_grey(20, 20) > 128), tmp_path / "bits.png"))
    assert one_bit.mode == "RGB" and set(np.unique(np.asarray(one_bit))) <= {0, 255}


def test_cmyk_jpeg_reads_as_rgb(tmp_path):
    cmyk = Image.new("CMYK", (24, 24), (0, 255, 255, 0))      # pure red in CMYK
    path = _save(cmyk, tmp_path / "print.jpg", quality=95)
    assert Image.open(path).mode == "CMYK"
    pixels = np.asarray(read_image(path)).astype(int)
    assert pixels.shape == (24, 24, 3)
    assert pixels[..., 0].mean() > 200 and pixels[..., 1].mean() < 40 and pixels[..., 2].mean() < 40


def test_exif_orientation_is_applied_everywhere(tmp_path, nano):
    pixels = _pattern(48, 32)
    exif = Image.Exif()
    exif[0x0112] = 6                         # "rotate 90 degrees clockwise to display"
    path = _save(Image.fromarray(pixels), tmp_path / "phone.png", exif=exif)
    upright = np.asarray(Image.fromarray(pixels).transpose(Image.Transpose.ROTATE_270))
    image = read_image(path)
    assert image.size == (32, 48)
    assert np.array_equal(np.asarray(image), upright)
    # the same file in a class folder, and as a PIL image handed to predict
    for name in ("happy", "sad"):
        (tmp_path / "tree" / name).mkdir(parents=True)
        _save(Image.fromarray(pixels), tmp_path / "tree" / name / "a.png", exif=exif)
    assert np.array_equal(np.asarray(load("folder", root=tmp_path / "tree")[0][0]), upright)
    nano.meta = {"classes": list(CLASSES), "channel_order": "rgb"}
    [result] = predict(Image.open(path), model=nano, detect_faces=False)
    assert result["faces"][0]["box"] == (0, 0, 32, 48)


# ----------------------------------------------------------------------------- what is refused, and how
def test_truncated_corrupt_empty_and_missing_files_name_the_path(tmp_path):
    good = _save(Image.fromarray(_pattern()), tmp_path / "good.png")
    for suffix, fmt in ((".png", "PNG"), (".jpg", "JPEG")):
        data = io.BytesIO()
        Image.fromarray(_pattern(64, 64)).save(data, fmt)
        cut = tmp_path / f"cut{suffix}"
        cut.write_bytes(data.getvalue()[: len(data.getvalue()) // 2])
        with pytest.raises(BadImage, match=f"cut{suffix}.*(truncated|corrupt)"):
            read_image(cut)
    (tmp_path / "text.jpg").write_text("not a picture")
    with pytest.raises(BadImage, match="text.jpg: not an image format"):
        read_image(tmp_path / "text.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(BadImage, match="empty.png.*empty"):
        read_image(tmp_path / "empty.png")
    with pytest.raises(MissingImage, match="nothere.png") as missing:
        read_image(tmp_path / "nothere.png")
    assert isinstance(missing.value, FileNotFoundError) and isinstance(missing.value, UserError)
    with pytest.raises(BadImage, match="is a folder"):
        read_image(tmp_path)
    with pytest.raises(BadImage, match="upload.png"):
        read_image(b"\x89PNG junk", name="upload.png")
    assert read_image(good.read_bytes()).size == (40, 32)


def test_truncated_stays_an_error_when_another_library_allows_truncated_images(tmp_path):
    from PIL import ImageFile

    data = io.BytesIO()
    Image.fromarray(_pattern(64, 64)).save(data, "JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data.getvalue()[:-200])
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        with pytest.raises(BadImage, match="cut.jpg"):
            read_image(cut)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True, "the global setting is restored"
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def _png_header_only(width, height):
    """A PNG whose header claims width x height (a decompression bomb needs no more to be caught)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def test_decompression_bombs_and_tiny_images_are_refused_with_sizes(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(30_000, 30_000))         # 900 megapixels in 100 bytes
    with pytest.raises(BadImage, match=r"bomb.png.*too large|bomb.png is 30000 x 30000"):
        read_image(bomb)
    big = tmp_path / "big.png"
    big.write_bytes(_png_header_only(12_000, 9_000))            # 108 MP: under PIL's own limit, over ours
    with pytest.raises(BadImage, match=r"big.png is 12000 x 9000 = 108,000,000 pixels, over the limit"):
        read_image(big)
    with pytest.raises(BadImage, match="50 x 40 = 2,000 pixels"):
        read_image(_save(Image.fromarray(_pattern(50, 40)), tmp_path / "ok.png"), max_pixels=1000)
    tiny = _save(Image.fromarray(_pattern(8, 8)), tmp_path / "tiny.png")
    with pytest.raises(BadImage, match=r"tiny.png is 8 x 8 pixels, too small"):
        read_image(tiny)
    with pytest.raises(BadImage, match="too small"):
        array_to_rgb(np.zeros((4, 64), np.uint8))


def test_arrays_follow_the_same_rules():
    grey = _grey()
    reference = np.asarray(array_to_rgb(grey))
    assert np.array_equal(np.asarray(array_to_rgb(grey.astype(np.uint16) * 257)), reference)
    assert np.array_equal(np.asarray(array_to_rgb(grey / 255.0)), reference)
    assert np.array_equal(np.asarray(array_to_rgb(grey[..., None])), reference)
    assert np.array_equal(np.asarray(array_to_rgb(grey.astype(np.int64))), reference)
    rgb = _pattern()
    assert np.array_equal(np.asarray(array_to_rgb(rgb[..., ::-1], "bgr")), rgb)
    assert set(np.unique(np.asarray(array_to_rgb(grey > 100)))) == {0, 255}
    with pytest.raises(BadImage, match="NaN"):
        array_to_rgb(np.full((20, 20), np.nan))
    with pytest.raises(UserError, match=r"channels first\? use array.transpose\(1, 2, 0\)"):
        array_to_rgb(np.zeros((3, 40, 40), np.uint8))
    with pytest.raises(UserError, match="dtype complex"):
        array_to_rgb(np.zeros((20, 20), np.complex64))


def test_predict_refuses_bad_images_and_options_naming_them(tmp_path, nano):
    nano.meta = {"classes": list(CLASSES), "channel_order": "rgb"}
    tiny = _save(Image.fromarray(_pattern(10, 10)), tmp_path / "tiny.png")
    with pytest.raises(BadImage, match="tiny.png"):
        predict(str(tiny), model=nano)
    with pytest.raises(UserError, match="margin must be"):
        predict(_pattern(), model=nano, margin=-0.5)
    with pytest.raises(UserError, match="batch_size must be"):
        predict(_pattern(), model=nano, batch_size=0)
    with pytest.raises(TypeError, match=r"got Tensor \(for an H x W x 3 tensor pass tensor.numpy\(\)"):
        predict(torch.zeros(3, 64, 64), model=nano)
    data = _save(Image.fromarray(_pattern(64, 64)), tmp_path / "ok.png").read_bytes()
    [result] = predict(data, model=nano, detect_faces=False)           # the bytes of a file, as uploads come
    assert result["source"] == "image 0" and result["faces"][0]["box"] == (0, 0, 64, 64)
