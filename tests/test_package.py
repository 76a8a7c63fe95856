"""The top-level API stays callable whatever submodules were imported before."""
import importlib


def test_top_level_functions_survive_submodule_imports():
    import poster_lite as pl
    for module in ("fast", "predict", "evaluation", "training", "model_cache", "checkpoint", "device", "cli"):
        importlib.import_module(f"poster_lite.{module}")
    for name in ("fast", "predict", "evaluate", "train", "trained_model", "load_checkpoint",
                 "build_model", "complexity"):
        assert callable(getattr(pl, name)), f"pl.{name} is not callable"
