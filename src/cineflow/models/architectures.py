"""The architectures, one module per family (as timm does it): importing this module registers every family in
MODELS, so `build_model` knows them all. Stages import what they need from here."""

# each module registers its family
from cineflow.models import echo, frame2d, probe, resnext3d, tiny3d, torchvision_video, videomae  # noqa: F401
from cineflow.models.builder import (
                                     MODELS,
                                     Bidirectional,
                                     backbone_blocks,
                                     build_model,
                                     frame_attention,
                                     get_module,
                                     init_output_bias,
                                     match_channels,
                                     stem_channels,
)
from cineflow.models.weights import load_weights

__all__ = ["MODELS", "Bidirectional", "backbone_blocks", "build_model", "frame_attention", "get_module",
           "init_output_bias", "load_weights", "match_channels", "stem_channels"]
