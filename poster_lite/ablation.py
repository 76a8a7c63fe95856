"""The supplement's ablations at nano scale: every row trains only what the row changes.

POSTER's ablations (pyramid levels, swap depth, depth, image-only) all change the
fusion transformer and leave the two backbones alone. On a 2-core CPU, fine-tuning
the image backbone costs about 90% of every training step, so a grid of eleven rows
times several seeds would take hours. Here the grid freezes both *pretrained* nano
backbones, computes their feature maps once (a few augmented views of each training
face, one clean view of each validation and test face), caches them on disk, and
trains image projection + pyramid fusion + SE gate + head on those features with
`pl.train` (CE + LSCE, Adam, exponential schedule, validation-selected epoch, test
once; SAM optional, off by default: it doubles the cost).

This differs from the paper, which fine-tunes IR-50 end to end in every row; notebook
07 says so beside the numbers. What it buys: every row sees the whole SynthFER
training set for many epochs, the test set has 1,500 faces, and there is time for
several seeds, so a difference can be told from noise.

    features = cached_features("poster-nano")              # computed once, then loaded
    result = run_row("swap0", features, seed=0, patience=PATIENCE)   # early stopping, SAM off

The paper's protocol is here too, as the slow option: `run_row_end_to_end` trains a row's
whole model on SynthFER images, the pretrained landmark backbone frozen and the pretrained
image backbone fine-tuned, with the shared nano models' recipe (SAM on) and early stopping.
Both return the same record, including which test faces the row got right (packed bits), so
tools/ablations.py can pair rows by seed and face (poster_lite/evidence.py).
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from .config import GRID_CELLS
from .errors import UserError
from .models.poster import build_model, image_tokens_from_map

BASE_DEPTH = 4     # the base row: poster-nano at 4 blocks, so that swap depths 0/1/2/4 all mean something
# The IR-50's last stage gives a 14x14 map; 2x2 cells of it make each of the GRID_CELLS image tokens.
IMAGE_MAP_SIDE = 14
IMAGE_MAP_CELLS = IMAGE_MAP_SIDE * IMAGE_MAP_SIDE            # 4 x GRID_CELLS

# (row id, preset, config overrides, {ablation: the value this row stands for}).
# The base row belongs to every ablation at once. Rows run in this order (most important
# first), so a run cut short still answers Tables 4 and 2.
BASE = {"streams": "poster-nano (4 blocks)", "swap_depth": 4, "depth": 4, "pyramid": [128, 64, 32]}
ROWS = [
    ("image-only-nano", "image-only-nano", {"depth": BASE_DEPTH}, {"streams": "image-only-nano (4 blocks)"}),
    ("poster-nano-d4", "poster-nano", {"depth": BASE_DEPTH}, BASE),
    ("swap0", "poster-nano", {"depth": BASE_DEPTH, "swap_depth": 0}, {"swap_depth": 0}),
    ("swap1", "poster-nano", {"depth": BASE_DEPTH, "swap_depth": 1}, {"swap_depth": 1}),
    ("swap2", "poster-nano", {"depth": BASE_DEPTH, "swap_depth": 2}, {"swap_depth": 2}),
    ("depth1", "poster-nano", {"depth": 1}, {"depth": 1}),
    ("depth2", "poster-nano", {"depth": 2}, {"depth": 2, "streams": "poster-nano (2 blocks)"}),
    ("depth6", "poster-nano", {"depth": 6}, {"depth": 6}),
    ("pyramid1", "poster-nano", {"depth": BASE_DEPTH, "pyramid_dims": (128,)}, {"pyramid": [128]}),
    ("pyramid2", "poster-nano", {"depth": BASE_DEPTH, "pyramid_dims": (128, 64)}, {"pyramid": [128, 64]}),
    ("pyramid4", "poster-nano", {"depth": BASE_DEPTH, "pyramid_dims": (128, 64, 32, 16)},
     {"pyramid": [128, 64, 32, 16]}),
]
ROW_IDS = [row[0] for row in ROWS]


def find_row(row_id: str) -> tuple:
    for row in ROWS:
        if row[0] == row_id:
            return row
    raise UserError(f"unknown ablation row {row_id!r}; known rows: {', '.join(ROW_IDS)}")


# ---- frozen features ---------------------------------------------------------------------
class FeatureSplit(torch.utils.data.Dataset):
    """Cached backbone features of one split: (packed features, label) per face.

    `views` is V x N x F (V augmented views of N faces); each access draws one view at
    random (Python's `random`, which `pl.train` seeds), so every epoch sees a fresh
    mixture of augmentations without running a backbone again.
    """

    def __init__(self, views: torch.Tensor, labels: torch.Tensor, classes: list):
        self.views, self.labels, self.classes = views, labels, list(classes)

    def __len__(self) -> int:
        return self.views.shape[1]

    def __getitem__(self, i):
        view = random.randrange(self.views.shape[0]) if self.views.shape[0] > 1 else 0
        return self.views[view, i].float(), int(self.labels[i])


def _cache_key(backbone_files: list, data_stamp: dict, train_views: int) -> str:
    """A cache key from the backbone files' bytes, the data set's stamp and the views."""
    digest = hashlib.sha1()
    for name in sorted(backbone_files):
        digest.update(Path(name).read_bytes())
    digest.update(json.dumps([data_stamp, train_views], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:12]


@torch.no_grad()
def _pack(model, images: torch.Tensor) -> torch.Tensor:
    """B x 3 x S x S -> B x F: the image feature map and the landmark map, flattened and joined."""
    x = model._backbone_input(images)
    fmap = model.image_backbone(x)                                   # B x C x 14 x 14
    landmarks = model.landmark_backbone(x)                           # B x 128 x 7 x 7
    return torch.cat([fmap.flatten(1), landmarks.flatten(1)], 1)     # B x (C*14*14 + 128*GRID_CELLS)


def _extract(model, dataset, transform, views: int, device, desc: str, batch_size: int = 128) -> torch.Tensor:
    from .device import autocast, resolve_precision

    precision = resolve_precision("auto", device)
    out = []
    with tqdm(total=views * len(dataset), desc=desc, unit="img", leave=False) as bar:
        for _ in range(views):
            chunks = []
            for start in range(0, len(dataset), batch_size):
                images = torch.stack([transform(dataset[i][0]) for i in
                                      range(start, min(start + batch_size, len(dataset)))]).to(device)
                with autocast(device, precision):
                    chunks.append(_pack(model, images).to("cpu", torch.bfloat16))
                bar.update(len(images))
            out.append(torch.cat(chunks))
    return torch.stack(out)                                          # views x N x F


def cached_features(preset: str = "poster-nano", train_views: int = 4, device=None, progress: bool = True,
                    cache_dir=None) -> dict:
    """{"train", "val", "test"}: FeatureSplit of the frozen pretrained backbones on SynthFER.

    The backbones come from data/cache/backbones/<preset> (`poster-lite pretrain-backbones`);
    without them there is nothing meaningful to freeze, and this says so. Features are
    stored in bfloat16 (about 38 KB a face) under data/cache/features/.
    """
    from . import data as data_module
    from .data import transforms
    from .data.synthfer import STAMP_FILE
    from .device import pick_device
    from .pretrain import backbone_folders, load_pretrained_backbones

    torch.manual_seed(0)
    model = build_model(preset)
    if model.landmark_backbone is None:
        raise UserError(f"{preset} has no landmark backbone; build features from a two-stream preset")
    from .shipped import install_shipped_backbones
    install_shipped_backbones(model.config)      # none cached: the nano ones shipped with the package (seconds)
    loaded = load_pretrained_backbones(model)
    if len(loaded) < 2:
        raise UserError(f"the frozen-backbone ablations need both pretrained {preset} backbones, found "
                        f"{len(loaded)} in {', '.join(str(f) for f in backbone_folders(model.config))}; make them "
                        f"with `poster-lite pretrain-backbones {preset}` (notebook 02), about 5 minutes on a CPU")
    device = pick_device(device)
    model.eval().to(device)
    splits = {split: data_module.load("synthfer", split=split) for split in ("train", "val", "test")}
    stamp_path = data_module.data_dir() / "synthfer" / STAMP_FILE
    stamp = json.loads(stamp_path.read_text()) if stamp_path.exists() else {}
    key = _cache_key(loaded, stamp, train_views)
    folder = Path(cache_dir) if cache_dir is not None else data_module.data_dir() / "cache" / "features"
    path = folder / f"{preset}-{key}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
    else:
        size = model.config.input_size
        saved = {"classes": list(splits["train"].classes)}
        for split, ds in splits.items():
            views = train_views if split == "train" else 1
            make = transforms.train_transform if split == "train" else transforms.eval_transform
            torch.manual_seed(0)                   # the same augmented views on every machine run
            random.seed(0)
            saved[split] = _extract(model, ds, make(size=size), views, device,
                                    desc=f"{split} features ({views} view{'s' if views > 1 else ''})")
            saved[f"{split}_labels"] = torch.tensor(ds.targets)
        from .checkpoint import atomic_write
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda tmp: torch.save(saved, tmp))
    return {split: FeatureSplit(saved[split], saved[f"{split}_labels"], saved["classes"])
            for split in ("train", "val", "test")}


# ---- the trainable part ------------------------------------------------------------------
class FusionOnFeatures(nn.Module):
    """The part of a POSTER that an ablation changes, fed with cached backbone features.

    Shares (not copies) `image_proj`, `fusion`, `se` and `head` with `model`, so the
    trained weights end up in the full model too.
    """

    def __init__(self, model, image_channels: int, landmark_channels: int):
        super().__init__()
        self.model = model
        self.image_channels, self.landmark_channels = image_channels, landmark_channels
        for part in (model.image_backbone, model.landmark_backbone):
            if part is not None:
                part.requires_grad_(False)

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        m = self.model
        B = packed.shape[0]
        n_image = self.image_channels * IMAGE_MAP_CELLS
        side = IMAGE_MAP_SIDE
        fmap = packed[:, :n_image].reshape(B, self.image_channels, side, side)         # B x C x 14 x 14
        img = m.image_proj(image_tokens_from_map(fmap, m.config.image_tokens))          # B x 49 x d
        lm = None
        if m.landmark_backbone is not None:
            lm = packed[:, n_image:].reshape(B, self.landmark_channels, GRID_CELLS).transpose(1, 2)  # B x 49 x 128
        return m.head(m.se(m.fusion(img, lm)))


def _record(history, model, net, test_metrics, wall: float, seed: int) -> dict:
    """What a results file keeps of one trained row (the model itself under "model")."""
    from .evidence import pack_correct

    attrs, val = history.attrs, history.attrs["val"]
    trained = sum(p.numel() for p in net.parameters() if p.requires_grad)
    return {"seed": seed, "test_accuracy": float(test_metrics["accuracy"]),
            "test_mean_class_accuracy": float(test_metrics["mean_class_accuracy"]),
            "val_accuracy": val["accuracy"], "best_epoch": attrs["best_epoch"],
            "epochs_trained": attrs.get("epochs_trained", len(history)), "max_epochs": attrs.get("max_epochs"),
            "patience": attrs.get("patience"), "stopped_by": attrs.get("stopped_by"),
            "params": sum(p.numel() for p in model.parameters()),
            "transformer_params": sum(p.numel() for p in model.fusion.parameters()),
            "trained_params": trained, "wall_s": round(wall, 1), "history": history.to_dict("records"),
            "test_correct": pack_correct(test_metrics["predictions"] == test_metrics["targets"]),
            "model": model}


def run_row(row_id: str, features: dict, seed: int = 0, epochs: int = 8, batch_size: int = 64,
            progress: bool = True, out_dir=None, precision: str = "auto", sam: bool = False,
            patience: int | None = None, **recipe) -> dict:
    """Train one ablation row on cached features (at most `epochs`, early stopping after `patience`
    epochs without a better validation accuracy); test its validation-selected epoch once."""
    import time

    from .evaluation import evaluate
    from .training import train
    from .training.recipe import default_lr

    _, preset, overrides, _ = find_row(row_id)
    classes = features["train"].classes
    torch.manual_seed(seed)
    model = build_model(preset, num_classes=len(classes), **overrides)
    image_channels = model.config.image_token_dim // 4
    n_image = image_channels * IMAGE_MAP_CELLS
    landmark_channels = (features["train"].views.shape[-1] - n_image) // GRID_CELLS
    net = FusionOnFeatures(model, image_channels, landmark_channels)
    recipe = {"lr": default_lr(model.config), **recipe}
    started = time.perf_counter()
    history = train(net, features["train"], features["val"], epochs=epochs, batch_size=batch_size,
                    progress=progress, seed=seed, out_dir=out_dir,
                    precision=precision, sam=sam, patience=patience, **recipe)
    wall = time.perf_counter() - started
    # the test set once, at the validation-selected epoch (train leaves those weights in the model)
    return _record(history, model, net, evaluate(net, features["test"], batch_size=256), wall, seed)


def run_row_end_to_end(row_id: str, splits: dict, seed: int = 0, epochs: int = 30, batch_size: int = 64,
                       progress: bool = True, out_dir=None, precision: str = "auto", sam: bool = True,
                       patience: int | None = None, time_budget: float | None = None, **recipe) -> dict:
    """The paper's protocol for one row: the whole model trained on images, the pretrained landmark
    backbone frozen, the pretrained image backbone fine-tuned (SAM on, as the shared nano models),
    early stopping after `patience` epochs; the validation-selected epoch tested once.

    `splits`: {"train", "val", "test"} image data sets (e.g. `pl.data.load("synthfer", split=...)`).
    """
    import time

    from .evaluation import evaluate
    from .pretrain import load_pretrained_backbones
    from .shipped import install_shipped_backbones
    from .training import train
    from .training.recipe import default_lr

    _, preset, overrides, _ = find_row(row_id)
    torch.manual_seed(seed)
    model = build_model(preset, num_classes=len(splits["train"].classes), **overrides)
    install_shipped_backbones(model.config)       # none cached: the nano ones shipped with the package
    loaded = load_pretrained_backbones(model)
    wanted = 1 if model.landmark_backbone is None else 2
    if len(loaded) < wanted:
        raise UserError(f"the paper-protocol row {row_id} starts from pretrained backbones, found {len(loaded)}: "
                        f"make them with `poster-lite pretrain-backbones {preset}`")
    recipe = {"lr": default_lr(model.config), **recipe}
    started = time.perf_counter()
    history = train(model, splits["train"], splits["val"], epochs=epochs, batch_size=batch_size,
                    progress=progress, seed=seed, out_dir=out_dir, precision=precision,
                    sam=sam, patience=patience, time_budget=time_budget, **recipe)
    wall = time.perf_counter() - started
    test = evaluate(model, splits["test"], batch_size=128, precision="fp32")
    record = _record(history, model, model, test, wall, seed)
    record["estimated_s"] = history.attrs.get("estimated_s")
    return record


def load_features(path) -> dict:
    """{"train", "val", "test"} FeatureSplits from a features file (cached_features' format)."""
    saved = torch.load(path, weights_only=True)
    return {split: FeatureSplit(saved[split], saved[f"{split}_labels"], saved["classes"])
            for split in ("train", "val", "test")}
