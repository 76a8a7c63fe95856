"""Attention weights recorded during one forward pass, for the figures and the explorers."""
from __future__ import annotations

import torch
from torch import nn


def forward_recording_attention(model: nn.Module, x: torch.Tensor):
    """(logits, {key: attention weights}) for every module of `model.attention_modules()`.

    Each module runs its explicit softmax path while recording (the fused kernel never forms
    the weights) and is switched back afterwards, even if the forward fails.
    """
    modules = model.attention_modules()
    for m in modules.values():
        m.record = True
    try:
        logits = model(x)
        maps = {k: m.weights for k, m in modules.items()}
    finally:
        for m in modules.values():
            m.record, m.weights = False, None
    return logits, maps
