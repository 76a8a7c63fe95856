"""SynthFER: determinism, disjoint people, landmarks on the drawn features, the set on disk."""
import json

import numpy as np
import pytest

from poster_lite.data import CLASSES, load, make_synthfer
from poster_lite.data import synthfer as sf
from poster_lite.data.face_geometry import MIRROR_68, FaceIdentity
from poster_lite.errors import UserError

SMALL = dict(n_train=21, n_val=7, n_test=14)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != sf.STAMP_FILE}


def test_same_seed_gives_byte_identical_sets_and_workers_do_not_matter(tmp_path, monkeypatch):
    a = make_synthfer(tmp_path / "a", **SMALL, seed=3, workers=1, progress=False)
    monkeypatch.setattr(sf, "_CHUNK", 4)          # several chunks, so two processes really share the work
    b = make_synthfer(tmp_path / "b", **SMALL, seed=3, workers=2, progress=False)
    files_a, files_b = _files(a), _files(b)
    assert len([f for f in files_a if f.endswith(".jpg")]) == 42
    assert files_a.keys() == files_b.keys()
    assert all(files_a[k] == files_b[k] for k in files_a), "same seed and settings must give identical bytes"


def test_another_seed_gives_other_faces(tmp_path):
    a = make_synthfer(tmp_path / "a", 7, 0, 0, seed=0, progress=False)
    b = make_synthfer(tmp_path / "b", 7, 0, 0, seed=1, progress=False)
    jpg = "Image/aligned/train_00001_aligned.jpg"
    assert (a / jpg).read_bytes() != (b / jpg).read_bytes()


def test_splits_have_disjoint_people_and_balanced_labels(tmp_path):
    root = make_synthfer(tmp_path, 70, 28, 35, seed=0, n_identities=12, progress=False)
    sets = {s: load("synthfer", split=s, root=root, n_train=70, n_val=28, n_test=35, n_identities=12,
                    progress=False) for s in ("train", "val", "test")}
    people = {s: set(ds.identities) for s, ds in sets.items()}
    assert not people["train"] & people["val"] and not people["train"] & people["test"]
    assert not people["val"] & people["test"]
    assert len(people["train"]) > 1
    assert np.bincount(sets["train"].targets, minlength=7).tolist() == [10] * 7
    assert sets["test"].landmarks.shape == (35, 68, 2)
    image, label = sets["val"][0]
    assert image.mode == "RGB" and image.size == (112, 112) and label == sets["val"].targets[0]


def test_raf_db_balance_follows_raf_db_shares():
    labels, _ = sf.plan_split("train", 1227, 10, balance="raf-db")
    counts = np.bincount(labels, minlength=7)
    assert counts[CLASSES.index("Happiness")] == 477 and counts[CLASSES.index("Fear")] == 28


def test_label_noise_changes_stored_labels_only(tmp_path):
    root = make_synthfer(tmp_path, 140, 0, 0, label_noise=0.5, progress=False)
    ann = np.load(root / sf.ANNOTATIONS_FILE)
    changed = (ann["label"] != ann["true_label"]).mean()
    assert 0.3 < changed < 0.7
    listed = [int(line.split()[1]) - 1 for line in (root / "EmoLabel/list_patition_label.txt").read_text().splitlines()]
    assert listed == ann["label"].tolist()


def test_load_generates_once_and_regenerates_when_stale(tmp_path):
    settings = dict(n_train=7, n_val=7, n_test=7, progress=False)
    ds = load("synthfer", root=tmp_path, **settings)
    stamp = tmp_path / sf.STAMP_FILE
    first = stamp.stat().st_mtime_ns
    load("synthfer", split="test", root=tmp_path, **settings)
    assert stamp.stat().st_mtime_ns == first, "a current set must not be regenerated"
    data = json.loads(stamp.read_text())
    data["generator"] = "an-older-generator"
    stamp.write_text(json.dumps(data))
    load("synthfer", root=tmp_path, **settings)
    assert json.loads(stamp.read_text())["generator"] == sf.generator_fingerprint()
    assert len(ds) == 7 and ds.classes == list(CLASSES)


