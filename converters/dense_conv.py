"""TFLite Micro rewrite: Dense layers become 1x1 convolutions (``PointwiseDense``).

TFLite Micro's int8 FULLY_CONNECTED requantizes a few values differently from
LiteRT's reference kernel (about 0.2 % of elements off by one LSB), and in a
transformer those one-LSB differences pass through LayerNorm's int8 RSQRT and
grow to several LSBs at the logits. CONV_2D is bit-exact between the two
runtimes, and the maths and weights are unchanged.
"""
import tf_keras as keras

from edgezoo.zoo.layers import PointwiseDense


def _clone_as_pointwise(layer):
    config = layer.get_config()
    if type(layer) is keras.layers.Dense:
        return PointwiseDense.from_config(config)
    if "pointwise_projections" in config:  # zoo layers that own Dense projections
        return layer.__class__.from_config({**config, "pointwise_projections": True})
    return layer.__class__.from_config(config)


def dense_to_pointwise(model):
    """Model -> Model: every Dense (and zoo attention projections) becomes a 1x1 convolution."""
    targets = [l for l in model.layers
               if type(l) is keras.layers.Dense or "pointwise_projections" in l.get_config()]
    if not targets:
        return model
    rewritten = keras.models.clone_model(model, clone_function=_clone_as_pointwise)
    rewritten.set_weights(model.get_weights())
    return rewritten
