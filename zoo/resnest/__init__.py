"""ResNeSt (Zhang et al.): builder, split-attention layers, variants, timm checkpoint mapping."""
from edgezoo.zoo.resnest import variants  # noqa: F401  (registers the variants)
from edgezoo.zoo.resnest import checkpoint  # noqa: F401  (registers the timm mapping)
from edgezoo.zoo.resnest.layers import RadixSoftmax, RadixSum
from edgezoo.zoo.resnest.model import attention_channels, bottleneck, resnest, split_attention

__all__ = ["RadixSoftmax", "RadixSum", "attention_channels", "bottleneck", "resnest", "split_attention"]
