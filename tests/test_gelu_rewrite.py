import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from edgezoo.converters import gelu as gelu_module
from edgezoo.converters.gelu import (
    MAX_DEVIATION,
    exact_gelu_np,
    gelu_input_range,
    gelu_layers,
    max_deviation,
    micro_gelu,
    rewrite_gelu,
)
from edgezoo.converters.quantize import convert
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.edge.runners.micro import check_micro_ops
from edgezoo.base.errors import UnsupportedOpsError


def _mlp(activation_layer=True, approximate=False):
    inp = keras.Input((16,), name="x")
    if activation_layer:
        h = keras.layers.Dense(32, name="fc1")(inp)
        h = keras.layers.Activation(
            (lambda t: tf.nn.gelu(t, approximate=True)) if approximate else "gelu", name="act")(h)
    else:
        h = keras.layers.Dense(32, activation="gelu", name="fc1")(inp)
    return keras.Model(inp, keras.layers.Dense(4, name="head")(h))


def test_micro_gelu_is_within_bound_of_exact_everywhere():
    x = np.linspace(-20, 20, 400001).astype(np.float64)
    ours = micro_gelu(tf.constant(x)).numpy()
    assert np.abs(ours - exact_gelu_np(x)).max() < 2.8e-4
    assert max_deviation(-6, 6) == pytest.approx(np.abs(ours - exact_gelu_np(x))[np.abs(x) <= 6].max(), rel=1e-3)


@pytest.mark.parametrize("activation_layer", [True, False])
def test_rewrite_replaces_gelu_and_keeps_weights(activation_layer):
    model = _mlp(activation_layer)
    assert len(gelu_layers(model)) == 1
    rewritten = rewrite_gelu(model)
    assert gelu_layers(rewritten) == []
    x = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
    lo, hi = gelu_input_range(model, x)
    assert lo < 0 < hi
    diff = np.abs(rewritten.predict(x, verbose=0) - model.predict(x, verbose=0)).max()
    # head weights are O(0.3); 32 GELU outputs each within max_deviation
    assert 0 < diff <= 32 * max_deviation(lo, hi) * np.abs(model.get_layer("head").get_weights()[0]).max()


def test_rewrite_leaves_models_without_gelu_alone():
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2, activation="relu")(inp))
    assert rewrite_gelu(model) is model


@pytest.mark.parametrize("approximate", [False, True])
def test_converter_fuses_gelu_unless_rewritten(approximate):
    """The trap: both exact and tanh GELU become one GELU op; the rewrite survives conversion."""
    model = _mlp(approximate=approximate)
    x = np.random.default_rng(1).normal(size=(32, 16)).astype(np.float32)
    plain = read_tflite(convert(model, "int8", x))
    assert "GELU" in plain.op_names
    with pytest.raises(UnsupportedOpsError, match=r"GELU \(INT8\) from layer 'act'") as err:
        check_micro_ops(plain)
    assert err.value.problems[0]["op"] == "GELU"
    if not approximate:
        rewritten = read_tflite(convert(rewrite_gelu(model), "int8", x))
        assert "GELU" not in rewritten.op_names
        assert {"LOGISTIC", "MUL", "ADD"} <= set(rewritten.op_names)
        check_micro_ops(rewritten)  # no error


# The README promises the rewrite is "within 2.8e-4 of exact GELU".
PROMISED_DEVIATION = 2.8e-4


def _exact_gelu_scipy(x):
    """x * Phi(x), with Phi the standard normal CDF, in float64 (independent of converters.gelu)."""
    from scipy.special import erf

    x = np.asarray(x, np.float64)
    return x * 0.5 * (1.0 + erf(x / np.sqrt(2.0)))


def test_rewritten_gelu_as_converted_is_within_promise_on_dense_wide_grid():
    """The rewrite as the rewritten Keras model and its float TFLite conversion compute it."""
    from ai_edge_litert.interpreter import Interpreter

    inp = keras.Input((1000, 1000), name="x")
    rewritten = rewrite_gelu(keras.Model(inp, keras.layers.Activation("gelu", name="act")(inp)))
    assert gelu_layers(rewritten) == []
    x = np.linspace(-12.0, 12.0, 1_000_000).astype(np.float32).reshape(1, 1000, 1000)
    exact = _exact_gelu_scipy(x)

    keras_dev = np.abs(rewritten(x, training=False).numpy().astype(np.float64) - exact).max()

    data = convert(rewritten, "none")
    assert read_tflite(data).op_names == ["ADD", "LOGISTIC", "MUL"]  # no fused GELU
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    tflite_out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    tflite_dev = np.abs(tflite_out.astype(np.float64) - exact).max()

    for deviation in (keras_dev, tflite_dev):
        assert 1e-4 < deviation <= PROMISED_DEVIATION  # a real approximation, within the promise


def test_tanh_gelu_coefficients_would_break_the_promise(monkeypatch):
    """The grid check can fail: the unrefitted tanh form (4.7e-4) is over the promise."""
    c = np.sqrt(2.0 / np.pi)
    monkeypatch.setattr(gelu_module, "GELU_A", 2.0 * c)
    monkeypatch.setattr(gelu_module, "GELU_B", 2.0 * 0.044715 * c)
    x = np.linspace(-12.0, 12.0, 1_000_000).astype(np.float32)
    deviation = np.abs(micro_gelu(tf.constant(x)).numpy().astype(np.float64) - _exact_gelu_scipy(x)).max()
    assert deviation > PROMISED_DEVIATION


def test_max_deviation_constant_is_not_looser_than_promise():
    assert MAX_DEVIATION <= PROMISED_DEVIATION
