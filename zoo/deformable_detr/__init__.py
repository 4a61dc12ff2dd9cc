"""Deformable DETR (Zhu et al.): builder, its layers and checkpoint mapping."""
from edgezoo.zoo.deformable_detr import variants  # noqa: F401  (registers the variants)
from edgezoo.zoo.deformable_detr import checkpoint  # noqa: F401  (registers the HF checkpoint family)
from edgezoo.zoo.deformable_detr.layers import (EncoderReferencePoints, LevelPositions,
                                                MultiScaleDeformableAttention, QueryEmbeddings,
                                                RefineBoxes)
from edgezoo.zoo.deformable_detr.model import deformable_detr

__all__ = ["EncoderReferencePoints", "LevelPositions", "MultiScaleDeformableAttention",
           "QueryEmbeddings", "RefineBoxes", "deformable_detr"]
