"""Layers shared by the zoo's model families; each round-trips through get_config."""
from edgezoo.zoo.layers.attention import (
    ATTENTION_KERNELS,
    MultiHeadSelfAttention,
    register_attention,
)
from edgezoo.zoo.layers.class_token import ClassToken, TokenSelect
from edgezoo.zoo.layers.cross_shaped_attention import CrossShapedWindowAttention
from edgezoo.zoo.layers.cross_attention import CrossAttention
from edgezoo.zoo.layers.fourier_features import (
    FourierPositionEncoding,
    fourier_channels,
    fourier_position_features,
)
from edgezoo.zoo.layers.latent_array import LatentArray
from edgezoo.zoo.layers.pointwise_dense import PointwiseDense
from edgezoo.zoo.layers.position_embedding import PositionEmbedding, resize_position_embedding
from edgezoo.zoo.layers.split_attention import RadixSoftmax, RadixSum
from edgezoo.zoo.layers.stochastic_depth import StochasticDepth

__all__ = [
    "ATTENTION_KERNELS",
    "ClassToken",
    "CrossShapedWindowAttention",
    "CrossAttention",
    "FourierPositionEncoding",
    "LatentArray",
    "MultiHeadSelfAttention",
    "PointwiseDense",
    "PositionEmbedding",
    "RadixSoftmax",
    "RadixSum",
    "StochasticDepth",
    "TokenSelect",
    "fourier_channels",
    "fourier_position_features",
    "register_attention",
    "resize_position_embedding",
]
