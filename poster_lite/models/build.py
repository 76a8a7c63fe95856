"""One entry point for every preset: POSTER (V1) names build a PosterModel, V2 names a PosterV2Model."""
from __future__ import annotations

from torch import nn

from ..config_v2 import V2_PRESETS, PosterV2Config
from .poster import build_model as build_v1_model
from .poster_v2 import build_v2_model


def build_model(name="poster-l", **overrides) -> nn.Module:
    """Build a preset (poster-t/-s/-l, image-only, poster-nano, poster-v2, poster-v2-nano, ...)
    or a PosterConfig / PosterV2Config; any config field can be overridden by keyword.
    Never reads a file."""
    if isinstance(name, PosterV2Config) or (isinstance(name, str) and name.lower() in V2_PRESETS):
        return build_v2_model(name, **overrides)
    return build_v1_model(name, **overrides)
