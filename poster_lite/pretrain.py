"""Pretraining POSTER's two backbones on SynthFER, offline, in the official file layouts.

POSTER never trains its backbones from nothing: the IR-50 comes from face
recognition and the MobileFaceNet from landmark detection (the landmark net then
stays frozen). SynthFER records who each face is and where its 68 landmarks lie,
so both tasks can be learned here (`data=` another SynthFER folder; default the
built-in set):

- image backbone: identity classification through the IR-50's own embedding head
  (stage 4, BN, Linear, BN), with a CosFace margin: logits s * (cos(angle) - m for
  the true identity), so the embeddings of one person must cluster by a margin.
  Reported: identity accuracy on held-out images of the training identities.
- landmark backbone: 68-landmark regression with MobileFaceNet's own head (136
  outputs, x and y interleaved, in units of the image side). Reported: normalised
  mean error (NME), the mean point error divided by the distance between the outer
  eye corners, on the validation split (people never seen in training).

The results are saved as `ir50.pth` (a raw state dict) and
`mobilefacenet_model_best.pth.tar` ({"state_dict": ...}) in the release's key
layout under data/cache/backbones/<preset>/, so the authors' files can be dropped
in instead, and `load_official_weights` reads both.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .checkpoint import atomic_write
from .config import make_config
from .data.face_geometry import normalised_mean_error
from .device import autocast, pick_device, resolve_precision
from .errors import UserError

IMAGE_FILE = "ir50.pth"
LANDMARK_FILE = "mobilefacenet_model_best.pth.tar"


def backbone_dir(preset: str) -> Path:
    """data/cache/backbones/<preset>/: where pretrained backbones are cached."""
    from .data import data_dir
    return data_dir() / "cache" / "backbones" / preset


def build_image_backbone(preset: str):
    """The full IR-50 of a preset: POSTER's three stages plus stage 4 and the embedding head."""
    from .models import IRBackbone
    cfg = make_config(preset)
    return IRBackbone(cfg.ir_stem, cfg.ir_widths, cfg.ir_units, embedding_head=True,
                      embedding_size=cfg.ir_embedding_size, stage4_width=cfg.ir_stage4_width,
                      stage4_units=cfg.ir_stage4_units)


def build_landmark_backbone(preset: str):
    from .models import MobileFaceNet
    cfg = make_config(preset)
    return MobileFaceNet(cfg.mfn_stem, cfg.mfn_stages, cfg.landmark_channels, cfg.num_landmarks)


