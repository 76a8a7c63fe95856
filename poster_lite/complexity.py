"""Parameters and FLOPs, counted the paper's way, and the supplement's size tables.

FLOPs are 2 x multiply-adds (the paper's convention), counted by PyTorch's own
`FlopCounterMode` on one image: convolutions, linear layers and attention matmuls.
Normalisations and activations are not counted (nor were they in the paper's tool).
Weights that exist but never run (the IR-50 embedding head, the landmark head, the
unused learned class token) count as parameters, as in the paper, but not as FLOPs.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

# Which top-level modules make up each part of the breakdown. "transformer" is the
# release's `pyramid_fuse` (the paper's "transformer blocks" column); the token
# projection, SE gate and classifier are small and reported together as "head".
PARTS = {
    "image_backbone": ("image_backbone",),
    "landmark_backbone": ("landmark_backbone",),
    "transformer": ("fusion",),
    "head": ("image_proj", "se", "head"),
}

# The supplement's Tables 3 and 4 (RAF-DB release, 7 classes). Params in M, FLOPs in G.
PAPER = {
    "image-only": dict(blocks="8 (single ViT)", transformer_params=19.7, transformer_flops=2.4,
                       params=50.8, flops=13.1, raf_db=90.51, affectnet_7=65.35),
    "poster-t": dict(blocks="4 (cross-fusion)", transformer_params=19.7, transformer_flops=2.4,
                     params=52.2, flops=13.6, raf_db=91.36, affectnet_7=66.86),
    "poster-s": dict(blocks="6 (cross-fusion)", transformer_params=29.5, transformer_flops=3.5,
                     params=62.0, flops=14.7, raf_db=91.54, affectnet_7=67.13),
    "poster-l": dict(blocks="8 (cross-fusion)", transformer_params=39.3, transformer_flops=4.5,
                     params=71.8, flops=15.7, raf_db=92.05, affectnet_7=67.31),
}


def _count_params(module, trainable_only=False) -> int:
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def complexity(model, input_size: int | None = None) -> dict:
    """{'params', 'trainable_params', 'flops', 'parts': {part: {'params', 'flops'}}}.

    `input_size` defaults to the model's own (224 for the paper's presets).
    """
    cfg = model.config
    size = input_size or cfg.input_size
    p = next(model.parameters())
    x = torch.zeros(1, 3, size, size, device=p.device, dtype=p.dtype)
    counter = FlopCounterMode(display=False, depth=2)
    was_training = model.training
    # The fused attention kernel is invisible to the counter on some backends (CPU):
    # count through the explicit softmax path, which does the same matrix products.
    attention = list(model.attention_modules().values())
    fused = [m.fused for m in attention]
    model.eval().set_fused_attn(False)
    try:
        with counter, torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for m, f in zip(attention, fused):
            m.fused = f
    by_module = counter.get_flop_counts()
    root = type(model).__name__

    parts = {}
    for part, names in PARTS.items():
        mods = [getattr(model, n) for n in names]
        parts[part] = {
            "params": sum(_count_params(m) for m in mods),
            "flops": sum(sum(by_module.get(f"{root}.{n}", {}).values()) for n in names),
        }
    return {
        "params": _count_params(model),
        "trainable_params": _count_params(model, trainable_only=True),
        "flops": int(counter.get_total_flops()),
        "parts": parts,
        "input_size": size,
    }


def size_table(presets=("image-only", "poster-t", "poster-s", "poster-l"), show: bool = True, **overrides):
    """The supplement's Tables 3 and 4, ours beside the paper's, as a DataFrame.

    Builds each preset (no file is read), counts it, and prints the table when `show`.
    """
    import pandas as pd

    from .models.poster import build_model

    rows = []
    for name in presets:
        model = build_model(name, **overrides)
        c = complexity(model)
        paper = PAPER.get(name, {})
        ours = {
            "transformer params (M)": c["parts"]["transformer"]["params"] / 1e6,
            "transformer FLOPs (G)": c["parts"]["transformer"]["flops"] / 1e9,
            "params (M)": c["params"] / 1e6,
            "FLOPs (G)": c["flops"] / 1e9,
        }
        theirs = [paper.get(k) for k in ("transformer_params", "transformer_flops", "params", "flops")]
        row = {("", "blocks"): paper.get("blocks", str(model.config.depth)),
               ("", "emb_dim"): model.config.embed_dim}
        for (col, value), paper_value in zip(ours.items(), theirs):
            row[(col, "ours")] = round(value, 2)
            row[(col, "paper")] = paper_value
        row[("", "exact params")] = c["params"]
        rows.append(row)
        del model
    table = pd.DataFrame(rows, index=pd.Index(list(presets), name="model"))
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    if show:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print("Parameters and FLOPs (one 224x224 image; FLOPs = 2 x multiply-adds); "
                  "'paper' columns: supplement Tables 3 and 4")
            print(table.to_string())
    return table
