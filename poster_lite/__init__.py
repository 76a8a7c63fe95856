"""poster-lite: a teaching suite for POSTER (Pyramid Cross-Fusion Transformer for FER)."""
from .config import PRESETS, PosterConfig, make_config
from .models import PosterModel, build_model, load_official_weights
from .complexity import complexity, size_table

__version__ = "0.1.0"
__all__ = ["PosterConfig", "PRESETS", "make_config", "PosterModel", "build_model",
           "load_official_weights", "complexity", "size_table"]