class CosFaceHead(nn.Module):
    """Identity logits s * (cos(angle between embedding and class centre) - m for the true class)."""

    def __init__(self, embedding_size: int, num_identities: int, scale: float = 30.0, margin: float = 0.35):
        super().__init__()
        self.centres = nn.Parameter(torch.randn(num_identities, embedding_size) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, embeddings: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        cosine = F.linear(F.normalize(embeddings), F.normalize(self.centres))
        if target is not None:       # the margin only while training
            cosine = cosine - self.margin * F.one_hot(target, cosine.shape[1])
        return self.scale * cosine


class _Targets(Dataset):
    """(transformed image, target) for selected samples of a data set."""

    def __init__(self, base, indices, targets, transform):
        self.base, self.indices, self.targets, self.transform = base, list(indices), targets, transform

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        image, _ = self.base[self.indices[i]]
        return self.transform(image), self.targets[i]


def _synthfer(split: str, limit: int | None, root=None):
    """A split of a built-in SynthFER set (root None: "synthfer", or a name: "synthfer-224"),
    or of another SynthFER folder (`root`)."""
    from .data import SYNTHFER_SETS, load
    if root is None or str(root) in SYNTHFER_SETS:
        ds = load(str(root or "synthfer"), split)
    else:
        ds = load("raf-db", split, root=root)
    n = len(ds) if limit is None else min(limit, len(ds))
    return ds, np.arange(n)


def _fit(parts: nn.Module, loss_of, loader, epochs: int, lr: float, device, precision: str, progress: bool,
         name: str) -> float:
    """A plain Adam + cosine-schedule loop; returns images per second."""
    optimizer = torch.optim.Adam(parts.parameters(), lr=lr, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    seen, start = 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        parts.train()
        with tqdm(loader, desc=f"{name} {epoch}/{epochs}", leave=False, disable=not progress) as bar:
            for images, targets in bar:
                images, targets = images.to(device), targets.to(device)
                with autocast(device, precision):
                    loss = loss_of(images, targets)
                if not torch.isfinite(loss):
                    raise RuntimeError(f"{name} pretraining diverged (loss {loss.item()}) at epoch {epoch}; "
                                       "lower the learning rate")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                seen += len(images)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    return seen / (time.perf_counter() - start)


def pretrain_image_backbone(preset: str = "poster-nano", epochs: int = 4, batch_size: int = 64, lr: float = 2e-3,
                            out_dir=None, limit: int | None = None, device=None, precision: str = "auto",
                            held_out: float = 0.1, seed: int = 0, progress: bool = True, data=None) -> dict:
    """Identity classification (CosFace) on SynthFER's training people; writes ir50.pth."""
    from .data.transforms import eval_transform, train_transform
    from .models.official import to_release_state_dict

    torch.manual_seed(seed)
    device = pick_device(device)
    precision = resolve_precision(precision, device)
    cfg = make_config(preset)
    ds, _ = _synthfer("train", None, data)
    if ds.identities is None:
        raise UserError(f"{ds.root} records no identities; the image backbone is pretrained on SynthFER")
    # A limit keeps whole people (the first ones by id), so that each has several images.
    pool = np.argsort(np.asarray(ds.identities), kind="stable")[:limit]
    people = np.asarray(ds.identities)[pool]
    ids, label = np.unique(people, return_inverse=True)
    # Hold out a share of every person's images: accuracy on unseen photos of known people.
    rng = np.random.default_rng(seed)
    test_mask = np.zeros(len(pool), bool)
    for k in range(len(ids)):
        mine = rng.permutation(np.flatnonzero(label == k))
        test_mask[mine[:max(1, int(round(held_out * len(mine)))) if len(mine) >= 5 else 0]] = True
    train_data = _Targets(ds, pool[~test_mask], label[~test_mask].tolist(), train_transform(cfg.backbone_size))
    test_data = _Targets(ds, pool[test_mask], label[test_mask].tolist(), eval_transform(cfg.backbone_size))

    backbone = build_image_backbone(preset).to(device)
    head = CosFaceHead(cfg.ir_embedding_size, len(ids)).to(device)
    parts = nn.ModuleDict({"backbone": backbone, "head": head})
    loader = DataLoader(train_data, batch_size=batch_size, shuffle=True, drop_last=True)
    speed = _fit(parts, lambda x, y: F.cross_entropy(head(backbone.embed(x), y).float(), y), loader,
                 epochs, lr, device, precision, progress, "IR-50 identities")

    parts.eval()
    correct = 0
    with torch.no_grad():
        for images, targets in DataLoader(test_data, batch_size=128):
            with autocast(device, precision):
                logits = head(backbone.embed(images.to(device)))
            correct += (logits.argmax(1).cpu() == targets).sum().item()
    out = Path(out_dir) if out_dir is not None else backbone_dir(preset)
    state = {k: v.detach().cpu() for k, v in to_release_state_dict(backbone).items()}
    path = atomic_write(out / IMAGE_FILE, lambda tmp: torch.save(state, tmp))
    report = {"file": str(path), "identities": int(len(ids)), "train_images": len(train_data),
              "held_out_images": len(test_data), "identity_accuracy": correct / max(1, len(test_data)),
              "chance": 1 / len(ids), "epochs": epochs, "images_per_s": speed}
    _record(out, "image_backbone", report)
    return report


@torch.no_grad()
def _landmark_error(net, data, device, precision) -> float:
    """Mean NME of `net` over `data`."""
    net.eval()
    errors = []
    for images, targets in DataLoader(data, batch_size=128):
        with autocast(device, precision):
            predicted = net.landmarks(net(images.to(device))).float().cpu()
        errors.append(normalised_mean_error(predicted.view(-1, 68, 2), targets.view(-1, 68, 2)))
    return float(torch.cat(errors).mean())


def _landmark_targets(ds, indices) -> list:
    if ds.landmarks is None:
        raise UserError(f"{ds.root} records no landmarks; the landmark backbone is pretrained on SynthFER")
    image, _ = ds[int(indices[0])] if len(indices) else (None, None)
    width, height = image.size
    # Units of the image side, x and y interleaved: the layout of MobileFaceNet's 136 outputs.
    scaled = ds.landmarks[indices] / np.array([width, height], np.float32)
    return [torch.from_numpy(p.reshape(-1)) for p in scaled]


def pretrain_landmark_backbone(preset: str = "poster-nano", epochs: int = 4, batch_size: int = 64,
                               lr: float = 2e-3, out_dir=None, limit: int | None = None, device=None,
                               precision: str = "auto", seed: int = 0, progress: bool = True, data=None) -> dict:
    """68-landmark regression on SynthFER; NME on the validation people; writes the MobileFaceNet file."""
    from .data.transforms import eval_transform
    from .models.official import to_release_state_dict

    torch.manual_seed(seed)
    device = pick_device(device)
    precision = resolve_precision(precision, device)
    cfg = make_config(preset)
    # No flips: a mirrored face would need its left and right landmarks swapped.
    transform = eval_transform(cfg.backbone_size)
    train_ds, train_pool = _synthfer("train", limit, data)
    val_ds, val_pool = _synthfer("val", None if limit is None else max(limit // 5, 1), data)
    train_data = _Targets(train_ds, train_pool, _landmark_targets(train_ds, train_pool), transform)
    val_data = _Targets(val_ds, val_pool, _landmark_targets(val_ds, val_pool), transform)

    net = build_landmark_backbone(preset).to(device)
    # Start the head's output at the mean face (its final BatchNorm's shift and scale),
    # so the network learns offsets from it instead of first crawling from 0 to 0.5.
    targets = torch.stack(train_data.targets)
    with torch.no_grad():
        net.landmark_head.bn.bias.copy_(targets.mean(0))
        net.landmark_head.bn.weight.copy_(targets.std(0))
    untrained = _landmark_error(net, val_data, device, precision)
    loader = DataLoader(train_data, batch_size=batch_size, shuffle=True, drop_last=True)
    # Smooth L1 on coordinates in units of the image side (a point off by 2% of the face
    # costs 0.02): robust to the odd badly placed point early in training.
    speed = _fit(net, lambda x, y: F.smooth_l1_loss(net.landmarks(net(x)).float(), y, beta=0.01), loader,
                 epochs, lr, device, precision, progress, "MobileFaceNet landmarks")

    nme = _landmark_error(net, val_data, device, precision)
    out = Path(out_dir) if out_dir is not None else backbone_dir(preset)
    state = {"state_dict": {k: v.detach().cpu() for k, v in to_release_state_dict(net).items()}}
    path = atomic_write(out / LANDMARK_FILE, lambda tmp: torch.save(state, tmp))
    report = {"file": str(path), "train_images": len(train_data), "val_images": len(val_data),
              "nme": nme, "nme_untrained": untrained, "epochs": epochs, "images_per_s": speed}
    _record(out, "landmark_backbone", report)
    return report


def _record(out: Path, key: str, report: dict) -> None:
    """Keep what each pretraining reached in report.json beside the files."""
    path = out / "report.json"
    reports = json.loads(path.read_text()) if path.exists() else {}
    reports[key] = report
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(reports, indent=1)))


def pretrain_backbones(preset: str = "poster-nano", which: str = "both", **kw) -> dict:
    """Both backbones (or one: which="image" / "landmark"); returns their reports."""
    if which not in ("both", "image", "landmark"):
        raise UserError(f"which must be 'both', 'image' or 'landmark', got {which!r}")
    reports = {}
    if which in ("both", "image"):
        reports["image_backbone"] = pretrain_image_backbone(preset, **kw)
    if which in ("both", "landmark"):
        reports["landmark_backbone"] = pretrain_landmark_backbone(preset, **kw)
    return reports


# Two epochs of each keep a first run of notebook 00 or 02 within a lab on a CPU; the
# measured result (identity 70% of 200 people, NME 0.043) is in docs/training.md.
DEFAULT_PRETRAIN_EPOCHS = 2


def ensure_pretrained_backbones(preset: str = "poster-nano", epochs: int = DEFAULT_PRETRAIN_EPOCHS,
                                device=None, progress: bool = True, shipped: bool = True) -> dict:
    """The reports of the cached pretrained backbones of `preset`, pretraining them first if missing.

    Presets with the same backbones share them (poster-nano's serve image-only-nano).
    shipped: when none are cached, install the ones shipped with the package (poster_lite/shipped/,
    the nano backbones: seconds) instead of pretraining; False pretrains.
    """
    for folder in backbone_folders(make_config(preset)):
        report_file = folder / "report.json"
        try:
            cached = json.loads(report_file.read_text()) if report_file.exists() else {}
        except ValueError:
            cached = {}
        if {"image_backbone", "landmark_backbone"} <= set(cached) and (folder / IMAGE_FILE).exists() \
                and (folder / LANDMARK_FILE).exists():
            return cached
    if shipped:
        from .shipped import install_shipped_backbones
        installed = install_shipped_backbones(make_config(preset))
        if installed is not None:
            return installed
    return pretrain_backbones(preset, epochs=epochs, device=device, progress=progress)


BACKBONE_FIELDS = ("ir_stem", "ir_widths", "ir_units", "ir_embedding_head", "ir_embedding_size",
                   "ir_stage4_width", "ir_stage4_units", "mfn_stem", "mfn_stages", "landmark_channels",
                   "num_landmarks")


def backbone_folders(config) -> list:
    """Cache folders whose preset has exactly these backbones (poster-t/s/l share theirs, and
    poster-v2-nano shares poster-nano's)."""
    from .config import ALL_PRESETS
    same = [name for name in ALL_PRESETS
            if all(getattr(make_config(name), f) == getattr(config, f) for f in BACKBONE_FIELDS)]
    return [backbone_dir(name) for name in same]


def load_pretrained_backbones(model, folder=None) -> list:
    """Load pretrained backbone files into a POSTER; returns the files loaded.

    Without `folder`, looks in the cache of every preset with the same backbones.
    """
    from .models.official import load_official_weights

    folders = [Path(folder)] if folder is not None else backbone_folders(model.config)
    wanted = [IMAGE_FILE] + ([LANDMARK_FILE] if model.landmark_backbone is not None else [])
    loaded = []
    for name in wanted:
        found = next((f / name for f in folders if (f / name).exists()), None)
        if found is not None:
            load_official_weights(model, found, verbose=False)
            loaded.append(str(found))
    return loaded
