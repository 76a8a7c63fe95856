"""Sharpness-Aware Minimisation (SAM, Foret et al. 2021) around any PyTorch optimiser.

Plain training follows the gradient at the current weights w and may settle in a
sharp valley, where a small shift of the weights (or of the data) costs a lot of
loss. SAM prefers flat valleys by taking its gradient at the worst nearby point:

    1. gradient g at w                      (the usual forward/backward)
    2. climb to w + e, e = rho * g / ||g||  (`ascend`)
    3. gradient at w + e                    (a second forward/backward)
    4. go back to w                         (`restore`)
    5. let the base optimiser step with the gradient from 3

So each update costs two forward/backward passes. POSTER trains with SAM (rho 0.05)
around Adam. `adaptive=True` is ASAM (Kwon et al. 2021): the neighbourhood is
scaled per weight by |w|, so it does not depend on how the weights are scaled.

Only the direction of g matters in step 2, so SAM works unchanged when a
GradScaler has multiplied every gradient by the same loss scale.
"""
from __future__ import annotations

import torch


class SAM:
    """Wraps a base optimiser; the training loop calls `ascend`, `restore`, then steps.

    `step(closure)` runs steps 2-5 in one call for loops without a GradScaler; the
    closure must recompute the loss and call backward (the gradient of step 1 must
    already be in `.grad`).
    """

    def __init__(self, base_optimizer: torch.optim.Optimizer, rho: float = 0.05, adaptive: bool = False):
        if rho <= 0:
            raise ValueError(f"SAM needs a positive neighbourhood radius rho, got {rho}")
        self.base = base_optimizer
        self.rho = rho
        self.adaptive = adaptive
        self._offsets: dict[torch.Tensor, torch.Tensor] = {}

    @property
    def param_groups(self):
        return self.base.param_groups

    def _params_with_grad(self):
        return [p for group in self.base.param_groups for p in group["params"] if p.grad is not None]

    @torch.no_grad()
    def ascend(self) -> None:
        """Move every weight to w + e and clear the gradients for the second pass."""
        params = self._params_with_grad()
        if not params:
            return
        directions = [p.grad * p.abs() if self.adaptive else p.grad for p in params]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(d) for d in directions]))
        # An overflowed (fp16) or vanishing gradient has no direction: stay at w,
        # which makes this one update a plain step.
        if torch.isfinite(norm) and norm > 0:
            scale = self.rho / norm
            for p, d in zip(params, directions):
                # ASAM's e is rho * |w|^2 g / || |w| g ||: |w| once in d, once here.
                offset = d * scale * (p.abs() if self.adaptive else 1)
                p.add_(offset)
                self._offsets[p] = offset
        self.base.zero_grad(set_to_none=True)

    @torch.no_grad()
    def restore(self) -> None:
        """Return from w + e to w, keeping the gradient computed at w + e."""
        for p, offset in self._offsets.items():
            p.sub_(offset)
        self._offsets.clear()

    def step(self, closure) -> torch.Tensor:
        self.ascend()
        with torch.enable_grad():
            loss = closure()
        self.restore()
        self.base.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return self.base.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state)
