"""Parameters and FLOPs, counted the paper's way, and the supplement's size tables.

FLOPs are 2 x multiply-adds (the paper's convention), counted by PyTorch's own
`FlopCounterMode` on one image: convolutions, linear layers and attention matmuls.
Normalisations and activations are not counted (nor were they in the paper's tool).
Weights that exist but never run (the IR-50 embedding head, the landmark head, the
unused learned class token) count as parameters, as in the paper, but not as FLOPs.

POSTER V2's paper counts the other way, with thop (`thop_count.py`): "active"
parameters (those of modules that run, without free parameters such as the class
token) and multiply-adds that cannot see the attention products. So every result
carries both: `params` / `flops` (all stored parameters; FLOPs = 2 x multiply-adds
with attention, as above) and `active_params` / `macs` (thop's conventions), each
named in `conventions`. V2's 8.4G is in MACs: 17.2 G in V1's unit.
"""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from .thop_count import thop_count

# Which top-level modules make up each part of the breakdown. "transformer" is the
# release's `pyramid_fuse` (the paper's "transformer blocks" column); the token
# projection, SE gate and classifier are small and reported together as "head".
PARTS = {
    "image_backbone": ("image_backbone",),
    "landmark_backbone": ("landmark_backbone",),
    "transformer": ("fusion",),
    "head": ("image_proj", "se", "head"),
}
# POSTER V2: the release's window/attn/ffn/conv/last_face_conv layers are the
# "window_fusion", embed_q/k/v the "token_embedding", its two-block VIT the transformer.
V2_PARTS = {
    "image_backbone": ("image_backbone",),
    "landmark_backbone": ("landmark_backbone",),
    "window_fusion": ("landmark_conv", "image_downsample", "cross"),
    "token_embedding": ("token_embed",),
    "transformer": ("vit",),
    "head": ("se", "head"),
    "unused": ("unused",),
}

CONVENTIONS = {
    "params": "all stored parameters (sum of numel), never-run layers included",
    "trainable_params": "stored parameters with requires_grad (the frozen landmark net excluded)",
    "flops": "FLOPs = 2 x multiply-adds of convolutions, linear layers and attention matrix products "
             "(torch FlopCounterMode, one image, eval mode)",
    "active_params": "thop's count: parameters of leaf modules that run (no never-run layers, "
                     "no free parameters such as class tokens, position embeddings, bias tables, gammas)",
    "macs": "thop's count: multiply-adds of modules (convolutions, linear layers, norms, PReLU, "
            "nn.Softmax); attention matrix products not seen",
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
    # POSTER V2's README / paper: thop's counts (active parameters, multiply-adds).
    "poster-v2": dict(blocks="2 (ViT) on 3 scales", active_params=43.7, macs=8.4,
                      raf_db=92.21, affectnet_7=67.49, affectnet_8=63.77),
}


def _count_params(module, trainable_only=False) -> int:
    if module is None:
        return 0
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _flops_under(by_module: dict, name: str) -> int:
    """FLOPs of module `name`, also when it was never called itself (V2 calls a backbone's
    `stage_outputs`, a ModuleList's members): then the outermost called modules inside it."""
    inside = [k for k in by_module if k == name or k.startswith(name + ".")]
    outermost = [k for k in inside if not any(k.startswith(a + ".") for a in inside)]
    return sum(sum(by_module[k].values()) for k in outermost)


def complexity(model, input_size: int | None = None) -> dict:
    """{'params', 'trainable_params', 'flops', 'active_params', 'macs',
    'parts': {part: {'params', 'flops'}}, 'input_size', 'conventions'} (POSTER or POSTER V2).

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
        # thop's conventions on the same explicit path (V2's window nn.Softmax runs there).
        thop = thop_count(model, x)
    finally:
        model.train(was_training)
        for m, f in zip(attention, fused):
            m.fused = f
    by_module = counter.get_flop_counts()
    root = type(model).__name__

    parts = {}
    v2 = getattr(cfg, "family", None) == "poster-v2"
    for part, names in (V2_PARTS if v2 else PARTS).items():
        mods = [getattr(model, n) for n in names]
        parts[part] = {
            "params": sum(_count_params(m) for m in mods),
            "flops": sum(_flops_under(by_module, f"{root}.{n}") for n in names),
        }
    return {
        "params": _count_params(model),
        "trainable_params": _count_params(model, trainable_only=True),
        "flops": int(counter.get_total_flops()),
        "active_params": thop["params"],
        "macs": thop["macs"],
        "parts": parts,
        "input_size": size,
        "conventions": CONVENTIONS,
    }


def size_table(presets=("image-only", "poster-t", "poster-s", "poster-l", "poster-v2"), show: bool = True,
               **overrides):
    """The supplement's Tables 3 and 4 and POSTER V2's figures, ours beside the papers', as a DataFrame.

    Builds each preset (no file is read), counts it both ways (see `CONVENTIONS`), and
    prints the table when `show`. V1's paper reports all stored parameters and
    2 x multiply-adds (the "params" and "FLOPs" columns); V2's paper reports thop's
    active parameters and multiply-adds (the "active params" and "MACs" columns).
    """
    import pandas as pd

    from .models import build_model

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
            "active params (M)": c["active_params"] / 1e6,
            "MACs (G)": c["macs"] / 1e9,
        }
        theirs = [paper.get(k) for k in ("transformer_params", "transformer_flops", "params", "flops",
                                         "active_params", "macs")]
        row = {("", "blocks"): paper.get("blocks", str(model.config.depth)),
               ("", "emb_dim"): model.config.embed_dim}
        for (col, value), paper_value in zip(ours.items(), theirs):
            row[(col, "ours")] = round(value, 2)
            row[(col, "paper")] = paper_value
        row[("", "exact params")] = c["params"]
        row[("", "exact active params")] = c["active_params"]
        rows.append(row)
        del model
    table = pd.DataFrame(rows, index=pd.Index(list(presets), name="model"))
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    if show:
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print("Parameters and FLOPs (one 224x224 image). params: all stored; FLOPs: 2 x multiply-adds "
                  "with attention (the POSTER paper's units); active params and MACs: thop's counts (the "
                  "POSTER V2 paper's units). 'paper' columns: POSTER supplement Tables 3 and 4, POSTER V2 README")
            print(table.to_string())
    return table
