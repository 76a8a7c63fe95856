"""Parameters and multiply-adds counted the way `thop.profile` (0.1.1) counts them.

POSTER V2's "43.7M parameters and 8.4G FLOPs" are thop's figures. thop hooks every
LEAF module and counts, for one forward pass:
- parameters: only those of leaf modules that RAN. Modules that exist but never run
  (V2's IR-50 embedding head, the release's unused ViT layers) and free parameters
  held by a parent module (class token, position embedding, relative position bias
  tables, layer-scale vectors) are left out; the frozen landmark net counts.
- operations, in multiply-accumulates (MACs, not FLOPs): a convolution costs
  out_elements x (in_channels / groups) x kernel area (no bias term), a Linear
  in_features x out_elements, BatchNorm and LayerNorm 2 x elements (4 x with an affine
  transform), PReLU one per element (in eval mode), an nn.Softmax module
  rows x (3 x row length - 1). ReLU, pooling and dropout count 0; GELU, Sigmoid and
  anything without a rule (DropPath, Identity) are not counted, and neither is any
  matrix product written as `@` or `torch.matmul` (attention scores, attention x
  values): thop only sees modules.
This module re-implements those conventions (it does not use thop), so a model of
this package reproduces the paper's figures exactly.
"""
from __future__ import annotations

import torch
from torch import nn

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm,
          nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def _macs(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return y.numel() * (x.shape[1] // module.groups) * module.weight[0, 0].numel()
    if isinstance(module, nn.Linear):
        return module.in_features * y.numel()
    if isinstance(module, _NORMS):
        affine = getattr(module, "affine", False) or getattr(module, "elementwise_affine", False)
        return 2 * x.numel() * (2 if affine else 1)
    if isinstance(module, nn.PReLU):
        return 0 if module.training else x.numel()
    if isinstance(module, nn.Softmax):
        n = x.shape[module.dim]
        return (x.numel() // n) * (3 * n - 1)
    return 0               # ReLU, pooling, dropout, and every module without a rule


def thop_count(model: nn.Module, x: torch.Tensor) -> dict:
    """{'params': parameters of the leaf modules that ran, 'macs': multiply-adds} for input `x`.

    Runs `model(x)` once under torch.no_grad in the model's current mode (thop's
    convention is eval mode on one image).
    """
    ran, macs = set(), [0]

    def count(module, inputs, output):
        ran.add(module)
        if inputs and isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor):
            macs[0] += _macs(module, inputs[0], output)

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    params = sum(p.numel() for m in ran for p in m.parameters(recurse=False))
    return {"params": int(params), "macs": int(macs[0])}
