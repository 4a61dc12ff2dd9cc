"""GELU for TFLite Micro: a form the converter leaves alone, built from MUL, ADD and LOGISTIC.

TFLite Micro has no GELU kernel, and the TFLite converter fuses both exact GELU
and ``tf.nn.gelu(approximate=True)`` (the tanh form) into one GELU op. We use
``x * sigmoid(a*x + b*x^3)``: the tanh form rewritten through
``0.5 * (1 + tanh(z)) = sigmoid(2z)``, with ``a`` and ``b`` refitted (minimax
against exact GELU over [-12, 12]) so the largest deviation drops from 4.7e-4
to 2.8e-4. The pattern matcher does not recognise it, so it survives conversion.
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from edgezoo.converters.graph import (
    is_graph_model,
    layers_where,
    model_nodes,
    node_input,
    rewrite_layers,
    walk,
)

GELU_A = 1.6003142
GELU_B = 0.0694018
MAX_DEVIATION = 2.8e-4  # the bound promised (README, micro_gelu) over the calibration range


@keras.saving.register_keras_serializable(package="edgezoo", name="micro_gelu")
def micro_gelu(x):
    """GELU within 2.8e-4 of exact, from ops that TFLite Micro runs in int8."""
    return x * tf.sigmoid(x * (GELU_A + GELU_B * x * x))


def exact_gelu_np(x):
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def micro_gelu_np(x):
    from scipy.special import expit

    return x * expit(x * (GELU_A + GELU_B * x * x))


def max_deviation(lo, hi, points=20001):
    """Largest |micro_gelu - exact GELU| on a dense grid over [lo, hi]."""
    x = np.linspace(float(lo), float(hi), points)
    return float(np.abs(micro_gelu_np(x) - exact_gelu_np(x)).max())


def _is_gelu(activation):
    if activation is None:
        return False
    if isinstance(activation, dict):  # serialized form in a layer config
        activation = activation.get("config", activation.get("class_name"))
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", "")
    return name == "gelu"


def gelu_layers(model):
    """Layers of ``model`` (nested models included) whose activation is GELU (Activation layers
    or fused activations)."""
    return layers_where(model, lambda layer: _is_gelu(layer.get_config().get("activation")))


def rewrite_gelu(model):
    """Model -> Model: every GELU activation becomes ``micro_gelu``; weights are copied."""
    if not gelu_layers(model):
        return model

    def replace(layer):
        config = layer.get_config()
        if not _is_gelu(config.get("activation")):
            return None
        return layer.__class__.from_config({**config, "activation": micro_gelu})

    return rewrite_layers(model, replace)


def gelu_input_range(model, samples, batch_size=64):
    """(min, max) of the values entering GELU activations of ``model`` on ``samples``."""
    return layers_input_range(model, gelu_layers(model), samples, batch_size)


def layers_input_range(model, layers, samples, batch_size=64):
    """(min, max) of the values entering the activation of ``layers`` on ``samples`` (None if no
    layers). Activation layers see their input; for a layer with a fused activation the
    pre-activation is recomputed by a linear copy of that layer.

    Every call of each layer in ``model``'s own graph counts (nested models
    included); calls from other models that share the layer object (TFMOT's
    strip steps leave such layers) do not.
    """
    if not layers:
        return None
    lo, hi = np.inf, -np.inf
    for layer, x in _calls_inputs(model, layers, samples, batch_size):
        if not isinstance(layer, keras.layers.Activation):
            x = _pre_activation(layer, x)
        for value in tf.nest.flatten(x):
            lo, hi = min(lo, float(np.min(value))), max(hi, float(np.max(value)))
    return lo, hi


def _calls_inputs(model, layers, samples, batch_size):
    """(layer, the arrays its call received) for every call in ``model``'s graph of each of
    ``layers``, descending into nested models through the inputs of their calls."""
    wanted = {id(layer) for layer in layers}
    probes = []  # (layer or nested model, input structure of one of its calls in ``model``)
    for owner, layer in walk(model):
        if owner is not model:
            continue
        holds = is_graph_model(layer) and any(id(l) in wanted for _, l in walk(layer))
        if id(layer) in wanted or holds:
            probes.extend((layer, node_input(node)) for node in model_nodes(model, layer))
    if not probes:
        return
    flat = [t for _, structure in probes for t in tf.nest.flatten(structure)]
    values = keras.Model(model.inputs, flat).predict(samples, batch_size=batch_size, verbose=0)
    values = iter(values if isinstance(values, list) else [values])
    for layer, structure in probes:
        x = tf.nest.pack_sequence_as(structure, [next(values) for _ in tf.nest.flatten(structure)])
        if id(layer) in wanted:
            yield layer, x
        else:
            yield from _calls_inputs(layer, layers, x, batch_size)


def _pre_activation(layer, x):
    """What ``layer`` computes before its fused activation, on arrays ``x``."""
    linear = layer.__class__.from_config({**layer.get_config(), "activation": None})
    linear(tf.nest.map_structure(lambda a: a[:1], x))  # builds it for x's shapes
    linear.set_weights(layer.get_weights())
    return tf.nest.map_structure(np.asarray, linear(x))
