"""SAM, the loss, the metrics and the checkpoint format, each against hand-computed values."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from poster_lite.checkpoint import load_checkpoint, read_checkpoint_file, save_checkpoint
from poster_lite.data.labels import CLASSES_8
from poster_lite.errors import UserError
from poster_lite.evaluation import evaluate
from poster_lite.losses import LabelSmoothingCrossEntropy, PosterLoss
from poster_lite.models.official import to_release_state_dict
from poster_lite.sam import SAM

# Tiny models on a 2-core machine: see the one_thread fixture in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")


# ---- SAM ---------------------------------------------------------------------------
def _line(w):
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([w]))
    return model


def _squared_error(model):
    x, y = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0]])
    loss = ((model(x) - y) ** 2).sum()
    loss.backward()
    return loss


def test_sam_step_matches_hand_computed_update():
    # w = (1, -1), x = (1, 2), y = 1: residual -2, g = 2 * (-2) * x = (-4, -8), |g| = sqrt(80).
    # e = 0.05 * g / |g| = (-0.0223607, -0.0447214); at w + e the residual is -2.1118034,
    # so g' = (-4.2236068, -8.4472136) and SGD(lr 0.1) gives w - 0.1 g'.
    model = _line([1.0, -1.0])
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05)
    _squared_error(model)
    sam.ascend()
    assert torch.allclose(model.weight, torch.tensor([[0.9776393, -1.0447214]]), atol=1e-6)
    assert model.weight.grad is None                    # cleared for the second pass
    _squared_error(model)
    sam.restore()
    assert torch.allclose(model.weight, torch.tensor([[1.0, -1.0]]), atol=1e-7)
    sam.base.step()
    assert torch.allclose(model.weight, torch.tensor([[1.42236068, -0.15527864]]), atol=1e-6)


def test_sam_step_with_closure_equals_manual_passes():
    a, b = _line([0.3, 0.7]), _line([0.3, 0.7])
    sam_a = SAM(torch.optim.Adam(a.parameters(), lr=0.01), rho=0.1)
    _squared_error(a)
    sam_a.step(lambda: _squared_error(a))
    sam_b = SAM(torch.optim.Adam(b.parameters(), lr=0.01), rho=0.1)
    _squared_error(b)
    sam_b.ascend()
    _squared_error(b)
    sam_b.restore()
    sam_b.base.step()
    assert torch.equal(a.weight, b.weight)
    assert not torch.allclose(a.weight, torch.tensor([[0.3, 0.7]]))


def test_adaptive_sam_does_not_move_zero_weights():
    model = _line([0.0, 2.0])
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05, adaptive=True)
    _squared_error(model)
    sam.ascend()
    assert model.weight[0, 0].item() == 0.0 and model.weight[0, 1].item() != 2.0


def test_sam_rejects_nonpositive_rho():
    with pytest.raises(ValueError, match="rho"):
        SAM(torch.optim.SGD(_line([1.0, 1.0]).parameters(), lr=0.1), rho=0.0)


# ---- loss -------------------------------------------------------------------------------
def test_label_smoothing_ce_by_hand():
    logits, target = torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0])
    log_z = math.log(math.exp(2) + 2)
    nll, mean_nll = log_z - 2.0, (3 * log_z - 2.0) / 3
    expected = 0.8 * nll + 0.2 * mean_nll
    assert LabelSmoothingCrossEntropy(0.2)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_poster_loss_is_ce_plus_twice_lsce():
    torch.manual_seed(0)
    logits, target = torch.randn(16, 7), torch.randint(0, 7, (16,))
    loss = PosterLoss()(logits, target)
    # CE + 2 (0.8 CE + 0.2 U) = 3 x a single smoothed CE with smoothing 0.4 / 3.
    assert loss.item() == pytest.approx(3 * F.cross_entropy(logits, target, label_smoothing=0.4 / 3).item(), rel=1e-5)
    assert PosterLoss(smoothing_weight=0)(logits, target).item() == pytest.approx(F.cross_entropy(logits, target).item())


# ---- evaluate ------------------------------------------------------------------------------
class Oracle(nn.Module):
    """Returns its input as logits: the 'image' of sample i is the one-hot of its prediction."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x * 10


class Fixed(torch.utils.data.Dataset):
    def __init__(self, targets, predictions, num_classes):
        self.targets, self.predictions, self.num_classes = targets, predictions, num_classes
        self.classes = [f"c{i}" for i in range(num_classes)]

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return F.one_hot(torch.tensor(self.predictions[i]), self.num_classes).float(), self.targets[i]


