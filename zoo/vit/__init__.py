"""ViT (Dosovitskiy et al.): builder, its position-embedding layer, variants, timm checkpoint mapping."""
from edgezoo.zoo.vit import variants  # noqa: F401  (registers the variants)
from edgezoo.zoo.vit import checkpoint  # noqa: F401  (registers the timm mapping)
from edgezoo.zoo.vit.layers import PositionEmbedding, resize_position_embedding
from edgezoo.zoo.vit.model import encoder_block, vit

__all__ = ["PositionEmbedding", "encoder_block", "resize_position_embedding", "vit"]
