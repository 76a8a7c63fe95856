"""The part of every notebook's setup cell that is the same everywhere."""
from __future__ import annotations

from pathlib import Path

import torch


def setup(name: str, device: str = "auto", seed: int = 0):
    """Seed torch, pick the device ("auto": a GPU if there is one), make runs/<name>/.

    Returns (device, ROOT, RUN_DIR): ROOT is the repository (the notebook runs in
    notebooks/ or in the root), RUN_DIR the folder for this notebook's figures and results.
    """
    import poster_lite as pl
    from .fast import pick_device

    torch.manual_seed(seed)
    device = pick_device(None if device == "auto" else device)
    root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
    run_dir = root / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    print(f"poster-lite {pl.__version__}, torch {torch.__version__}, device {device}")
    return device, root, run_dir
