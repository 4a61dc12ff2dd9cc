"""Dense layers converted by what the target needs (converters.dense_forms): on the MLPerf
Tiny AD autoencoder (built here from its published layer sizes), per-tensor FULLY_CONNECTED
reaches plain TensorFlow's per-tensor arena, where per-channel forms keep multiplier arrays
in TFLite Micro's arena."""
import numpy as np
import pytest
import tf_keras as keras

from edgezoo.base.errors import RecipeError
from edgezoo.converters.compress import compress
from edgezoo.converters.quantize import make_converter
from edgezoo.converters.recipe import Recipe
from edgezoo.converters.tflite_model import dequantize_output, read_tflite
from edgezoo.edge import get_profile, verify
from edgezoo.edge.runners.micro import MicroRunner


def ad_autoencoder():
    """MLPerf Tiny AD: 640 log-mel features -> Dense 128 x4 -> 8 -> Dense 128 x4 -> 640, each
    hidden Dense with batch norm and ReLU."""
    x = inp = keras.Input((640,), name="features")
    for i, units in enumerate([128, 128, 128, 128, 8, 128, 128, 128, 128]):
        x = keras.layers.Dense(units, name=f"dense{i}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    return keras.Model(inp, keras.layers.Dense(640, name="reconstruction")(x), name="ad")


@pytest.fixture(scope="module")
def ad():
    keras.utils.set_random_seed(0)
    model = ad_autoencoder()
    rng = np.random.default_rng(0)
    calibration = rng.normal(size=(200, 640)).astype(np.float32)
    held_out = rng.normal(size=(32, 640)).astype(np.float32)  # never calibrated on
    plain = make_converter(model, "int8", calibration, micro=True)
    plain._experimental_disable_per_channel_quantization_for_dense_layers = True
    forms = {name: compress(model, Recipe(dense_form=name), calibration=calibration, micro=True)
             for name in ("conv1x1", "fc_per_tensor")}
    return model, held_out, bytes(plain.convert()), forms


def _arena_and_error(tflite, model, x):
    parsed = read_tflite(tflite)
    runner = MicroRunner(tflite, parsed)
    out = dequantize_output(runner.run(x), parsed.outputs[0])
    error = float(np.sqrt(((out - model.predict(x, verbose=0)) ** 2).mean()))
    return runner.arena_bytes, error, parsed


def test_per_tensor_dense_reaches_plain_tensorflows_arena(ad):
    model, x, plain, forms = ad
    plain_arena, plain_error, _ = _arena_and_error(plain, model, x)
    arena, error, parsed = _arena_and_error(forms["fc_per_tensor"].tflite, model, x)
    assert parsed.op_names == ["FULLY_CONNECTED"]
    assert arena <= 1.1 * plain_arena, (arena, plain_arena)
    assert error <= plain_error * (1 + 1e-6), (error, plain_error)
    # the per-channel 1x1-conv form (the bit-exact default) pays its multipliers in RAM
    conv_arena, _, conv_parsed = _arena_and_error(forms["conv1x1"].tflite, model, x)
    assert "CONV_2D" in conv_parsed.op_names and conv_arena > 3 * arena
    # and the per-tensor model passes the board gates (per-op: FULLY_CONNECTED within 1 LSB)
    result = verify(forms["fc_per_tensor"].tflite, parsed, get_profile("nrf52840"), x,
                    real_data=False)
    assert result["passed"], result["failures"]
    assert result["checks"]["micro_vs_reference_per_op"]["passed"]


def test_dense_form_is_checked_before_any_work():
    with pytest.raises(RecipeError, match="unknown dense_form 'fc'; choose one of conv1x1"):
        Recipe(dense_form="fc").validate()
    with pytest.raises(RecipeError, match="needs --quantize int8 or int16x8, not float16"):
        Recipe(dense_form="fc_per_tensor", quantize="float16").validate()
