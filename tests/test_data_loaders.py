"""Real-data loaders on tiny fixture trees written here; bad inputs; transforms; sampler; CLI."""

import numpy as np
import pytest
import torch
from PIL import Image

from poster_lite.cli import main as cli
from poster_lite.data import CLASSES, CLASSES_8, load
from poster_lite.data.datasets import BadImage
from poster_lite.data.sampler import ClassBalancedSampler, class_weights
from poster_lite.data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize, eval_transform, train_transform
from poster_lite.errors import UserError


def _jpeg(path, value=0, mode="RGB", size=(24, 24)):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    if mode == "L":
        image = image.convert("L")
    if mode == "RGBA":
        image = image.convert("RGBA")
        image.save(path.with_suffix(".png"))
        path.with_suffix(".png").rename(path)   # a PNG behind a .jpg name, as happens in scraped sets
        return
    image.save(path, quality=95)


def make_raf(root, n_train=14, n_test=7):
    lines = []
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(1, n + 1):
            label = (i - 1) % 7 + 1
            lines.append(f"{split}_{i:05d}.jpg {label}")
            _jpeg(root / "Image" / "aligned" / f"{split}_{i:05d}_aligned.jpg", value=i)
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return root


def make_affectnet(root, labels=(0, 1, 2, 3, 4, 5, 6, 7)):
    for folder, stem in (("train_set", "train"), ("valid_set", "valid")):
        rows = []
        for i, label in enumerate(labels):
            _jpeg(root / folder / "images" / f"{i:04d}.jpg", value=i)
            rows.append(f"{i:04d}.jpg {label}")
        (root / folder / f"{stem}_annotations_8class.txt").write_text("\n".join(rows) + "\n")
        seven = [r for r in rows if not r.endswith(" 7")]
        (root / folder / f"{stem}_annotations_7class.txt").write_text("\n".join(seven) + "\n")
    return root


