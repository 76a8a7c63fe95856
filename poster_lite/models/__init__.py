"""POSTER's parts, one per file, from small to large."""
from .build import build_model
from .fusion import CrossFusionBlock, GivenQueryAttention
from .ir50 import IRBackbone
from .mobilefacenet import MobileFaceNet
from .official import CheckpointMismatch, load_official_weights, to_release_state_dict
from .poster import PosterModel
from .poster_v2 import PosterV2Model
from .pyramid import PyramidFusion

__all__ = ["IRBackbone", "MobileFaceNet", "CrossFusionBlock", "GivenQueryAttention",
           "PyramidFusion", "PosterModel", "PosterV2Model", "build_model", "load_official_weights",
           "to_release_state_dict", "CheckpointMismatch"]
