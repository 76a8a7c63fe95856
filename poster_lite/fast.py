"""The fast inference path: same predictions as the faithful float32 model, sooner.

`fast(model)` returns an inference-ready copy (eval mode, images in, logits out)
that stacks the techniques `benchmarks/speed.py` showed to pay on the machines we
measured (see benchmarks/README.md for what each one bought):

- bfloat16 where the hardware has bf16 matrix units (recent x86 CPUs with AMX /
  AVX512-BF16, Ampere+ GPUs): weights AND activations in bf16 ("pure" bf16). Autocast
  was slower on the CPU: it re-casts every weight on every call in inference mode
  and bounces activations between dtypes around BatchNorm/PReLU/residual adds.
  LayerNorm and softmax still accumulate in float32 inside their kernels;
- float16 autocast on GPUs without bf16 (pure fp16 risks overflow);
- BatchNorm folded into the preceding convolution (exact in eval mode);
- channels-last memory for the convolutional backbones (what oneDNN / cuDNN prefer);
- `torch.inference_mode` (no autograd bookkeeping at all);
- optional `torch.compile` (opt-in: compiling takes a while, reported by the benchmark).

`precision="fp32"` keeps float32 (the faithful path, still with folding and
inference mode); `fast(model, enabled=False)` is the faithful model itself.
Device and precision choice live in poster_lite/device.py.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .device import autocast, fast_path_enabled, pick_device, resolve_precision


def fold_batchnorm(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d into that conv (in place).

    Only conv -> BN pairs are folded: a BN *before* a padded conv (the IR unit's
    `bn_in`) cannot be folded exactly, because zero padding happens after it.
    """
    from .models.ir50 import IRUnit

    for m in module.modules():
        if isinstance(m, IRUnit) and isinstance(m.bn_out, nn.BatchNorm2d):
            m.conv2, m.bn_out = fuse_conv_bn_eval(m.conv2, m.bn_out), nn.Identity()
        # ConvBN / ConvBNPReLU / the IR shortcut all name the pair `conv` and `bn`.
        conv, bn = getattr(m, "conv", None), getattr(m, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            m.conv, m.bn = fuse_conv_bn_eval(conv, bn), nn.Identity()
    return module


class FastModel(nn.Module):
    """An inference wrapper: eval mode, no autograd, autocast, float32 logits out."""

    def __init__(self, model: nn.Module, device: torch.device, precision: str, channels_last: bool):
        super().__init__()
        self.model = model
        self.device = device
        self.precision = precision
        self.channels_last = channels_last
        # bf16 runs "pure" (the weights were cast); fp16 runs under autocast.
        self._autocast = "fp16" if precision == "fp16" else "fp32"
        self.config = getattr(model, "config", None)
        self.meta = getattr(model, "meta", {})

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.precision == "bf16":
            x = x.to(torch.bfloat16)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(self.device, self._autocast):
            return self.model(self._prepare(x)).float()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast(self.device, self._autocast):
            return self.model.forward_features(self._prepare(x)).float()

    def train(self, mode: bool = True):
        if mode:
            raise RuntimeError("a fast() model is for inference only; train the original model")
        return super().train(False)


def fast(model: nn.Module, device=None, precision: str = "auto", fold_bn: bool = True,
         channels_last: bool | None = None, compile: bool = False, enabled: bool = True) -> nn.Module:
    """An inference-ready copy of `model` (the original is left untouched).

    `enabled=False` (or the environment variable POSTER_LITE_FAST=0) returns the
    faithful float32 eager model in eval mode instead: the one switch for parity.
    """
    if isinstance(model, FastModel):
        return model
    if not enabled or not fast_path_enabled():
        return model.eval()
    device = pick_device(device if device is not None else next(model.parameters()).device)
    precision = resolve_precision(precision, device)
    m = copy.deepcopy(model).eval().to(device)
    for p in m.parameters():
        p.requires_grad_(False)
    if fold_bn:
        fold_batchnorm(m)
    if channels_last is None:
        channels_last = device.type in ("cpu", "cuda")
    if precision == "bf16":
        m = m.to(torch.bfloat16)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
    if compile:
        m = torch.compile(m)
    return FastModel(m, device, precision, channels_last).eval()
