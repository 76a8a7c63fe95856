"""The fast training path (Recipe.fast, pl.train's default) and its switch.

- SAM's second pass reusing the frozen landmark stream gives the same gradients and weights
  as computing it again, bit for bit (POSTER and POSTER V2), and the stream really is
  computed once; a stream that is not frozen is never reused.
- The in-memory training set gives the same images, labels and augmentation as the JPEG
  files through train_transform / eval_transform, bit for bit, and leaves the random
  generator where the per-image pipeline leaves it.
- fast=False trains the faithful float32 eager step (fused attention, no reuse, images from
  the files); fast=True with precision="fp32" gives the same history as fast=False; the
  default fast step (bf16 on a CPU with bf16 units) agrees with the faithful one within bf16
  tolerance.
"""
import copy

import pytest
import torch

import poster_lite as pl
from poster_lite.data.in_memory import InMemoryFaces
from poster_lite.data.subset import Subset
from poster_lite.data.transforms import eval_transform, train_transform
from poster_lite.device import explicit_attention_for_training
from poster_lite.losses import PosterLoss
from poster_lite.sam import SAM
from poster_lite.training import loop
from poster_lite.training.frozen_stream import frozen_stream_of, reuse_frozen_stream
from poster_lite.training.loop import training_step

pytestmark = pytest.mark.usefixtures("one_thread")


def _step(model, images, labels, reuse, precision="fp32"):
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    sam = SAM(optimizer, 0.05)
    model.train()
    torch.manual_seed(1)                                  # the same dropout / drop-path draws
    with explicit_attention_for_training(model, "cpu", precision):
        loss, _ = training_step(model, images, labels, PosterLoss(), optimizer, sam, precision=precision,
                                reuse_frozen=reuse)
    return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _count_landmark_runs(model):
    runs = []
    model.landmark_backbone.stem.register_forward_hook(lambda *a: runs.append(1))
    return runs


@pytest.mark.parametrize("name", ["poster-nano", "poster-v2-nano"])
def test_reused_landmark_stream_gives_identical_gradients(name):
    torch.manual_seed(0)
    start = pl.build_model(name)
    images, labels = torch.randn(4, 3, 112, 112), torch.tensor([0, 1, 2, 3])
    plain, reused = copy.deepcopy(start), copy.deepcopy(start)
    plain_runs, reused_runs = _count_landmark_runs(plain), _count_landmark_runs(reused)
    loss_a, grads_a = _step(plain, images, labels, reuse=False)
    loss_b, grads_b = _step(reused, images, labels, reuse=True)
    assert len(plain_runs) == 2 and len(reused_runs) == 1       # computed once per SAM step
    assert torch.equal(loss_a, loss_b)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for n in grads_a:
        assert torch.equal(grads_a[n], grads_b[n]), n
    for (n, a), b in zip(plain.state_dict().items(), reused.state_dict().values()):
        assert torch.equal(a, b), n                               # the optimiser step too
    # The backbone's methods are the class's again afterwards.
    assert "forward" not in reused.landmark_backbone.__dict__


def test_reuse_in_bf16_gives_identical_gradients():
    torch.manual_seed(0)
    start = pl.build_model("poster-nano")
    images, labels = torch.randn(4, 3, 112, 112), torch.tensor([0, 1, 2, 3])
    _, grads_a = _step(copy.deepcopy(start), images, labels, reuse=False, precision="bf16")
    _, grads_b = _step(copy.deepcopy(start), images, labels, reuse=True, precision="bf16")
    assert all(torch.equal(grads_a[n], grads_b[n]) for n in grads_a)


def test_a_stream_that_is_not_frozen_is_never_reused():
    torch.manual_seed(0)
    model = pl.build_model("poster-nano").train()
    assert frozen_stream_of(model) is model.landmark_backbone
    model.landmark_no_grad = False                        # Grad-CAM on the landmark net
    assert frozen_stream_of(model) is None
    model.landmark_no_grad = True
    model.landmark_backbone.train()                       # BatchNorm would update its statistics
    assert frozen_stream_of(model) is None
    model.train()
    next(model.landmark_backbone.parameters()).requires_grad_(True)   # SAM would move it
    assert frozen_stream_of(model) is None
    assert frozen_stream_of(pl.build_model("image-only-nano")) is None


def test_a_replayed_call_with_other_inputs_is_computed():
    torch.manual_seed(0)
    model = pl.build_model("poster-nano").train()
    x, other = torch.randn(2, 3, 112, 112), torch.randn(2, 3, 112, 112)
    with torch.no_grad(), reuse_frozen_stream(model) as frozen:
        model(x)
        frozen.replay()
        changed = model.landmark_backbone(other)
        assert frozen.reused == 0
    with torch.no_grad():
        assert torch.equal(changed, model.landmark_backbone(other))


@pytest.fixture(scope="module")
def faces():
    return Subset(pl.data.load("synthfer", "train"), 40)


