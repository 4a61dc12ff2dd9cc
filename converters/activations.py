"""Activations TFLite Micro cannot run in int8, rebuilt from ops it has (LOGISTIC, RSQRT, ABS, MUL, ADD).

Measured with the installed wheel (tests/test_micro_rewrites.py): int8 EXP
fails at Prepare, so Mish, softplus and ``exponential`` convert but do not run;
SELU converts to SELECT, which TFLite Micro lacks; ELU stays a float island
(DEQUANTIZE, ELU, QUANTIZE) that LiteRT's reference kernels cannot load, so
its int8 arithmetic cannot be checked; softsign does not convert at all. The
converter does not quantize DIV, so divisions are written with RSQRT
(``1/u = rsqrt(u*u)`` for ``u > 0``).

Exact identities, with ``s = sigmoid(x)``, ``u = 1 - s = sigmoid(-x)`` (so ``e^x = s/u``;
``1 - s`` because the converter leaves ``NEG`` in float):

- Mish: ``tanh(softplus(x)) = ((1+e^x)^2 - 1) / ((1+e^x)^2 + 1) = (1-u^2)/(1+u^2)``
  and ``1 - u^2 = s(1+u)``: ``mish(x) = x * s * (1+u) * rsqrt(1+u^2)^2``.
- ELU, SELU: ``e^m - 1 = s(m) * rsqrt(u(m)^2) - 1`` for ``m = min(x, 0)``, where ``u(m)`` is in [0.5, 1);
  ``m`` is written ``x - relu(x)``, since the int8 quantizer would clip MINIMUM's input to [min, 0].
- softsign: ``x / (1+|x|) = x * rsqrt(1+|x|)^2``.

softplus has no such identity without LOG, so it is fitted:
``softplus(x) = relu(x) + log(1 + e^-|x|)``, and the second term, a bump of height
log 2, is ``a*sigmoid(-b|x|) + c*sigmoid(-d|x|)`` with ``a, b, c, d`` fitted
(minimax over |x| <= 20; both sides vanish beyond): within 1.22e-3 everywhere.

``exponential`` (unbounded e^x) has no cheap int8 form; it is a row of
``edgezoo.converters.micro_support``.
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from edgezoo.converters.graph import layers_where, rewrite_layers

BOUND_RANGE = 20.0
SOFTPLUS_FIT = (1.17956074, 1.05640025, 0.20429237, 3.10625241)
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _exp_nonpositive(m):
    """e^m for m <= 0 from LOGISTIC and RSQRT: s / (1 - s), s = sigmoid(m).

    ``1 - s`` rather than ``sigmoid(-m)``: the converter leaves NEG in float.
    """
    s = tf.sigmoid(m)
    u = 1.0 - s
    return s * tf.math.rsqrt(u * u)


def _split_elu(x):
    """(relu(x), e^min(x,0) - 1). ``min(x, 0)`` is written ``x - relu(x)``: the int8 quantizer
    gives MINIMUM's input its output's scale, which would clip every positive x to 0."""
    positive = tf.nn.relu(x)
    return positive, _exp_nonpositive(x - positive) - 1.0


@keras.saving.register_keras_serializable(package="edgezoo", name="micro_mish")
def micro_mish(x):
    """Mish, exactly, as x * s * (1+u) / (1+u^2) with s = sigmoid(x), u = 1 - s."""
    s = tf.sigmoid(x)
    u = 1.0 - s  # not sigmoid(-x): the converter leaves that NEG in float
    r = tf.math.rsqrt(1.0 + u * u)
    return x * s * (1.0 + u) * (r * r)


@keras.saving.register_keras_serializable(package="edgezoo", name="micro_softplus")
def micro_softplus(x):
    """softplus within 1.22e-3: relu(x) plus a two-sigmoid fit of log(1 + e^-|x|)."""
    a, b, c, d = SOFTPLUS_FIT
    ax = tf.abs(x)
    return tf.nn.relu(x) + a * tf.sigmoid(-b * ax) + c * tf.sigmoid(-d * ax)


@keras.saving.register_keras_serializable(package="edgezoo", name="micro_elu")
def micro_elu(x):
    """ELU (alpha 1), exactly: relu(x) + e^min(x,0) - 1, with e^m from LOGISTIC and RSQRT."""
    positive, negative = _split_elu(x)
    return positive + negative


@keras.saving.register_keras_serializable(package="edgezoo", name="micro_selu")
def micro_selu(x):
    """SELU, exactly: scale * (relu(x) + alpha * (e^min(x,0) - 1))."""
    positive, negative = _split_elu(x)
    return SELU_SCALE * (positive + SELU_ALPHA * negative)


@keras.saving.register_keras_serializable(package="edgezoo", name="micro_softsign")
def micro_softsign(x):
    """softsign, exactly: x * rsqrt(1 + |x|)^2."""
    r = tf.math.rsqrt(1.0 + tf.abs(x))
    return x * (r * r)


def _softplus_np(x):
    return np.logaddexp(0.0, x)


def _elu_np(x):
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def _mish_np(x):
    return x * np.tanh(_softplus_np(x))


# activation name -> (replacement, exact float64 reference, largest |deviation| promised anywhere,
# why TFLite Micro cannot run the original in int8). Bounds: float32, over [-BOUND_RANGE, BOUND_RANGE]
# (beyond it float32 rounding of x itself dominates; softplus's fit error only shrinks).
MICRO_ACTIVATIONS = {
    "mish": (micro_mish, _mish_np, 1e-5,
             "int8 EXP (from softplus) fails at Prepare in TFLite Micro"),
    "softplus": (micro_softplus, _softplus_np, 1.5e-3,
                 "int8 EXP fails at Prepare in TFLite Micro; it has no int8 LOG either"),
    "elu": (micro_elu, _elu_np, 1e-5,
            "the converter leaves ELU in float (DEQUANTIZE, ELU, QUANTIZE), which LiteRT's "
            "reference kernels cannot load, so TFLite Micro's int8 result cannot be checked"),
    "selu": (micro_selu, lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
             2e-5, "SELU converts to SELECT, which TFLite Micro has no kernel for"),
    "softsign": (micro_softsign, lambda x: x / (1.0 + np.abs(x)), 1e-5,
                 "the TFLite converter has no Softsign builtin (tf.Softsign is neither a builtin "
                 "nor a flex op)"),
}


def activation_name(activation):
    """The name of a Keras activation (string, function or serialized dict), or ''."""
    if activation is None:
        return ""
    if isinstance(activation, dict):  # serialized form in a layer config
        activation = activation.get("config", activation.get("class_name"))
    name = activation if isinstance(activation, str) else getattr(activation, "__name__", "")
    return name.split(">")[-1]


def activation_layers(model, name):
    """Layers of ``model`` (nested models included) whose activation (Activation layer or fused)
    is ``name``."""
    return layers_where(model,
                        lambda layer: activation_name(layer.get_config().get("activation")) == name)


def max_deviation(name, lo, hi, points=20001):
    """Largest |replacement - exact| of activation ``name`` in float32 on a dense grid over [lo, hi]."""
    replacement, exact, _bound, _why = MICRO_ACTIVATIONS[name]
    x = np.linspace(float(lo), float(hi), points)
    ours = replacement(tf.constant(x, tf.float32)).numpy().astype(np.float64)
    return float(np.abs(ours - exact(x.astype(np.float32).astype(np.float64))).max())


def rewrite_activation(model, name):
    """Model -> Model: activation ``name`` becomes its TFLite Micro form; weights are copied."""
    if not activation_layers(model, name):
        return model
    replacement = MICRO_ACTIVATIONS[name][0]

    def replace(layer):
        config = layer.get_config()
        if activation_name(config.get("activation")) != name:
            return None
        return layer.__class__.from_config({**config, "activation": replacement})

    return rewrite_layers(model, replace)


def rewrite_mish(model):
    """Model -> Model: Mish becomes ``micro_mish`` (exact)."""
    return rewrite_activation(model, "mish")


def rewrite_softplus(model):
    """Model -> Model: softplus becomes ``micro_softplus`` (within 1.22e-3)."""
    return rewrite_activation(model, "softplus")


def rewrite_elu(model):
    """Model -> Model: ELU becomes ``micro_elu`` (exact)."""
    return rewrite_activation(model, "elu")


def rewrite_selu(model):
    """Model -> Model: SELU becomes ``micro_selu`` (exact)."""
    return rewrite_activation(model, "selu")


def rewrite_softsign(model):
    """Model -> Model: softsign becomes ``micro_softsign`` (exact)."""
    return rewrite_activation(model, "softsign")


def activation_input_range(model, samples, name, batch_size=64):
    """(min, max) of the values entering activation ``name`` in ``model`` on ``samples``, or None."""
    from edgezoo.converters.gelu import layers_input_range

    return layers_input_range(model, activation_layers(model, name), samples, batch_size)


def activation_deviations(model, samples):
    """{name: {calibration_range, max_abs_deviation, bound}} for each rewritable activation in ``model``.

    Raises AssertionError when a replacement deviates beyond its bound over the
    range its inputs take on ``samples`` (call on the model before rewriting).
    """
    report = {}
    for name, (_replacement, _exact, bound, _why) in MICRO_ACTIVATIONS.items():
        span = activation_input_range(model, samples, name)
        if span is None:
            continue
        deviation = max_deviation(name, *span)
        if deviation > bound:
            raise AssertionError(f"{name} rewrite deviates {deviation:.2e} > {bound} over {span}")
        report[name] = {"calibration_range": list(span), "max_abs_deviation": deviation, "bound": bound}
    return report
