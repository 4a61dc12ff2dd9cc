import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

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
from edgezoo.errors import UnsupportedOpsError


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
    assert np.abs(ours - exact_gelu_np(x)).max() < 2.8e-4 < MAX_DEVIATION
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