def test_in_memory_faces_are_the_files_bit_for_bit(faces):
    memory = InMemoryFaces.decode(faces, 112)
    assert len(memory) == len(faces) and memory.targets == [faces[i][1] for i in range(len(faces))]
    assert memory.classes == faces.classes
    evaluated = eval_transform(112)
    for i in range(0, len(faces), 7):
        image, label = memory[i]
        assert torch.equal(image, evaluated(faces[i][0])) and label == faces[i][1]
    augment = train_transform(112)
    for seed in range(3):
        order = torch.randperm(len(faces), generator=torch.Generator().manual_seed(seed)).tolist()[:16]
        torch.manual_seed(seed)
        expected = torch.stack([augment(faces[i][0]) for i in order])
        after_files = torch.rand(3)
        torch.manual_seed(seed)
        batch, labels = memory[order]                     # a list: one training batch
        assert torch.equal(batch, expected)
        assert labels.tolist() == [faces[i][1] for i in order]
        assert torch.equal(torch.rand(3), after_files)    # the same random numbers were used


def test_in_memory_faces_keep_the_channel_order(faces):
    memory = InMemoryFaces.decode(faces, 96, channel_order="bgr")      # resized as the pipeline does
    assert torch.equal(memory[3][0], eval_transform(96, "bgr")(faces[3][0]))
    torch.manual_seed(5)
    expected = torch.stack([train_transform(96, "bgr")(faces[i][0]) for i in (1, 2, 3)])
    torch.manual_seed(5)
    assert torch.equal(memory.batch([1, 2, 3])[0], expected)


def _spy_steps(monkeypatch):
    seen = []
    original = loop.training_step

    def spy(net, images, labels, criterion, optimizer, sam=None, scaler=None, precision="fp32",
            reuse_frozen=False, mark=None):
        seen.append({"precision": precision, "reuse": reuse_frozen,
                     "fused": [m.fused for m in net.attention_modules().values()]})
        return original(net, images, labels, criterion, optimizer, sam, scaler, precision, reuse_frozen, mark)
    monkeypatch.setattr(loop, "training_step", spy)
    return seen


def _train(faces, val, **kw):
    torch.manual_seed(0)
    model = pl.build_model("poster-nano")
    history = pl.train(model, faces, val, epochs=1, batch_size=8, lr=1e-3, device="cpu", progress=False,
                       allow_random_landmarks=True, **kw)
    return model, history


def test_the_switch_off_trains_the_faithful_step(faces, monkeypatch):
    val = Subset(pl.data.load("synthfer", "val"), 8)
    seen = _spy_steps(monkeypatch)
    _, off = _train(faces, val, fast=False)
    assert seen and all(s["precision"] == "fp32" and not s["reuse"] and all(s["fused"]) for s in seen)
    seen.clear()
    _, on = _train(faces, val)                            # the default: fast
    bf16 = pl.device.resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert all(s["reuse"] and s["precision"] == ("bf16" if bf16 else "fp32") for s in seen)
    if bf16:
        assert all(not any(s["fused"]) for s in seen)    # explicit attention for bf16 on a CPU
    seen.clear()
    # The fast path's data and reuse change nothing: in fp32 it is the faithful run exactly.
    _, on_fp32 = _train(faces, val, precision="fp32")
    assert all(s["reuse"] and s["precision"] == "fp32" for s in seen)
    columns = ["train_loss", "train_acc", "val_loss", "val_acc"]
    assert (off[columns] == on_fp32[columns]).all().all()


def test_the_environment_switch_turns_the_fast_path_off_everywhere(faces, monkeypatch):
    """POSTER_LITE_FAST=0 (the tour's --faithful, the grid's, the shared models'): faithful training,
    recorded as such, fp32 for every "auto", and the faithful model from pl.fast."""
    val = Subset(pl.data.load("synthfer", "val"), 8)
    monkeypatch.setenv("POSTER_LITE_FAST", "0")
    assert pl.device.resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert pl.device.resolve_precision("bf16", torch.device("cpu")) == "bf16"     # a named choice stands
    seen = _spy_steps(monkeypatch)
    model, history = _train(faces, val)
    assert seen and all(s["precision"] == "fp32" and not s["reuse"] and all(s["fused"]) for s in seen)
    assert model.meta["recipe"]["fast"] is False and model.meta["precision"] == "fp32"
    assert pl.fast(model) is model
    monkeypatch.setenv("POSTER_LITE_FAST", "no")
    with pytest.raises(pl.errors.UserError, match="POSTER_LITE_FAST must be 1 .* or 0 .*got 'no'"):
        pl.device.resolve_precision("auto", torch.device("cpu"))


def test_fast_step_agrees_with_the_faithful_step_within_bf16_tolerance():
    torch.manual_seed(0)
    start = pl.build_model("poster-nano")
    images, labels = torch.randn(8, 3, 112, 112), torch.arange(8) % 7
    loss_faithful, grads_faithful = _step(copy.deepcopy(start), images, labels, reuse=False, precision="fp32")
    loss_fast, grads_fast = _step(copy.deepcopy(start), images, labels, reuse=True, precision="bf16")
    assert abs(loss_fast.item() - loss_faithful.item()) <= 0.02 * loss_faithful.item()
    flat_a = torch.cat([g.flatten() for g in grads_faithful.values()])
    flat_b = torch.cat([grads_fast[n].flatten() for n in grads_faithful])
    cosine = torch.nn.functional.cosine_similarity(flat_a, flat_b, dim=0).item()
    assert cosine > 0.98, cosine
    assert ((flat_a - flat_b).norm() / flat_a.norm()).item() < 0.2
