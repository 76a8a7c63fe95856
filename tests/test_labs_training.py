"""Notebook 05's self-check of one training step (`lab_checks.check_training_step`): it accepts a
correct step written in several ways, and rejects a stub and each usual slip with its own hint.
"""
import pytest
import torch
import torch.nn.functional as F

from poster_lite import lab_checks
from poster_lite.losses import PosterLoss
from poster_lite.training.loop import training_step


def not_done(net, images, labels, optimizer, sam):
    raise NotImplementedError("Exercise: write training_step()")


def poster_loss(logits, labels, weight=2.0, smoothing=0.2):
    return F.cross_entropy(logits, labels) + weight * F.cross_entropy(logits, labels, label_smoothing=smoothing)


def step_with_sam(net, images, labels, optimizer, sam, loss=poster_loss, clear_first=True, ascend=True,
                  restore=True, step=True):
    """The step as notebook 05 teaches it, with the usual slips as switches."""
    if clear_first:
        optimizer.zero_grad()
    loss_at_w = loss(net(images), labels)
    loss_at_w.backward()
    if ascend:
        sam.ascend()
        loss(net(images), labels).backward()
        if restore:
            sam.restore()
    if step:
        optimizer.step()
    return loss_at_w.detach()


def step_by_hand(net, images, labels, optimizer, sam, clear_between=True):
    """The same step with SAM written out (only `sam.rho` is used)."""
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer.zero_grad()
    loss = poster_loss(net(images), labels)
    grads = torch.autograd.grad(loss, params)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    offsets = [sam.rho * g / norm for g in grads]
    with torch.no_grad():
        for p, e in zip(params, offsets):
            p += e
    second = torch.autograd.grad(poster_loss(net(images), labels), params)
    with torch.no_grad():
        for p, e, g, g2 in zip(params, offsets, grads, second):
            p -= e
            p.grad = g2 if clear_between else g + g2
    optimizer.step()
    return loss.item(), None


def the_packages_step(net, images, labels, optimizer, sam):
    return training_step(net, images, labels, PosterLoss(), optimizer, sam)


def returns_the_second_loss(net, images, labels, optimizer, sam):
    optimizer.zero_grad()
    poster_loss(net(images), labels).backward()
    sam.ascend()
    second = poster_loss(net(images), labels)
    second.backward()
    sam.restore()
    optimizer.step()
    return second


def step_before_the_climb(net, images, labels, optimizer, sam):
    optimizer.zero_grad()
    loss = poster_loss(net(images), labels)
    loss.backward()
    optimizer.step()                 # stepping with the first gradient
    sam.ascend()
    poster_loss(net(images), labels).backward()
    sam.restore()
    return loss


def wrong(**switches):
    def step(net, images, labels, optimizer, sam):
        return step_with_sam(net, images, labels, optimizer, sam, **switches)
    step.__name__ = "step_with_" + "_".join(f"{k}={getattr(v, '__name__', v)}" for k, v in switches.items())
    return step


CORRECT = [step_with_sam, step_by_hand, the_packages_step]
# (wrong step, a phrase its message must contain)
SLIPS = [
    (not_done, "not implemented yet"),
    (wrong(restore=False), "sam.restore() after the second backward"),
    (wrong(ascend=False), "plain step with the gradient at w"),
    (step_before_the_climb, "plain step with the gradient at w"),
    (wrong(clear_first=False), "optimizer.zero_grad()"),
    (lambda *a: step_by_hand(*a, clear_between=False), "the second gradient was added to the first"),
    (wrong(loss=lambda logits, y: poster_loss(logits, y, weight=1.0)), "CE + 1 x LSCE(0.2)"),
    (wrong(loss=F.cross_entropy), "plain cross-entropy"),
    (wrong(loss=lambda logits, y: poster_loss(logits, y, smoothing=0.0)), "no label smoothing"),
    (wrong(step=False), "the weights did not change"),
    (returns_the_second_loss, "return the first pass's loss"),
]


@pytest.mark.parametrize("step", CORRECT, ids=[s.__name__ for s in CORRECT])
def test_the_check_accepts_a_correct_step(step, capsys):
    assert lab_checks.check_training_step(step) is True
    assert "✅ training step" in capsys.readouterr().out


@pytest.mark.parametrize("step, phrase", SLIPS, ids=[f"slip{i}" for i in range(len(SLIPS))])
def test_the_check_rejects_a_stub_and_names_each_slip(step, phrase, capsys):
    assert lab_checks.check_training_step(step) is False
    out = capsys.readouterr().out
    assert phrase in out, out
    assert ("⏳" if step is not_done else "❌") in out


def test_an_unrecognised_mistake_gets_the_order_of_the_step(capsys):
    def sam_with_a_radius_of_its_own(net, images, labels, optimizer, sam):
        sam.rho = 0.05                # ignores the rho it was given
        return step_with_sam(net, images, labels, optimizer, sam)

    assert lab_checks.check_training_step(sam_with_a_radius_of_its_own) is False
    assert "Check the order" in capsys.readouterr().out


def test_the_check_leaves_the_thread_count_and_raises_nothing(capsys):
    before = torch.get_num_threads()

    def crashes(net, images, labels, optimizer, sam):
        return net(images[:, :3])      # wrong input width: the network raises

    assert lab_checks.check_training_step(crashes) is False
    assert "raised RuntimeError" in capsys.readouterr().out
    assert torch.get_num_threads() == before