def test_unknown_knob_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="colour"):
        load("synthfer", root=tmp_path, colour="red")
    with pytest.raises(UserError, match="balance"):
        make_synthfer(tmp_path, 7, 0, 0, balance="skewed")


def test_in_memory_split_matches_the_renderer():
    ds = sf.SynthFER("val", n=7, seed=5)
    labels, people = sf.plan_split("val", 7, 1, seed=5)
    direct = sf.render_sample("val", 3, int(labels[3]), int(people[3]), 5)
    assert np.array_equal(np.asarray(ds[3][0]), direct["image"])
    assert np.allclose(ds.landmarks[3], direct["landmarks"]) and ds.targets[3] == labels[3]


# ----------------------------------------------------------------------------- landmarks
def _marked_person():
    # Pure-colour lips and irises make "is this pixel lip / iris" a colour test.
    who = FaceIdentity(skin=(170, 150, 140), lips=(0, 255, 0), iris=(0, 0, 255), hair_style="bald")
    return who


def _near(image, point, test, radius=1):
    x, y = int(round(point[0])), int(round(point[1]))
    patch = image[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1].astype(int)
    return bool(test(patch).any())


def _lip(p):
    return (p[..., 1] > p[..., 0] + 60) & (p[..., 1] > p[..., 2] + 60)


def _iris(p):
    return (p[..., 2] > p[..., 0] + 60) & (p[..., 2] > p[..., 1] + 60)


@pytest.mark.parametrize("pose", [{}, {"roll": 17}, {"roll": -12, "yaw": 14}, {"yaw": -15, "scale": 0.85},
                                  {"scale": 1.15, "dx": 0.06, "dy": -0.05}])
@pytest.mark.parametrize("size", [112, 160])
def test_landmarks_land_on_the_drawn_features_after_pose(pose, size):
    image, lm = sf.draw_face({"AU12": 0.6}, identity=_marked_person(), pose=pose, size=size)
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    for corner in (48, 54, 51, 57):
        assert _near(image, lm[corner], _lip), f"landmark {corner} is not on the lips for pose {pose}"
    for first in (36, 42):
        assert _near(image, lm[first:first + 6].mean(0), _iris, radius=2), f"eye {first} centre misses the iris"
    shifted = lm[[48, 54]] + (0, 0.12 * size)
    assert not any(_near(image, p, _lip) for p in shifted), "the colour test must be able to fail"


def test_action_units_move_the_landmarks_they_should():
    _, rest = sf.draw_face(identity=1)
    _, smile = sf.draw_face({"AU12": 1.0}, identity=1)
    _, drop = sf.draw_face({"AU26": 1.0}, identity=1)
    _, brows = sf.draw_face({"AU1": 1.0, "AU2": 1.0}, identity=1)
    assert (smile[[48, 54], 1] < rest[[48, 54], 1] - 1).all()        # corners up (y grows downwards)
    assert smile[54, 0] - smile[48, 0] > rest[54, 0] - rest[48, 0] + 1   # and out
    assert drop[8, 1] > rest[8, 1] + 3 and drop[57, 1] > rest[57, 1] + 3
    assert (brows[17:27, 1] < rest[17:27, 1] - 1).all()


def test_mirror_table_is_an_involution_that_swaps_sides():
    assert (MIRROR_68[MIRROR_68] == np.arange(68)).all()
    assert MIRROR_68[36] == 45 and MIRROR_68[48] == 54 and MIRROR_68[8] == 8 and MIRROR_68[0] == 16


def test_draw_face_rejects_unknown_names():
    with pytest.raises(UserError, match="AU99"):
        sf.draw_face({"AU99": 1.0})
    with pytest.raises(UserError, match="pose keys"):
        sf.draw_face(pose={"pitch": 10})
