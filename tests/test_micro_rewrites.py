"""TFLite Micro rewrites: activations, transposes above 4-D, Dense on rank > 2 (checked in Keras,
LiteRT's reference kernels and TFLite Micro)."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from edgezoo.converters.activations import (
    BOUND_RANGE,
    MICRO_ACTIVATIONS,
    activation_deviations,
    activation_input_range,
    activation_layers,
    max_deviation,
    rewrite_activation,
    rewrite_mish,
)
from edgezoo.converters.dense_conv import dense_to_pointwise
from edgezoo.converters.quantize import convert
from edgezoo.converters.rewrites import MICRO_REWRITES, apply_micro_rewrites
from edgezoo.converters.tflite_model import dequantize_output, read_tflite
from edgezoo.converters.transpose import MicroTranspose, merged_transpose, rewrite_transposes
from edgezoo.edge.runners.litert import LiteRTRunner
from edgezoo.edge.runners.micro import MicroRunner, check_micro_ops, run_many
from edgezoo.base.errors import UnsupportedOpsError

ACTIVATIONS = sorted(MICRO_ACTIVATIONS)
DENSE_SHAPES = [(5, 6), (3, 4, 6), (2, 3, 4, 6), (2, 2, 3, 4, 6)]


def _mlp(activation, fused=False):
    inp = keras.Input((16,), name="x")
    if fused:
        h = keras.layers.Dense(24, activation=activation, name="fc1")(inp)
    else:
        h = keras.layers.Activation(activation, name="act")(keras.layers.Dense(24, name="fc1")(inp))
    return keras.Model(inp, keras.layers.Dense(4, name="head")(h))


def _x(shape, n=48, seed=0, scale=2.0):
    return (scale * np.random.default_rng(seed).normal(size=(n, *shape))).astype(np.float32)


def _window_partition(use_permute):
    """(B, 8, 8, 3) -> windows of 4x4: a 6-D (with batch) transpose, as window attention does."""
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Reshape((2, 4, 2, 4, 3))(inp)
    x = keras.layers.Permute((1, 3, 2, 4, 5))(x) if use_permute else tf.transpose(x, [0, 1, 3, 2, 4, 5])
    return keras.Model(inp, keras.layers.Reshape((4, 16, 3))(x))


def _dense(shape):
    inp = keras.Input(shape)
    return keras.Model(inp, keras.layers.Dense(8)(inp))


# --- Keras float: deviation bounds -------------------------------------------------------------

@pytest.mark.parametrize("name", ACTIVATIONS)
def test_replacement_within_stated_bound(name):
    bound = MICRO_ACTIVATIONS[name][2]
    deviation = max_deviation(name, -BOUND_RANGE, BOUND_RANGE, points=200001)
    assert deviation <= bound
    if name == "softplus":  # a fit, not an identity: its error is real and near the stated minimax
        assert deviation > 1e-3


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_rewritten_model_matches_original_over_calibration_range(name):
    inp = keras.Input((16,))
    model = keras.Model(inp, keras.layers.Activation(name, name="act")(keras.layers.Dense(24)(inp)))
    x = _x((16,), 256)
    rewritten = rewrite_activation(model, name)
    assert activation_layers(rewritten, name) == []
    lo, hi = activation_input_range(model, x, name)
    assert lo < -2 and hi > 2
    diff = np.abs(rewritten.predict(x, verbose=0) - model.predict(x, verbose=0)).max()
    assert diff <= max(max_deviation(name, lo, hi), 1e-6) + 1e-6
    assert diff <= MICRO_ACTIVATIONS[name][2]
    report = activation_deviations(model, x)
    assert report[name]["calibration_range"] == [lo, hi]
    assert report[name]["max_abs_deviation"] <= report[name]["bound"]


@pytest.mark.parametrize("activation", ["mish", keras.activations.mish, "mish_fused", "conv"])
def test_mish_detected_in_every_form(activation):
    if activation == "conv":
        inp = keras.Input((6, 6, 1))
        model = keras.Model(inp, keras.layers.Conv2D(3, 3, activation="mish")(inp))
    else:
        model = _mlp("mish" if activation == "mish_fused" else activation, fused=activation == "mish_fused")
    assert len(activation_layers(model, "mish")) == 1
    rewritten = rewrite_mish(model)
    assert activation_layers(rewritten, "mish") == []
    x = _x(model.input_shape[1:], 16)
    assert np.abs(rewritten.predict(x, verbose=0) - model.predict(x, verbose=0)).max() < 1e-5


def test_rewrites_leave_other_models_alone():
    model = _mlp("relu")
    for name, (rewrite, why) in MICRO_REWRITES.items():
        if name != "dense_as_conv1x1":
            assert rewrite(model) is model, name
        assert why
    inp = keras.Input((2, 3, 4))
    four_d = keras.Model(inp, keras.layers.Permute((2, 1, 3))(inp))  # 4-D: TFLite Micro runs it
    assert rewrite_transposes(four_d) is four_d
    inp = keras.Input((2, 3, 4, 5, 6))
    unmergeable = keras.Model(inp, keras.layers.Permute((2, 4, 1, 5, 3))(inp))
    rewritten = rewrite_transposes(unmergeable)  # no axes merge, but the batch axis drops at batch 1
    assert isinstance(rewritten.layers[-1], MicroTranspose)
    x = _x((2, 3, 4, 5, 6), 1)
    np.testing.assert_array_equal(rewritten.predict(x, verbose=0), unmergeable.predict(x, verbose=0))


def test_rewritten_activation_model_round_trips(tmp_path):
    model = _mlp("mish")
    for name in ACTIVATIONS:
        model = keras.Model(model.input, keras.layers.Activation(name)(model.output))
    rewritten, applied = apply_micro_rewrites(model)
    assert set(ACTIVATIONS) <= set(applied)
    x = _x((16,), 8)
    expected = rewritten.predict(x, verbose=0)
    again = keras.Model.from_config(rewritten.get_config())
    again.set_weights(rewritten.get_weights())
    np.testing.assert_array_equal(again.predict(x, verbose=0), expected)
    rewritten.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)


# --- transposes ------------------------------------------------------------------------------

def test_merged_transpose_merges_axes_that_stay_together():
    assert merged_transpose([None, 2, 4, 2, 4, 3], [0, 1, 3, 2, 4, 5]) == (
        [-1, 4, 2, 12], [0, 2, 1, 3], [-1, 2, 2, 4, 4, 3])
    assert merged_transpose([1, 2, 4, 2, 4, 3], [0, 1, 3, 2, 4, 5])[:2] == ([2, 4, 2, 12], [0, 2, 1, 3])
    assert merged_transpose([1, 2, 3, 4, 5], [0, 1, 2, 3, 4])[1] == [0]
    x = np.arange(2 * 3 * 1 * 4 * 5 * 2).reshape(2, 3, 1, 4, 5, 2)
    for perm in ([0, 4, 5, 2, 1, 3], [3, 0, 1, 2, 5, 4], [5, 4, 3, 2, 1, 0]):
        shape, small, out = merged_transpose(list(x.shape), perm)
        np.testing.assert_array_equal(x.reshape(shape).transpose(small).reshape(out), x.transpose(perm))
    with pytest.raises(ValueError, match="not a permutation"):
        merged_transpose([2, 3], [0, 0])


@pytest.mark.parametrize("use_permute", [True, False])
def test_transpose_rewrite_is_bit_exact_and_round_trips(use_permute, tmp_path):
    model = _window_partition(use_permute)
    rewritten = rewrite_transposes(model)
    assert [type(l).__name__ for l in rewritten.layers].count("MicroTranspose") == 1
    x = _x((8, 8, 3), 5)
    expected = model.predict(x, verbose=0)
    np.testing.assert_array_equal(rewritten.predict(x, verbose=0), expected)
    rewritten.save(tmp_path / "t.keras")
    np.testing.assert_array_equal(keras.models.load_model(tmp_path / "t.keras").predict(x, verbose=0), expected)
    layer = next(l for l in rewritten.layers if isinstance(l, MicroTranspose))
    assert MicroTranspose.from_config(layer.get_config()).perm == [0, 1, 3, 2, 4, 5]


# --- int8 in TFLite Micro vs LiteRT reference kernels --------------------------------------------

def _case(model, x):
    data = convert(model, "int8", x, micro=True)
    return data, read_tflite(data)


FLOAT = {}  # activation name -> the original Keras model's float outputs on the run inputs


@pytest.fixture(scope="module")
def micro_runs():
    """Every int8 model of this module, run in one TFLite Micro child: {key: (runner, result, x)}."""
    cases = {}
    for name in ACTIVATIONS:
        model = _mlp(name)
        x = _x((16,))
        if name != "softsign":  # softsign does not convert (see test_unrewritten_softsign)
            cases[("plain", name)] = (*_case(model, x), x)
        cases[("rewritten", name)] = (*_case(apply_micro_rewrites(model)[0], x), x)
        FLOAT[name] = model.predict(x[:8], verbose=0)
    for use_permute in (True, False):
        model, x = _window_partition(use_permute), _x((8, 8, 3))
        cases[("plain", f"window{use_permute}")] = (*_case(model, x), x)
        cases[("rewritten", f"window{use_permute}")] = (*_case(apply_micro_rewrites(model)[0], x), x)
    for shape in DENSE_SHAPES:
        model, x = _dense(shape), _x(shape)
        cases[("rewritten", f"dense{len(shape) + 1}")] = (*_case(apply_micro_rewrites(model)[0], x), x)
    keys = list(cases)
    runners = [MicroRunner(cases[k][0], cases[k][1], check_ops=False) for k in keys]
    results = run_many(runners, inputs=[r.prepare_inputs(cases[k][2][:8]) for r, k in zip(runners, keys)])
    return {k: (r, res, cases[k][2][:8], cases[k][1]) for k, r, res in zip(keys, runners, results)}


def _micro_vs_reference(run):
    runner, result, x, _parsed = run
    assert result.error is None, result.error
    reference = LiteRTRunner(runner.model_bytes, runner.model, "reference").run(x)
    return int(np.abs(reference.astype(int) - result.outputs.astype(int)).max())


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_rewritten_activation_runs_in_micro_and_matches_reference(name, micro_runs):
    parsed = micro_runs[("rewritten", name)][3]
    check_micro_ops(parsed)
    assert not {"EXP", "SELECT", "ELU", "DEQUANTIZE", "LOG", "NEG"} & set(parsed.op_names)
    run = micro_runs[("rewritten", name)]
    assert _micro_vs_reference(run) <= 1
    # int8 against the original float activation, in output LSBs (measured 2.0-2.5 on 64 samples;
    # a quantizer trap such as MINIMUM sharing its input's scale shows up here as ~100)
    details = run[0].readout_details
    int8 = dequantize_output(run[1].outputs, details).reshape(FLOAT[name].shape)
    assert np.abs(int8 - FLOAT[name]).max() / details.scale <= 4


@pytest.mark.parametrize("name, op", [("mish", "EXP"), ("softplus", "EXP")])
def test_unrewritten_activation_fails_in_micro_naming_op(name, op, micro_runs):
    _runner, result, _x_, parsed = micro_runs[("plain", name)]
    check_micro_ops(parsed)  # EXP is registered: only running it shows the int8 gap
    assert isinstance(result.error, UnsupportedOpsError)
    assert result.error.problems[0]["op"] == op
    assert "does not accept INT8" in str(result.error)


def test_unrewritten_selu_fails_the_op_check(micro_runs):
    with pytest.raises(UnsupportedOpsError, match=r"SELECT .*TFLite Micro has no SELECT kernel") as err:
        check_micro_ops(micro_runs[("plain", "selu")][3])
    assert err.value.problems[0]["op"] == "SELECT"


def test_unrewritten_elu_is_a_float_island_reference_cannot_load(micro_runs):
    runner, result, x, parsed = micro_runs[("plain", "elu")]
    assert {"DEQUANTIZE", "ELU", "QUANTIZE"} <= set(parsed.op_names)
    assert result.error is None  # TFLite Micro runs float ELU, but nothing can check it
    with pytest.raises(ValueError, match="ELU"):
        LiteRTRunner(runner.model_bytes, parsed, "reference")


def test_unrewritten_softsign_does_not_convert():
    with pytest.raises(Exception, match="Softsign"):
        convert(_mlp("softsign"), "int8", _x((16,)), micro=True)


@pytest.mark.parametrize("use_permute", [True, False])
def test_window_partition_fails_unrewritten_and_runs_rewritten(use_permute, micro_runs):
    _runner, result, _x_, parsed = micro_runs[("plain", f"window{use_permute}")]
    assert isinstance(result.error, UnsupportedOpsError)
    assert result.error.problems[0]["op"] == "TRANSPOSE"
    assert "1D-5D" in str(result.error)
    run = micro_runs[("rewritten", f"window{use_permute}")]
    ranks = [len(run[3].tensors[op.inputs[0]].shape) for op in run[3].operators if op.op == "TRANSPOSE"]
    assert ranks == [4]
    assert _micro_vs_reference(run) == 0
    # a transpose only moves values: the int8 output is the quantized input, permuted
    runner, result, x = run[0], run[1], run[2]
    windows = runner.prepare_inputs(x).reshape(-1, 2, 4, 2, 4, 3).transpose(0, 1, 3, 2, 4, 5)
    np.testing.assert_array_equal(result.outputs.reshape(windows.shape), windows)


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=lambda s: f"rank{len(s) + 1}")
def test_dense_on_rank_above_2_runs_as_conv2d(shape, micro_runs):
    model = _dense(shape)
    rewritten = dense_to_pointwise(model)
    x = _x(shape, 8)
    np.testing.assert_allclose(rewritten.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    run = micro_runs[("rewritten", f"dense{len(shape) + 1}")]
    assert "CONV_2D" in run[3].op_names and "FULLY_CONNECTED" not in run[3].op_names
    assert _micro_vs_reference(run) == 0
