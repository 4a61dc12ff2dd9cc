"""The Perceiver family's own layers: cross-attention, the latent array, Fourier position features."""
from edgezoo.zoo.perceiver.layers.cross_attention import CrossAttention
from edgezoo.zoo.perceiver.layers.fourier_features import (
    FourierPositionEncoding,
    fourier_channels,
    fourier_position_features,
)
from edgezoo.zoo.perceiver.layers.latent_array import LatentArray

__all__ = ["CrossAttention", "FourierPositionEncoding", "LatentArray", "fourier_channels",
           "fourier_position_features"]
