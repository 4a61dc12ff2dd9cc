"""Perceiver and Perceiver IO (Jaegle et al.): builders, their layers and variants."""
from edgezoo.zoo.perceiver import variants  # noqa: F401  (registers the variants)
from edgezoo.zoo.perceiver import checkpoint  # noqa: F401  (registers the HF checkpoint family)
from edgezoo.zoo.perceiver.layers import CrossAttention, FourierPositionEncoding, LatentArray
from edgezoo.zoo.perceiver.model import perceiver, perceiver_io

__all__ = ["CrossAttention", "FourierPositionEncoding", "LatentArray", "perceiver", "perceiver_io"]
