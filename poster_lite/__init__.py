"""poster-lite: a teaching suite for POSTER (Pyramid Cross-Fusion Transformer for FER).

    import poster_lite as pl
    model = pl.build_model("poster-nano")
    history = pl.train(model, train_set, val_set, epochs=5)
    print(pl.evaluate(pl.fast(model), test_set)["accuracy"])

The model and its size tables import eagerly; the heavier parts (training, data,
pictures, widgets) load on first use, so `import poster_lite` stays quick.
"""
import importlib

from .complexity import complexity, size_table
from .config import ALL_PRESETS, PRESETS, PosterConfig, PosterV2Config, make_config

# `fast` and `predict` share their module's name, so they are bound now: once a submodule is
# imported, Python sets the package attribute of that name to the module, hiding a lazy function.
from .fast import fast
from .models import PosterModel, PosterV2Model, build_model, load_official_weights
from .predict import predict

__version__ = "0.1.0"

# name -> module that defines it, imported on first access
_LAZY = {
    "train": "training", "evaluate": "evaluation",
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "pretrain_backbones": "pretrain", "trained_model": "model_cache",
    "SAM": "sam", "PosterLoss": "losses",
}
_SUBMODULES = ("data", "viz", "widgets", "lab_checks", "training", "model_cache", "bench", "notebook",
               "device", "shipped", "official")
# pl.official: the authors' released files, fetched on request (official_files.py; models/official.py
# is the key layout they load through)
_MODULE_OF = {"official": "official_files"}

__all__ = ["PosterConfig", "PosterV2Config", "PRESETS", "ALL_PRESETS", "make_config", "PosterModel",
           "PosterV2Model", "build_model", "load_official_weights", "complexity", "size_table", "fast", "predict",
           *_LAZY, *_SUBMODULES]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{_MODULE_OF.get(name, name)}", __name__)
    else:
        raise AttributeError(f"module 'poster_lite' has no attribute {name!r}")
    globals()[name] = value
    return value
