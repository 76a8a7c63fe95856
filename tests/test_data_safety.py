"""Nothing lost, nothing silent: SynthFER never deletes what it did not write; labels agree across
splits or loading stops; bad lists and csv files are reported whole; `data check` finds all at once."""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from poster_lite.data import CLASSES, check_same_classes, load, make_synthfer
from poster_lite.data import synthfer as sf
from poster_lite.data.check import check_dataset, format_report
from poster_lite.data.datasets import DataProblems
from poster_lite.errors import UserError

TINY = dict(n_train=7, n_val=7, n_test=7, progress=False)


def _jpeg(path, seed=0, size=24):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    return path


def _raf(root, n_train=14, n_test=7):
    """A fake RAF-DB copy in the release's layout."""
    lines = []
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(1, n + 1):
            lines.append(f"{split}_{i:05d}.jpg {(i - 1) % 7 + 1}")
            _jpeg(root / "Image" / "aligned" / f"{split}_{i:05d}_aligned.jpg", seed=i + 100 * (split == "test"))
    (root / "EmoLabel").mkdir(parents=True, exist_ok=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    (root / "README.txt").write_text("RAF-DB basic, licensed copy\n")
    return root


def _tree(root):
    """Every file under root with its bytes: compare before and after to prove nothing changed."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _faces(root, layout):
    """root/<split>/<class>/<n images> from {split: {class: n}} (split None: no split folder)."""
    seed = 0
    for split, classes in layout.items():
        for name, n in classes.items():
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed += 1
                _jpeg(folder / f"{i}.jpg", seed=seed)
    return root


# ----------------------------------------------------------------------------- SynthFER writes only its own
def test_synthfer_pointed_at_real_data_refuses_and_keeps_every_file(tmp_path):
    raf = _raf(tmp_path / "raf-basic")
    before = _tree(raf)
    assert len(before) == 23
    with pytest.raises(UserError, match=r"raf-basic is not empty and was not made by SynthFER .*EmoLabel"):
        make_synthfer(raf, 7, 7, 7, progress=False)
    with pytest.raises(UserError, match="raf-basic.*load\\('raf-db', root=...\\)"):
        load("synthfer", root=raf, **TINY)
    with pytest.raises(UserError, match="raf-basic"):
        load("synthfer", root=raf, regenerate=True, **TINY)
    assert _tree(raf) == before, "not one file added, changed or removed"
    # Even a stray synthfer.json copied into a real data set does not make it SynthFER's.
    (raf / "synthfer.json").write_text(json.dumps({"generator": "x", "sizes": {"train": 3, "val": 0, "test": 0}}))
    with pytest.raises(UserError, match=r"holds files SynthFER did not write \(Image/aligned/test_00001_aligned.jpg, .* and 15 more\)"):
        make_synthfer(raf, 7, 7, 7, progress=False)
    assert len(_tree(raf)) == 24


def test_synthfer_refuses_a_file_and_any_non_empty_folder(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(UserError, match="notes is not empty.*todo.txt"):
        make_synthfer(tmp_path / "notes", 7, 0, 0, progress=False)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(UserError, match="a-file is a file"):
        make_synthfer(tmp_path / "a-file", 7, 0, 0, progress=False)
    assert (tmp_path / "notes" / "todo.txt").read_text() == "mine" and not (tmp_path / "notes" / "Image").exists()
    (tmp_path / "empty").mkdir()
    assert (make_synthfer(tmp_path / "empty", 7, 0, 0, progress=False) / sf.STAMP_FILE).exists()


def test_synthfer_regenerates_its_own_outdated_set_but_not_files_added_to_it(tmp_path):
    root = make_synthfer(tmp_path / "sf", 14, 7, 7, progress=False)
    (root / "my-notes.txt").write_text("kept: beside the set")
    stamp = json.loads((root / sf.STAMP_FILE).read_text())
    (root / sf.STAMP_FILE).write_text(json.dumps({**stamp, "generator": "older"}))
    load("synthfer", root=root, n_train=14, n_val=7, n_test=7, progress=False)
    assert json.loads((root / sf.STAMP_FILE).read_text())["generator"] == sf.generator_fingerprint()
    assert (root / "my-notes.txt").read_text() == "kept: beside the set"
    # A file of the user's inside Image/ or an edited label file stops the regeneration.
    mine = _jpeg(root / "Image" / "aligned" / "holiday.jpg")
    with pytest.raises(UserError, match="holds files SynthFER did not write.*holiday.jpg"):
        make_synthfer(root, 7, 7, 7, progress=False)
    mine.unlink()
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    label_file.write_text(label_file.read_text().replace(" 1\n", " 2\n", 1))
    with pytest.raises(UserError, match="list_patition_label.txt \\(changed since SynthFER wrote it\\)"):
        make_synthfer(root, 7, 7, 7, progress=False)
    assert "holiday" not in " ".join(_tree(root)) and (root / "my-notes.txt").exists()


def test_a_set_made_with_other_settings_is_not_replaced_unless_asked(tmp_path):
    root = make_synthfer(tmp_path / "sf", 14, 7, 7, seed=3, progress=False)
    before = _tree(root)
    with pytest.raises(UserError, match=r"other settings: n_train 14 \(wanted 7\), seed 3 \(wanted 0\); .*regenerate=True"):
        load("synthfer", root=root, seed=0, **TINY)
    assert _tree(root) == before
    assert len(load("synthfer", root=root, progress=False)) == 14, "settings not passed are the set's own"
    assert len(load("synthfer", root=root, n_train=14, seed=3, progress=False)) == 14
    assert len(load("synthfer", root=root, regenerate=True, **TINY)) == 7


def test_an_interrupted_swap_leaves_a_folder_synthfer_still_owns(tmp_path):
    root = make_synthfer(tmp_path / "sf", 14, 0, 0, progress=False)
    # The moment between removing the old stamp and moving the new set in (a kill -9 there):
    stamp = json.loads((root / sf.STAMP_FILE).read_text())
    pending = {**stamp, "sizes": {"train": 7, "val": 0, "test": 0}, "previous_sizes": stamp["sizes"],
               "previous_labels_sha256": stamp["labels_sha256"]}
    (root / sf.PENDING_STAMP).write_text(json.dumps(pending))
    (root / sf.STAMP_FILE).unlink()
    (root / ".synthfer-abc123").mkdir()                     # the killed run's scratch folder
    assert sf.foreign_entries(root) == []
    make_synthfer(root, 7, 0, 0, progress=False)
    assert sorted(p.name for p in root.iterdir()) == sorted(["EmoLabel", "Image", sf.STAMP_FILE, sf.LOCK_FILE])
    assert len(list((root / "Image" / "aligned").iterdir())) == 7


def test_a_second_writer_waits_for_the_lock(tmp_path, capfd):
    root = tmp_path / "sf"
    root.mkdir()
    done = []
    with sf._locked(root):
        worker = threading.Thread(target=lambda: done.append(make_synthfer(root, 7, 0, 0, progress=False)))
        worker.start()
        time.sleep(1.0)
        assert worker.is_alive() and not (root / sf.STAMP_FILE).exists(), "it must wait while the lock is held"
    worker.join(60)
    assert done and (root / sf.STAMP_FILE).exists()
    assert "another process is writing SynthFER" in capfd.readouterr().err


def test_two_processes_generating_the_default_set_do_not_race(tmp_path):
    script = ("import sys; from poster_lite.data import load; "
              "ds = load('synthfer', n_train=21, n_val=7, n_test=7, progress=False, workers=1); "
              "print(len(ds), ds[20][1])")
    env = {**os.environ, "POSTER_LITE_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err for _, err in outputs]
    assert outputs[0][0] == outputs[1][0] and outputs[0][0].startswith("21 ")
    variants = list((tmp_path / "data" / "synthfer" / "variants").iterdir())
    assert len(variants) == 1
    assert not [p for p in variants[0].iterdir() if p.name.startswith(".synthfer-") or p.name == sf.PENDING_STAMP]
    assert check_dataset(variants[0], progress=False).ok


# ----------------------------------------------------------------------------- folders: same classes or a stop
def test_a_renamed_class_folder_is_refused_naming_both_sides(tmp_path):
    root = _faces(tmp_path / "faces", {s: {"happy": 2, "sad": 2, "angry": 2} for s in ("train", "test")})
    assert load("folder", root=root, split="test").classes == list(CLASSES)
    (root / "train" / "angry").rename(root / "train" / "cross")
    for split in ("train", "test"):
        with pytest.raises(UserError, match=r"class folders differ between splits.*test.*\['angry'\].*lacks.*"
                                            r"\['cross'\]"):
            with pytest.warns(UserWarning, match="not expression names"):
                load("folder", root=root, split=split)
    own = _faces(tmp_path / "pets", {s: {"cat": 2, "dog": 2} for s in ("train", "val")})
    (own / "val" / "dog").rename(own / "val" / "Dog")
    with pytest.raises(UserError, match="upper/lower case only"):
        load("folder", root=own)


def test_one_class_is_refused_and_a_data_set_one_level_down_is_pointed_at(tmp_path):
    _faces(tmp_path / "single", {None: {"happy": 3}})
    with pytest.raises(UserError, match="1 class only \\(Happiness\\): a classifier needs at least two"):
        load("folder", root=tmp_path / "single")
    _faces(tmp_path / "wrapped" / "dataset", {None: {"happy": 2, "sad": 2}})
    with pytest.raises(UserError, match="is the data set one level down \\(root=.*wrapped/dataset\\)"):
        load("folder", root=tmp_path / "wrapped")
    _faces(tmp_path / "hollow", {None: {"happy": 3}})
    (tmp_path / "hollow" / "sad").mkdir()                   # a class folder, but no images in it
    with pytest.raises(UserError, match="1 class only"):
        load("folder", root=tmp_path / "hollow")


def test_raf_db_train_list_with_one_class_is_refused(tmp_path):
    root = _raf(tmp_path / "raf")
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    label_file.write_text("".join(f"{line.split()[0]} 4\n" for line in label_file.read_text().splitlines()))
    with pytest.raises(UserError, match="1 class only \\(Happiness\\)"):
        load("raf-db", root=root)
    assert len(load("raf-db", split="test", root=root)) == 7, "an evaluation split may hold one class"


def test_check_same_classes_for_sets_loaded_separately(tmp_path):
    class Split:
        def __init__(self, classes):
            self.classes = classes
    check_same_classes({"train": Split(["a", "b"]), "val": Split(["a", "b"]), "test": None})
    with pytest.raises(UserError, match=r"the val split orders its classes \['b', 'a'\], the train split"):
        check_same_classes({"train": Split(["a", "b"]), "val": Split(["b", "a"])})
    with pytest.raises(UserError, match=r"test only \['c'\], train only \['b'\]"):
        check_same_classes({"train": Split(["a", "b"]), "test": Split(["a", "c"])})


def test_odd_folder_layouts_are_read_right_or_refused_clearly(tmp_path):
    # Split folders in any case and common spellings; uppercase extensions; hidden files,
    # macOS leftovers and notes are skipped; a linked class folder is followed.
    root = _faces(tmp_path / "f", {"Training": {"happy": 2, "sad": 2}, "Validation": {"happy": 1, "sad": 1}})
    _jpeg(root / "Training" / "happy" / "LOUD.JPG", seed=50)
    (root / "Training" / "happy" / ".DS_Store").write_bytes(b"\x00\x01")
    (root / "Training" / "happy" / "._0.jpg").write_bytes(b"AppleDouble")
    _jpeg(root / "Training" / "__MACOSX" / "happy" / "x.jpg").parent.parent.rename(root / "__MACOSX")
    (root / "Training" / "sad" / "labels.csv").write_text("file,label\n")
    (root / "Training" / "sad" / "nested").mkdir()
    _jpeg(root / "Training" / "sad" / "nested" / "deep.png", seed=51)
    train = load("folder", root=root)
    assert len(train) == 6 and sorted(os.path.basename(p) for p in train.paths)[0] == "0.jpg"
    assert any(p.endswith("LOUD.JPG") for p in train.paths) and not any("._" in p for p in train.paths)
    assert len(load("folder", root=root, split="val")) == 2
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "happy").symlink_to(root / "Training" / "happy")
    (linked / "sad").symlink_to(root / "Training" / "sad")
    assert len(load("folder", root=linked)) == 6
    # A link to nothing is an error naming it; so are a split folder twice and split and class folders mixed.
    (linked / "sad" / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    with pytest.raises(UserError, match="broken link.*gone.jpg"):
        load("folder", root=linked)
    (linked / "sad" / "gone.jpg").unlink()
    (root / "train").mkdir()
    with pytest.raises(UserError, match="two folders for the train split: Training and train"):
        load("folder", root=root)
    (root / "train").rmdir()
    (root / "happy").mkdir()
    with pytest.raises(UserError, match="split folders \\(Training, Validation\\) and other folders \\(happy\\)"):
        load("folder", root=root)
    (root / "happy").rmdir()
    # Two folders that mean the same expression; loose images beside class folders.
    _faces(tmp_path / "dup", {None: {"happy": 1, "Happiness": 1, "sad": 1}})
    with pytest.raises(UserError, match="folders Happiness, happy all mean Happiness; merge them"):
        load("folder", root=tmp_path / "dup")
    _faces(tmp_path / "loose", {None: {"happy": 1, "sad": 1}})
    _jpeg(tmp_path / "loose" / "stray.jpg")
    with pytest.warns(UserWarning, match="1 image\\(s\\) directly in .*loose.*are in no class folder"):
        load("folder", root=tmp_path / "loose")
    _jpeg(tmp_path / "flat" / "a.jpg")
    with pytest.raises(UserError, match="no class folders in .*flat.*holds 1 image\\(s\\) directly"):
        load("folder", root=tmp_path / "flat")
    _faces(tmp_path / "heic", {None: {"happy": 1, "sad": 1}})
    (tmp_path / "heic" / "sad" / "IMG_0001.HEIC").write_bytes(b"....ftypheic")
    with pytest.warns(UserWarning, match="1 photo\\(s\\) .* in formats this cannot read \\(1 .heic\\)"):
        load("folder", root=tmp_path / "heic")


# ----------------------------------------------------------------------------- label lists and csv files
def test_raf_db_list_problems_are_reported_all_at_once(tmp_path):
    root = _raf(tmp_path / "raf")
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    lines = label_file.read_text().splitlines()
    lines[1] = "train_00002.jpg eight"
    lines[3] = "train_00004.jpg"
    lines[5] = "train_00001.jpg 3"                         # listed twice, with another label
    lines.append("../../etc/passwd 1")
    label_file.write_text("\ufeff" + "\n".join(lines) + "\n")  # a byte-order mark, as Windows editors write
    (root / "Image" / "aligned" / "train_00009_aligned.jpg").unlink()
    (root / "Image" / "aligned" / "train_00010_aligned.jpg").rename(root / "Image" / "aligned" /
                                                                    "train_00010_aligned.JPG")
    with pytest.raises(DataProblems) as found:
        load("raf-db", root=root, val_fraction=0)
    problems = found.value.problems
    assert len(problems) == 5, problems
    text = str(found.value)
    assert text.startswith("5 problems in RAF-DB layout at")
    for expected in (":2: label 'eight' is not a whole number", ":4: expected '<file> <label>'",
                     ":6: train_00001.jpg is listed with label 3, there 1 (first at line 1)",
                     ":22: file name '../../etc/passwd' must be relative", "train_00009_aligned.jpg (listed at"):
        assert expected in text
    # Fix them: the byte-order mark and the upper-case .JPG are read as they are.
    lines = [ln for k, ln in enumerate(lines) if k not in (1, 3, 5, 8) and "passwd" not in ln]
    label_file.write_text("\ufeff" + "\n".join(lines) + "\n")
    train = load("raf-db", root=root, val_fraction=0)
    assert len(train) == 10 and any(p.endswith("train_00010_aligned.JPG") for p in train.paths)


def test_raf_db_with_only_original_images_says_where_the_aligned_ones_are(tmp_path):
    root = _raf(tmp_path / "raf")
    (root / "Image" / "aligned").rename(root / "Image" / "original")
    with pytest.raises(UserError, match="Image/aligned .*Image/original exists, but the release trains on the aligned"):
        load("raf-db", root=root)


def _fer_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = " ".join(str(v % 256) for v in range(48 * 48))
    path.write_text("\n".join(["emotion,pixels,Usage"] + [r.replace("PIX", pixels) for r in rows]) + "\n")
    return path


def test_fer2013_cut_off_mid_row_names_the_line(tmp_path):
    path = _fer_csv(tmp_path / "fer2013.csv", ["0,PIX,Training", "3,PIX,Training", "5,PIX,PublicTest"])
    text = path.read_text()
    path.write_text(text[: len(text) - 3000])               # an interrupted download
    with pytest.raises(UserError, match=r"fer2013.csv:4: 2 fields, the header has 3 \(the file ends mid-row"):
        load("fer2013", root=path, split="val")
    with pytest.raises(UserError, match=r"fer2013.csv:4: 2 fields"):
        load("fer2013", root=path)                          # every line's shape is checked, whatever the split


def test_fer2013_stray_quote_spoils_one_line_not_the_rest(tmp_path):
    rows = ["0,PIX,Training", '3,"PIX,Training', "4,PIX,Training", "6,PIX,Trainig", "5,PIX,PublicTest"]
    path = _fer_csv(tmp_path / "fer" / "fer2013.csv", rows)
    path.write_text("\ufeff" + path.read_text())          # the header behind a byte-order mark still reads
    with pytest.raises(DataProblems) as found:
        load("fer2013", root=tmp_path / "fer")
    assert len(found.value.problems) == 2
    assert ":3: " in found.value.problems[0] and "stray quote" in found.value.problems[0]
    assert ":5: Usage 'Trainig' is none of Training, PublicTest, PrivateTest" in found.value.problems[1]
    report = check_dataset(tmp_path / "fer", progress=False)
    assert len(report.problems) == 2 and report.splits["val"]["total"] == 1
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(UserError, match="empty.csv:1: expected a header with 'emotion' and 'pixels'"):
        load("fer2013", root=empty)


# ----------------------------------------------------------------------------- data check: one pass, writes nothing
def test_data_check_lists_every_problem_in_one_pass_and_writes_nothing(tmp_path):
    root = _raf(tmp_path / "raf")
    label_file = root / "EmoLabel" / "list_patition_label.txt"
    lines = label_file.read_text().splitlines()
    lines[2] = "train_00003.jpg 9"
    lines[16] = "test_00003.jpg x"
    label_file.write_text("\n".join(lines) + "\n")
    aligned = root / "Image" / "aligned"
    (aligned / "train_00005_aligned.jpg").unlink()
    (aligned / "train_00006_aligned.jpg").write_bytes(b"\xff\xd8 not really")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(aligned / "test_00001_aligned.jpg")
    good = (aligned / "train_00007_aligned.jpg").read_bytes()
    (aligned / "test_00002_aligned.jpg").write_bytes(good)              # a test image that is also in train
    _jpeg(aligned / "train_00099_aligned.jpg")                           # on disk, in no list
    before = _tree(tmp_path)
    report = check_dataset(root, progress=False)
    assert _tree(tmp_path) == before, "data check writes nothing"
    assert not report.ok and report.exit_code == 2
    text = "\n".join(report.problems)
    assert len(report.problems) == 5, report.problems
    for expected in (":3: label 9 is outside 1..7", ":17: label 'x' is not a whole number",
                     "train_00005_aligned.jpg (listed at", "train_00006_aligned.jpg", "is 8 x 8 pixels, too small"):
        assert expected in text
    notes = "\n".join(report.notes)
    assert "in several splits" in notes and "train_00007" in notes and "test_00002" in notes
    assert "are in no split's list and are not used" in notes and "train_00099_aligned.jpg" in notes
    assert report.splits["train"]["total"] == 12 and report.splits["test"]["per_class"]["Surprise"] == 1
    printed = format_report(report)
    assert "5 problem(s):" in printed and "train_00006_aligned.jpg" in printed and "Happiness" in printed
    assert json.loads(json.dumps(report))["problems"] == report.problems


def test_data_check_on_folders_reports_mismatches_ignored_files_and_empty_classes(tmp_path):
    root = _faces(tmp_path / "f", {"train": {"happy": 2, "sad": 2, "angry": 0}, "test": {"happy": 1, "sad": 1}})
    (root / "train" / "sad" / "notes.txt").write_text("x")
    (root / "train" / "sad" / ".DS_Store").write_text("x")
    report = check_dataset(root, progress=False)
    assert not report.ok
    assert any("class folders differ between splits" in p and "['Anger']" in p for p in report.problems)
    notes = "\n".join(report.notes)
    assert "train: no images of" in notes and "Anger" in notes
    assert "1 hidden file(s) skipped" in notes and "1 file(s) that are not images" in notes and ".txt" in notes
    assert report.splits["train"]["per_class"]["Happiness"] == 2
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / ".DS_Store").write_text("x")
    with pytest.raises(UserError, match="nothing is empty"):
        check_dataset(tmp_path / "nothing")
