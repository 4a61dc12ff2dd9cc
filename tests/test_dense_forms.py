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


def test_spliced_models_compute_what_their_parts_compute(ad):
    """Every layer taken from the per-tensor conversion gives the per-tensor model's outputs,
    none gives the per-channel model's, bit for bit in TFLite Micro."""
    from edgezoo.converters.dense_splice import fully_connected_layers, splice_dense
    from edgezoo.converters.quantize import convert

    model, x, _, _ = ad
    calibration = np.random.default_rng(0).normal(size=(200, 640)).astype(np.float32)
    per_channel = convert(model, "int8", calibration, micro=True)
    per_tensor = convert(model, "int8", calibration, micro=True, per_tensor_dense=True)
    layers = sorted(fully_connected_layers(per_channel))
    assert len(layers) == 10

    def run(data):
        runner = MicroRunner(data, read_tflite(data))
        return runner.run(x), runner.arena_bytes

    (out_c, arena_c), (out_t, arena_t) = run(per_channel), run(per_tensor)
    all_t, arena_all = run(splice_dense(per_channel, per_tensor, layers))
    none, arena_none = run(splice_dense(per_channel, per_tensor, []))
    np.testing.assert_array_equal(all_t, out_t)
    np.testing.assert_array_equal(none, out_c)
    assert (arena_all, arena_none) == (arena_t, arena_c)
    _, arena_some = run(splice_dense(per_channel, per_tensor, layers[:3]))
    assert arena_t < arena_some < arena_c


def _uneven_classifier():
    """An MLP whose middle layer holds one weight 200x larger than the rest, on an input that
    is always 0 (a dead unit of the layer before): it changes no output, but one per-tensor
    scale for that layer rounds every other weight to a handful of steps."""
    keras.utils.set_random_seed(1)
    x = inp = keras.Input((32,))
    x = keras.layers.Dense(64, activation="relu", name="wide")(x)
    x = keras.layers.Dense(64, activation="relu", name="uneven")(x)
    model = keras.Model(inp, keras.layers.Dense(10, name="head")(x))
    kernel, bias = model.get_layer("wide").get_weights()
    kernel[:, 0], bias[0] = 0.0, -1.0  # unit 0 of "wide" never fires
    model.get_layer("wide").set_weights([kernel, bias])
    kernel, bias = model.get_layer("uneven").get_weights()
    kernel[0, 0] = 200 * np.abs(kernel).max()
    model.get_layer("uneven").set_weights([kernel, bias])
    return model


def _split(x, model):
    from edgezoo.zoo.data.digits import Split

    return Split(x, model.predict(x, verbose=0).argmax(-1))


def test_each_dense_layer_is_per_tensor_where_the_agreement_allows():
    from edgezoo.convert import convert_model
    from edgezoo.edge.verification import DEFAULT_THRESHOLDS, top1
    from edgezoo.zoo.data.digits import Dataset

    model = _uneven_classifier()
    rng = np.random.default_rng(0)
    train, val, test = (rng.normal(size=(n, 32)).astype(np.float32) for n in (300, 256, 32))
    data = Dataset("gaussian", _split(train, model), _split(val, model), _split(test, model), 10)
    board = get_profile("nrf52840")
    gate = DEFAULT_THRESHOLDS.replace(top1_agreement=0.9)  # an untrained model: close logits
    compressed, _ = convert_model(model, "int8", board, None, thresholds=gate,
                                  recipe=Recipe(dense_form="fc_per_layer"), data=data)
    chosen = compressed.report["dense_form"]
    errors = chosen["per_tensor_weight_error"]
    uneven = max(errors, key=errors.get)  # the middle layer, by its weights alone
    assert chosen["per_channel"] == [uneven] and len(chosen["per_tensor"]) == 2
    first, last = chosen["steps"][0], chosen["steps"][-1]
    assert not first["passed"] and last["passed"] and last["arena_bytes"] < _all_channel_arena(
        model, train)
    # the agreement recorded for the shipped model, recomputed with a plain runner
    runner = MicroRunner(compressed.tflite, read_tflite(compressed.tflite))
    shipped = float((top1(runner.run(val)) == data.val.y).mean())
    assert shipped == pytest.approx(last["agreement"]) and shipped >= 0.9 > first["agreement"]

    # negative control: a gate nothing meets ships every layer per-channel, and says so
    strict = DEFAULT_THRESHOLDS.replace(top1_agreement=1.01)
    compressed, _ = convert_model(model, "int8", board, None, thresholds=strict,
                                  recipe=Recipe(dense_form="fc_per_layer"), data=data)
    assert compressed.report["dense_form"]["per_tensor"] == []
    assert compressed.report["dense_form"]["rule"].startswith("no choice meets")


def _all_channel_arena(model, calibration):
    from edgezoo.converters.quantize import convert

    data = convert(model, "int8", calibration, micro=True)
    return MicroRunner(data, read_tflite(data)).measure_arena()


def test_per_layer_dense_forms_are_refused_where_they_cannot_work():
    with pytest.raises(RecipeError, match="needs a microcontroller --target"):
        Recipe(dense_form="fc_per_layer").check_target(micro=False)
    with pytest.raises(RecipeError, match="LUT compression encodes the weights before"):
        Recipe(dense_form="fc_per_layer", cluster=16)
