"""predict on a drawn face, on a photo without a face, and on each kind of input."""
import numpy as np
import pytest
import torch
from PIL import Image

from poster_lite.data import CLASSES
from poster_lite.data.synthfer import draw_face
from poster_lite.data.transforms import eval_transform
from poster_lite.errors import UserError
from poster_lite.predict import NO_FACE, predict

# Tiny models on a 2-core machine: see the one_thread fixture in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def face():
    image, _ = draw_face({"AU12": 1.0, "AU6": 0.8}, size=224)
    # Some background around the head, as in a photo.
    return np.pad(image, ((40, 40), (60, 60), (0, 0)), mode="edge")


@pytest.fixture
def model(nano):
    nano.meta = {"classes": list(CLASSES), "channel_order": "rgb"}
    return nano.eval()


def test_a_drawn_face_is_found_cropped_and_classified(face, model):
    [result] = predict(face, model=model)
    assert result["message"] is None and len(result["faces"]) == 1
    found = result["faces"][0]
    x0, y0, x1, y1 = found["box"]
    h, w = face.shape[:2]
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    # The face (224 px, drawn at the centre) is inside the box, the box inside the padding.
    assert x0 < w / 2 < x1 and y0 < h / 2 < y1 and x1 - x0 > 100
    assert set(found["probabilities"]) == set(CLASSES)
    assert sum(found["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert found["probability"] == max(found["probabilities"].values())
    assert found["label"] == max(found["probabilities"], key=found["probabilities"].get)


def test_an_image_without_a_face_says_so(model):
    rng = np.random.default_rng(0)
    sky = np.full((240, 320, 3), (120, 170, 230), np.uint8) + rng.integers(0, 8, (240, 320, 3), dtype=np.uint8)
    [result] = predict(sky, model=model)
    assert result["faces"] == [] and result["message"] == NO_FACE


def test_channel_order_comes_from_the_model_meta(face, model):
    # Whole image, BGR model: predict must equal the eval transform in BGR order.
    model.meta["channel_order"] = "bgr"
    [result] = predict(face, model=model, detect_faces=False)
    expected = torch.softmax(model(eval_transform(112, "bgr")(Image.fromarray(face))[None]), -1)[0]
    assert result["faces"][0]["box"] == (0, 0, face.shape[1], face.shape[0])
    assert list(result["faces"][0]["probabilities"].values()) == pytest.approx(expected.tolist(), abs=1e-5)


def test_paths_pil_bgr_arrays_and_batches_agree(face, model, tmp_path):
    path = tmp_path / "face.png"
    Image.fromarray(face).save(path)
    results = predict([str(path), Image.fromarray(face), face[..., ::-1].copy()], model=model,
                      array_channel_order="bgr")
    # The third input is a BGR array (as from cv2.imread); the first two are RGB by nature.
    assert results[0]["source"] == str(path) and results[1]["source"] == "image 1"
    probs = [r["faces"][0]["probabilities"] for r in results]
    for other in probs[1:]:
        assert list(other.values()) == pytest.approx(list(probs[0].values()), abs=1e-6)
    batch = predict(np.stack([face, face]), model=model)
    assert len(batch) == 2 and len(batch[1]["faces"]) == 1


def test_bad_inputs_are_named(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.jpg"):
        predict(str(tmp_path / "nothere.jpg"), model=model)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(UserError, match="broken.jpg"):
        predict(str(tmp_path / "broken.jpg"), model=model)
    with pytest.raises(TypeError, match="paths, bytes, PIL images or numpy arrays"):
        predict(42, model=model)
    del model.meta
    with pytest.raises(UserError, match="meta"):
        predict(np.zeros((64, 64, 3), np.uint8), model=model)
