"""LiteRT (CPU) rewrite: LayerNormalization in a form XNNPACK runs inside an int8 graph.

Keras' LayerNormalization converts to int8 MEAN, SQUARED_DIFFERENCE and RSQRT; XNNPACK
delegates none of the last two in int8, so every LayerNorm splits the graph (the int8
``vit_micro`` runs in 37 XNNPACK partitions, its float model in 2, and is 3x slower than
float). Written as ``xc / max(sqrt(var), sqrt(eps))`` with ``xc = x - mean`` and
``var = mean(xc * xc)``, the converter keeps MEAN, SUB and MUL in int8, which XNNPACK
delegates, and SQRT, MAXIMUM and DIV in float (a small float island XNNPACK also runs):
the int8 ``vit_micro`` then runs in 10 partitions. It equals LayerNormalization except where
a row's variance is below ``eps`` (a near-constant row), where it divides by ``sqrt(eps)``
instead of ``sqrt(var + eps)``. Microcontroller targets keep the all-int8 form.
"""
import tensorflow as tf
import tf_keras as keras

from edgezoo.converters.graph import layers_where, rewrite_layers


@keras.saving.register_keras_serializable(package="edgezoo")
class CpuLayerNormalization(keras.layers.Layer):
    """LayerNormalization over the last axis, as ``xc / max(sqrt(var), sqrt(eps))``."""

    def __init__(self, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.epsilon, self.center, self.scale = float(epsilon), bool(center), bool(scale)

    def build(self, input_shape):
        dim = input_shape[-1:]
        self.gamma = self.add_weight("gamma", dim, initializer="ones") if self.scale else None
        self.beta = self.add_weight("beta", dim, initializer="zeros") if self.center else None
        super().build(input_shape)

    def call(self, x):
        xc = x - tf.reduce_mean(x, axis=-1, keepdims=True)
        var = tf.reduce_mean(xc * xc, axis=-1, keepdims=True)
        y = xc / tf.maximum(tf.sqrt(var), self.epsilon ** 0.5)
        if self.gamma is not None:
            y = y * self.gamma
        if self.beta is not None:
            y = y + self.beta
        return y

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale}


def _is_target(layer):
    if type(layer) is not keras.layers.LayerNormalization:
        return False
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    rank = len(layer.input_shape) if hasattr(layer, "input_shape") else None
    return list(axis) in ([-1], [rank - 1] if rank else [-1])


def _as_cpu(layer):
    if not _is_target(layer):
        return None
    config = layer.get_config()
    return CpuLayerNormalization(config["epsilon"], config["center"], config["scale"],
                                 name=config["name"], dtype=config.get("dtype"))


def layernorm_for_xnnpack(model):
    """Model -> Model: every last-axis LayerNormalization becomes CpuLayerNormalization (same
    weights, gamma then beta), nested models included; ``model`` itself when none."""
    if not layers_where(model, _is_target):
        return model
    return rewrite_layers(model, _as_cpu)
