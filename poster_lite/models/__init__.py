"""POSTER's parts, one per file, from small to large."""
from .ir50 import IRBackbone
from .mobilefacenet import MobileFaceNet
from .fusion import CrossFusionBlock, GivenQueryAttention
from .pyramid import PyramidFusion
from .poster import PosterModel, build_model
from .official import load_official_weights, to_release_state_dict, CheckpointMismatch

__all__ = ["IRBackbone", "MobileFaceNet", "CrossFusionBlock", "GivenQueryAttention",
           "PyramidFusion", "PosterModel", "build_model", "load_official_weights",
           "to_release_state_dict", "CheckpointMismatch"]
