"""Layers shared by more than one of the zoo's families (a family's own layers live in its package); each round-trips through get_config."""
from edgezoo.zoo.layers.attention import (
    ATTENTION_KERNELS,
    MultiHeadSelfAttention,
    register_attention,
)
from edgezoo.zoo.layers.class_token import ClassToken, TokenSelect
from edgezoo.zoo.layers.pointwise_dense import PointwiseDense
from edgezoo.zoo.layers.stochastic_depth import StochasticDepth

__all__ = [
    "ATTENTION_KERNELS",
    "ClassToken",
    "MultiHeadSelfAttention",
    "PointwiseDense",
    "StochasticDepth",
    "TokenSelect",
    "register_attention",
]
