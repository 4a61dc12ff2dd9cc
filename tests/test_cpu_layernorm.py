"""The LiteRT (CPU) LayerNorm rewrite: the same normalisation (NumPy reference), a graph
XNNPACK keeps together in int8, and conversions for rpi4 that still agree with the float
model. Speed itself is a benchmark (bench/cpu_latency.py), not a test."""
import numpy as np
import pytest
import tf_keras as keras

from edgezoo.base.errors import RecipeError
from edgezoo.converters.compress import compress
from edgezoo.converters.cpu_layernorm import CpuLayerNormalization, layernorm_for_xnnpack
from edgezoo.converters.recipe import Recipe
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.edge.op_latency import xnnpack_partitions
from edgezoo.zoo import create_model


def test_matches_a_numpy_layer_norm_and_round_trips_its_config():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (4, 5, 16)).astype(np.float32)
    gamma, beta = rng.normal(size=16).astype(np.float32), rng.normal(size=16).astype(np.float32)
    layer = CpuLayerNormalization(epsilon=1e-6)
    layer.build(x.shape)
    layer.set_weights([gamma, beta])
    mean = x.mean(-1, keepdims=True)
    expected = (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + 1e-6) * gamma + beta
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    clone = CpuLayerNormalization.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    # a constant row (variance 0 < eps): divided by sqrt(eps), so it stays finite: beta
    flat = np.ones((1, 16), np.float32)
    np.testing.assert_allclose(layer(flat).numpy(), beta[None], atol=1e-6)


@pytest.fixture(scope="module")
def vit():
    keras.utils.set_random_seed(0)
    model = create_model("vit_micro")
    x = np.random.default_rng(0).uniform(0, 1, (64, 16, 16, 1)).astype(np.float32)
    return model, x


@pytest.mark.slow  # about 100 s (five conversions); the layer itself runs by default above
def test_rewrite_keeps_outputs_and_xnnpack_partitions_fall(vit):
    model, x = vit
    rewritten = layernorm_for_xnnpack(model)
    assert not any(type(l) is keras.layers.LayerNormalization for l in rewritten.layers)
    np.testing.assert_allclose(rewritten.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=1e-3)
    stock = compress(model, Recipe(), calibration=x)  # no target: the stock int8
    cpu = compress(model, Recipe(target="rpi4", xnnpack_layernorm=True), calibration=x)
    default = compress(model, Recipe(target="rpi4"), calibration=x)  # opt-in: not by default
    assert "layernorm_for_xnnpack" not in default.report["recipe"]["rewrites"]
    assert cpu.report["recipe"]["rewrites"] == ["layernorm_for_xnnpack"]
    ops = read_tflite(cpu.tflite).op_types()
    assert "SQUARED_DIFFERENCE" not in ops and "RSQRT" not in ops
    assert ops["SQRT"] == ["FLOAT32"] and ops["DIV"] == ["FLOAT32"]  # the float island
    assert xnnpack_partitions(cpu.tflite) < xnnpack_partitions(stock.tflite) / 2
    # a microcontroller target keeps the all-int8 form: asking for the rewrite there is refused
    micro = compress(model, Recipe(target="nrf52840"), calibration=x, micro=True)
    assert "layernorm_for_xnnpack" not in micro.report["recipe"]["rewrites"]
    with pytest.raises(RecipeError, match="xnnpack_layernorm .* TFLite Micro target cannot run"):
        compress(model, Recipe(target="nrf52840", xnnpack_layernorm=True), calibration=x,
                 micro=True)
