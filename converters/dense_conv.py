"""TFLite Micro rewrite: Dense layers become 1x1 convolutions (``PointwiseDense``).

TFLite Micro's int8 FULLY_CONNECTED requantizes a few values differently from
LiteRT's reference kernel (about 0.2 % of elements off by one LSB), and in a
transformer those one-LSB differences pass through LayerNorm's int8 RSQRT and
grow to several LSBs at the logits. CONV_2D is bit-exact between the two
runtimes, and the maths and weights are unchanged.
"""
import tf_keras as keras

from edgezoo.converters.graph import layers_where, rewrite_layers
from edgezoo.zoo.layers import PointwiseDense


def _is_target(layer):
    return type(layer) is keras.layers.Dense or "pointwise_projections" in layer.get_config()


def _as_pointwise(layer):
    if not _is_target(layer):
        return None
    config = layer.get_config()
    if type(layer) is keras.layers.Dense:
        return PointwiseDense.from_config(config)
    return layer.__class__.from_config({**config, "pointwise_projections": True})  # zoo layers


def dense_to_pointwise(model):
    """Model -> Model: every Dense (and zoo attention projections) becomes a 1x1 convolution,
    nested models included."""
    if not layers_where(model, _is_target):
        return model
    return rewrite_layers(model, _as_pointwise)
