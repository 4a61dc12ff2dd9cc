"""DETR (Carion et al.): builder, its layers, backbone and variants."""
from edgezoo.zoo.detr import variants  # noqa: F401  (registers the variants)
from edgezoo.zoo.detr import checkpoint  # noqa: F401  (registers the HF checkpoint family)
from edgezoo.zoo.detr.demo import detr_demo
from edgezoo.zoo.detr.layers import (AddSinePositions, DetrAttention, LearnedPositions2D,
                                     ObjectQueries, ZerosLike)
from edgezoo.zoo.detr.model import detr

__all__ = ["AddSinePositions", "DetrAttention", "LearnedPositions2D", "ObjectQueries",
           "ZerosLike", "detr", "detr_demo"]
