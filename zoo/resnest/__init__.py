"""ResNeSt (Zhang et al.): builder, its split-attention layers and variants."""
from edgezoo.zoo.resnest import variants  # noqa: F401  (registers the variants)
from edgezoo.zoo.resnest.layers import RadixSoftmax, RadixSum
from edgezoo.zoo.resnest.model import attention_channels, bottleneck, resnest, split_attention

__all__ = ["RadixSoftmax", "RadixSum", "attention_channels", "bottleneck", "resnest", "split_attention"]
