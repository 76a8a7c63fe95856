"""SAM's second pass reuses the frozen landmark stream of its first pass.

A SAM step runs the model twice on one batch: at the weights w and at w + e. POSTER's
landmark backbone (MobileFaceNet) is frozen: none of its weights requires a gradient (so
SAM, which perturbs only weights that have one, never moves them), it runs in eval mode
(BatchNorm reads its running statistics and updates nothing, no dropout) and without
autograd (`model.landmark_no_grad`). On the same images its output at w + e is therefore
its output at w, bit for bit. `reuse_frozen_stream` keeps the first pass's output and hands
it to the second pass instead of computing it again (benchmarks/README.md: what it saves).

    with reuse_frozen_stream(model) as frozen:
        loss(model(images)).backward()      # records the landmark stream's outputs
        frozen.replay()
        loss(model(images)).backward()      # gets the same outputs back, not recomputed

Nothing is reused unless all three conditions hold (`frozen_stream_of` checks them), and
a replayed call must receive the same inputs as the recorded one (the same tensor, or an
equal one); otherwise it is computed as usual. tests/test_fast_training.py checks that
the step's gradients are identical with and without reuse.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

# The landmark backbone's entry points POSTER calls: V1 calls the module itself; V2 calls
# stage_outputs and the (discarded) landmark head.
ENTRY_POINTS = ("forward", "stage_outputs", "landmarks")


def unwrap(net: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (.module) or a torch.compile wrapper (._orig_mod)."""
    while True:
        inner = getattr(net, "module", None) or getattr(net, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return net
        net = inner


def frozen_stream_of(net: nn.Module):
    """The model's landmark backbone if its output can be reused within a step, else None."""
    model = unwrap(net)
    backbone = getattr(model, "landmark_backbone", None)
    if backbone is None or not getattr(model, "landmark_no_grad", False):
        return None
    if any(p.requires_grad for p in backbone.parameters()):
        return None
    if any(m.training for m in backbone.modules()):
        return None
    return backbone


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a is b or (a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b))
    return a is b or a == b


class _Recorder:
    """Wraps the backbone's entry points: records their calls, then replays them in order."""

    def __init__(self, backbone: nn.Module):
        self.backbone, self.calls, self.replaying, self.position = backbone, [], False, 0
        self.reused = 0                    # calls answered from the record (tests read it)
        self.saved = {}
        for name in ENTRY_POINTS:
            original = getattr(backbone, name, None)
            if original is None:
                continue
            self.saved[name] = backbone.__dict__.get(name)
            setattr(backbone, name, self._wrap(name, original))

    def _wrap(self, name, original):
        def call(*args):
            if self.replaying and self.position < len(self.calls):
                recorded_name, recorded_args, output = self.calls[self.position]
                self.position += 1
                if recorded_name == name and len(args) == len(recorded_args) and \
                        all(_same(a, b) for a, b in zip(args, recorded_args)):
                    self.reused += 1
                    return output
                self.replaying = False     # the passes differ: compute from here on
            output = original(*args)
            if not self.replaying:
                self.calls.append((name, args, output))
            return output
        return call

    def replay(self) -> None:
        self.replaying, self.position = True, 0

    def close(self) -> None:
        for name, previous in self.saved.items():
            if previous is None:
                delattr(self.backbone, name)
            else:
                setattr(self.backbone, name, previous)
        self.calls.clear()


class _NoReuse:
    reused = 0

    def replay(self) -> None:
        pass


@contextmanager
def reuse_frozen_stream(net: nn.Module, enabled: bool = True):
    """Inside the block the landmark backbone's calls are recorded; after `.replay()` the
    same calls get the recorded outputs. A no-op when `enabled` is False or the stream is
    not frozen (see frozen_stream_of)."""
    backbone = frozen_stream_of(net) if enabled else None
    if backbone is None:
        yield _NoReuse()
        return
    recorder = _Recorder(backbone)
    try:
        yield recorder
    finally:
        recorder.close()