def make_fer_csv(path, rows=(("0", "Training"), ("3", "Training"), ("5", "PublicTest"), ("6", "PrivateTest"))):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = " ".join(str(v % 256) for v in range(48 * 48))
    lines = ["emotion,pixels,Usage"] + [f"{label},{pixels},{usage}" for label, usage in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- RAF-DB
def test_raf_db_splits_labels_and_rgb_images(tmp_path):
    root = make_raf(tmp_path / "raf")
    test = load("raf-db", split="test", root=root)
    assert len(test) == 7 and test.targets == list(range(7)) and test.classes == list(CLASSES)
    image, label = test[2]
    assert image.mode == "RGB" and label == 2
    assert test.landmarks is None and test.identities is None


def test_raf_db_validation_is_carved_stratified_seeded_and_excluded_from_train(tmp_path):
    root = make_raf(tmp_path / "raf", n_train=70)
    train = load("raf-db", root=root, val_fraction=0.2)
    val = load("raf-db", split="val", root=root, val_fraction=0.2)
    again = load("raf-db", split="val", root=root, val_fraction=0.2)
    assert len(train) + len(val) == 70 and len(val) == 14
    assert set(train.paths).isdisjoint(val.paths) and val.paths == again.paths
    assert np.bincount(val.targets, minlength=7).tolist() == [2] * 7
    whole = load("raf-db", root=root, val_fraction=0)
    assert len(whole) == 70
    with pytest.raises(UserError, match="does not take"):
        load("raf-db", root=root, val_share=0.2)


def test_raf_db_missing_label_file_names_it(tmp_path):
    (tmp_path / "raf").mkdir()
    with pytest.raises(UserError, match="list_patition_label.txt"):
        load("raf-db", root=tmp_path / "raf")


def test_raf_db_label_outside_range_names_file_and_line(tmp_path):
    root = make_raf(tmp_path / "raf")
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    lines = label_file.read_text().splitlines()
    lines[4] = "train_00005.jpg 8"
    label_file.write_text("\n".join(lines))
    with pytest.raises(UserError, match=r"list_patition_label.txt:5: label 8 is outside 1..7"):
        load("raf-db", root=root)


def test_raf_db_listed_image_absent_names_file_and_line(tmp_path):
    root = make_raf(tmp_path / "raf")
    (root / "Image" / "aligned" / "test_00003_aligned.jpg").unlink()
    with pytest.raises(UserError, match=r"test_00003_aligned.jpg \(listed at .*list_patition_label.txt:17\)"):
        load("raf-db", split="test", root=root)


def test_truncated_image_raises_naming_it_or_is_skipped_with_a_counted_warning(tmp_path):
    root = make_raf(tmp_path / "raf")
    bad = root / "Image" / "aligned" / "test_00002_aligned.jpg"
    bad.write_bytes(bad.read_bytes()[:60])
    strict = load("raf-db", split="test", root=root)
    with pytest.raises(BadImage, match="test_00002_aligned.jpg"):
        strict[1]
    lenient = load("raf-db", split="test", root=root, on_bad_image="skip")
    with pytest.warns(UserWarning, match=r"test_00002_aligned.jpg.*1 skipped so far"):
        image, label = lenient[1]
    assert label == lenient.targets[2] and image.mode == "RGB"
    assert load("raf-db", root=root).on_bad_image == "skip", "training splits skip by default"


def test_bad_image_inside_a_dataloader_worker_is_explained(tmp_path):
    root = make_raf(tmp_path / "raf")
    (root / "Image" / "aligned" / "test_00001_aligned.jpg").write_bytes(b"not a jpeg at all")
    loader = torch.utils.data.DataLoader(load("raf-db", split="test", root=root, transform=eval_transform(16)),
                                         batch_size=4, num_workers=1)
    with pytest.raises(Exception, match="test_00001_aligned.jpg"):
        next(iter(loader))


def test_greyscale_and_rgba_images_come_back_rgb(tmp_path):
    root = make_raf(tmp_path / "raf")
    _jpeg(root / "Image" / "aligned" / "test_00001_aligned.jpg", mode="L")
    _jpeg(root / "Image" / "aligned" / "test_00002_aligned.jpg", mode="RGBA")
    ds = load("raf-db", split="test", root=root)
    for i in (0, 1):
        image, _ = ds[i]
        assert image.mode == "RGB" and image.size == (24, 24)
    grey = np.asarray(ds[0][0])
    assert (grey[..., 0] == grey[..., 1]).all()


# ----------------------------------------------------------------------------- AffectNet
def test_affectnet_labels_are_mapped_to_the_package_order(tmp_path):
    root = make_affectnet(tmp_path / "affectnet")
    eight = load("affectnet-8", split="test", root=root)
    names = [eight.classes[t] for t in eight.targets]
    assert names == ["Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger", "Contempt"]
    assert eight.classes == list(CLASSES_8)
    seven = load("affectnet-7", split="test", root=root)
    assert seven.classes == list(CLASSES) and [seven.classes[t] for t in seven.targets] == names[:7]
    train = load("affectnet-8", root=root, val_fraction=0)
    assert len(train) == 8


def test_affectnet_seven_class_file_with_contempt_is_rejected(tmp_path):
    root = make_affectnet(tmp_path / "affectnet")
    (root / "valid_set" / "valid_annotations_7class.txt").write_text("0000.jpg 0\n0007.jpg 7\n")
    with pytest.raises(UserError, match=r"valid_annotations_7class.txt:2: label 7 is outside 0..6"):
        load("affectnet-7", split="test", root=root)


# ----------------------------------------------------------------------------- FER2013
def test_fer2013_csv_splits_and_label_mapping(tmp_path):
    path = make_fer_csv(tmp_path / "fer" / "fer2013.csv")
    train = load("fer2013", root=tmp_path / "fer")
    assert [train.classes[t] for t in train.targets] == ["Anger", "Happiness"]
    image, _ = train[0]
    assert image.mode == "RGB" and image.size == (48, 48)
    assert [CLASSES[t] for t in load("fer2013", split="val", root=path).targets] == ["Surprise"]
    assert [CLASSES[t] for t in load("fer2013", split="test", root=path).targets] == ["Neutral"]


def test_fer2013_bad_row_names_line_and_torchvision_layout_has_train_only(tmp_path):
    path = make_fer_csv(tmp_path / "fer" / "fer2013.csv")
    text = path.read_text().splitlines()
    text[2] = "3,1 2 3,Training"
    path.write_text("\n".join(text))
    with pytest.raises(UserError, match=r"fer2013.csv:3: expected 2304 pixel values"):
        load("fer2013", root=path)
    tv = tmp_path / "tv" / "fer2013" / "train.csv"
    tv.parent.mkdir(parents=True)
    tv.write_text("emotion,pixels\n2," + " ".join(["7"] * 2304) + "\n3," + " ".join(["9"] * 2304) + "\n")
    assert [CLASSES[t] for t in load("fer2013", root=tmp_path / "tv").targets] == ["Fear", "Happiness"]
    with pytest.raises(UserError, match="only split='train'"):
        load("fer2013", split="test", root=tmp_path / "tv")


# ----------------------------------------------------------------------------- folders
def test_folder_with_expression_names_maps_to_classes(tmp_path):
    for name, k in (("happy", 0), ("Sad", 1), ("angry", 2)):
        _jpeg(tmp_path / "faces" / name / f"{k}.jpg", value=k)
    ds = load("folder", root=tmp_path / "faces")
    assert ds.classes == list(CLASSES)
    assert sorted(CLASSES[t] for t in ds.targets) == ["Anger", "Happiness", "Sadness"]
    with pytest.raises(UserError, match="no 'test' split|no .test. split"):
        load("folder", split="test", root=tmp_path / "faces")


def test_folder_with_other_names_and_split_folders(tmp_path):
    for split in ("train", "test"):
        for name in ("zebra", "apple"):
            _jpeg(tmp_path / "pets" / split / name / "x.png", value=1)
    ds = load("folder", split="test", root=tmp_path / "pets")
    assert ds.classes == ["apple", "zebra"] and len(ds) == 2


def test_empty_folders_are_errors_naming_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no class folders in .*empty"):
        load("folder", root=tmp_path / "empty")
    (tmp_path / "hollow" / "happy").mkdir(parents=True)
    (tmp_path / "hollow" / "happy" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError, match="no images in .*hollow"):
        load("folder", root=tmp_path / "hollow")
    with pytest.raises(UserError, match="does not exist"):
        load("raf-db", root=tmp_path / "nowhere")
    with pytest.raises(UserError, match="unknown data set"):
        load("imagenet")


# ----------------------------------------------------------------------------- transforms
def _pil(seed=0, size=32):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_eval_transform_normalises_and_bgr_matches_the_release():
    image = _pil()
    x = np.asarray(image, np.float32) / 255
    rgb = eval_transform(32)(image)
    bgr = eval_transform(32, channel_order="bgr")(image)
    mean, std = np.array(IMAGENET_MEAN, np.float32), np.array(IMAGENET_STD, np.float32)
    assert rgb.shape == (3, 32, 32) and rgb.dtype == torch.float32
    assert np.allclose(rgb.permute(1, 2, 0).numpy(), (x - mean) / std, atol=1e-5)
    # The release normalises the BGR tensor with the RGB-ordered statistics.
    assert np.allclose(bgr.permute(1, 2, 0).numpy(), (x[..., ::-1] - mean) / std, atol=1e-5)
    assert np.allclose(denormalize(bgr, "bgr"), x, atol=1e-5)
    assert np.allclose(denormalize(torch.stack([rgb, rgb]))[1], x, atol=1e-5)


def test_train_transform_is_random_but_seeded():
    t = train_transform(size=40)
    torch.manual_seed(1)
    a = [t(_pil(k)) for k in range(6)]
    torch.manual_seed(1)
    b = [t(_pil(k)) for k in range(6)]
    assert a[0].shape == (3, 40, 40)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    plain = eval_transform(40)
    assert any(not torch.allclose(u, plain(_pil(k))) for k, u in enumerate(a))
    with pytest.raises(UserError, match="channel_order"):
        eval_transform(channel_order="rbg")


# ----------------------------------------------------------------------------- sampler
def test_class_balanced_sampler_evens_out_a_skewed_set():
    targets = [0] * 180 + [1] * 15 + [2] * 5
    sampler = ClassBalancedSampler(targets, num_samples=3000, seed=0)
    drawn = np.bincount(np.array(targets)[list(sampler)], minlength=3) / 3000
    assert np.allclose(drawn, 1 / 3, atol=0.04)
    sampler.set_epoch(0)
    assert list(sampler) == list(ClassBalancedSampler(targets, num_samples=3000, seed=0))
    assert list(sampler) != list(ClassBalancedSampler(targets, num_samples=3000, seed=0)), "epochs differ"
    once = list(ClassBalancedSampler(targets, replacement=False))
    assert sorted(once) == list(range(200))
    w = class_weights(targets, 4)
    assert w[3] == 0 and w[2] > w[1] > w[0] and torch.isclose(w[:3].mean(), torch.tensor(1.0))


# ----------------------------------------------------------------------------- CLI
def test_cli_synthfer_and_data_check(tmp_path, capsys):
    out = tmp_path / "sf"
    assert cli(["synthfer", "--out", str(out), "--n-train", "7", "--n-val", "7", "--n-test", "7", "--quiet"]) == 0
    assert len(list((out / "Image" / "aligned").glob("*.jpg"))) == 21
    capsys.readouterr()
    assert cli(["data", "check", str(out)]) == 0
    report = capsys.readouterr().out
    assert "raf-db layout" in report and "val" in report and "every image decoded fine" in report


def test_cli_data_check_reports_what_is_wrong(tmp_path, capsys):
    root = make_raf(tmp_path / "raf")
    (root / "Image" / "aligned" / "train_00004_aligned.jpg").write_bytes(b"\xff\xd8garbage")
    assert cli(["data", "check", str(root)]) == 2
    out = capsys.readouterr().out
    assert "train_00004_aligned.jpg" in out and "Surprise" in out
    make_affectnet(tmp_path / "affectnet")
    assert cli(["data", "check", str(tmp_path / "affectnet"), "--quick"]) == 0
    assert "test (8 classes)" in capsys.readouterr().out
    assert cli(["data", "check", str(tmp_path / "nothing-here")]) == 2
    assert "does not exist" in capsys.readouterr().err