def test_evaluate_on_a_hand_made_confusion():
    targets = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
    predictions = [0, 0, 0, 1, 1, 0, 2, 2, 2, 1]
    m = evaluate(Oracle(), Fixed(targets, predictions, 3), batch_size=4)
    assert m["confusion"].tolist() == [[3, 1, 0], [1, 1, 0], [0, 1, 3]]
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["per_class_accuracy"] == pytest.approx([0.75, 0.5, 0.75])
    assert m["mean_class_accuracy"] == pytest.approx(2 / 3)
    # F1: class 0 P=R=3/4 -> 0.75; class 1 P=1/3 R=1/2 -> 0.4; class 2 P=1 R=3/4 -> 6/7.
    assert m["macro_f1"] == pytest.approx((0.75 + 0.4 + 6 / 7) / 3)
    assert np.allclose(m["confusion_normalized"].sum(axis=1), 1.0)
    assert m["predictions"].tolist() == predictions and m["targets"].tolist() == targets
    assert m["probabilities"].shape == (10, 3) and m["classes"] == ["c0", "c1", "c2"]


def test_a_class_without_samples_is_left_out_of_macc():
    m = evaluate(Oracle(), Fixed([0, 0, 1, 1], [0, 1, 1, 1], 4))
    assert math.isnan(m["per_class_accuracy"][3])
    assert m["mean_class_accuracy"] == pytest.approx((0.5 + 1.0) / 2)


def test_evaluate_rejects_labels_beyond_the_model():
    with pytest.raises(ValueError, match="labels outside"):
        evaluate(Oracle(), Fixed([0, 5], [0, 1], 3))


# ---- checkpoints -----------------------------------------------------------------------------
def test_checkpoint_round_trip(tmp_path, nano):
    x = torch.randn(2, 3, 112, 112)
    nano.eval()
    path = save_checkpoint(nano, tmp_path / "best", {"classes": list("abcdefg"), "metrics": {"val_acc": 0.5}})
    raw = torch.load(path, map_location="cpu", weights_only=True)      # plain types only
    assert set(raw) == {"format", "version", "meta", "state_dict"}
    loaded = load_checkpoint(path)
    assert not loaded.training
    assert loaded.meta["classes"] == list("abcdefg") and loaded.meta["channel_order"] == "rgb"
    assert loaded.meta["metrics"] == {"val_acc": 0.5}
    assert torch.equal(loaded(x), nano(x))
    assert [p.name for p in tmp_path.iterdir()] == ["best"]           # no temporary file left


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, nano, monkeypatch):
    path = save_checkpoint(nano, tmp_path / "last", {"classes": list("abcdefg"), "epoch": 1})

    def broken_save(obj, f):
        open(f, "wb").write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(nano, path, {"classes": list("abcdefg"), "epoch": 2})
    assert read_checkpoint_file(path)["meta"]["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last"]


def test_bad_checkpoints_get_clear_messages(tmp_path, nano):
    with pytest.raises(UserError, match="is a folder"):
        load_checkpoint(tmp_path)
    junk = tmp_path / "junk"
    junk.write_text("not a checkpoint")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(junk)
    path = save_checkpoint(nano, tmp_path / "nano", {"classes": list("abcdefg")})
    raw = torch.load(path, weights_only=True)
    raw["state_dict"].pop("head.weight")
    torch.save(raw, path)
    with pytest.raises(UserError, match="does not fit"):
        load_checkpoint(path)


@pytest.mark.parametrize("release, mix_tokens, classes, order", [
    ("raf-db", True, 7, "bgr"), ("affectnet-8", False, 8, "rgb")])
def test_the_authors_checkpoint_layout_loads_with_its_label_and_channel_order(
        tmp_path, release, mix_tokens, classes, order):
    from poster_lite import build_model
    torch.manual_seed(0)
    # One pyramid block keeps the test quick; the loader reads the depth from the keys.
    model = build_model("poster-l", depth=1, mix_tokens=mix_tokens, num_classes=classes).eval()
    released = {"iter": 1, "model_state_dict": {"module." + k: v for k, v in to_release_state_dict(model).items()}}
    torch.save(released, tmp_path / "rafdb.pth")
    loaded = load_checkpoint(tmp_path / "rafdb.pth")
    assert loaded.config.depth == 1 and loaded.config.mix_tokens == mix_tokens
    assert loaded.meta["channel_order"] == order
    assert loaded.meta["classes"] == list(CLASSES_8[:classes])
    x = torch.randn(1, 3, 224, 224)
    # The AffectNet release counts 0 Neutral, 1 Happy, ... 7 Contempt: its logits come
    # back reordered into the package's order (Surprise, Fear, ..., Neutral, Contempt).
    release_order = ["Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral"] if mix_tokens else \
        ["Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger", "Contempt"]
    expected = model(x)[:, [release_order.index(c) for c in loaded.meta["classes"]]]
    assert torch.allclose(loaded(x), expected, atol=1e-5)
