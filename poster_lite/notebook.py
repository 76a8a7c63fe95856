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

    from .device import pick_device

    torch.manual_seed(seed)
    device = pick_device(None if device == "auto" else device)
    root = Path.cwd().parent if Path.cwd().name == "notebooks" else Path.cwd()
    run_dir = root / "runs" / name
    run_dir.mkdir(parents=True, exist_ok=True)
    show_figures_inline()
    print(f"poster-lite {pl.__version__}, torch {torch.__version__}, device {device}")
    return device, root, run_dir


def show_figures_inline() -> None:
    """Let a notebook cell that ends with a matplotlib Figure show it as a picture.

    poster_lite.viz returns plain `matplotlib.figure.Figure` objects (not pyplot's, so they
    never pile up or show twice). Jupyter only draws such an object when a PNG formatter
    for figures is registered, which the kernel does not always do by itself (a headless
    papermill run printed "<Figure size ...>" instead of the picture).
    """
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("png")
