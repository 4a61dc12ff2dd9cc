"""Ranges int8 scales cannot hold are refused before the converter, which would abort the process
("illegal scale: INF") instead of raising."""
import numpy as np
import pytest
import tf_keras as keras

from edgezoo.converters.quantize import MAX_ABS_RANGE, check_ranges, convert
from edgezoo.base.errors import RecipeError


def _model(kernel_value):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="fc"),
                              keras.layers.Dense(2, name="head")])
    kernel, bias = model.get_layer("fc").get_weights()
    model.get_layer("fc").set_weights([np.full_like(kernel, kernel_value), bias])
    return model


def test_weights_and_activations_beyond_the_range_are_refused_naming_the_layer():
    x = np.full((8, 4), 1e6, np.float32)  # the largest values a data file may hold
    with pytest.raises(RecipeError, match="weights .* of layer 'fc'"):
        check_ranges(_model(np.float32(1e35)), x)
    with pytest.raises(RecipeError, match="weights .* of layer 'fc'"):
        check_ranges(_model(np.nan), x)
    # 4 inputs of 1e6 times weights of 1e25: activations of 4e31, beyond MAX_ABS_RANGE
    assert 4 * 1e6 * 1e25 > MAX_ABS_RANGE
    with pytest.raises(RecipeError, match="layer 'fc' outputs"):
        convert(_model(np.float32(1e25)), "int8", x)


def test_ordinary_ranges_convert():
    x = np.random.default_rng(0).uniform(-1, 1, (16, 4)).astype(np.float32)
    check_ranges(_model(0.5), x)
    assert convert(_model(0.5), "int8", x)[4:8] == b"TFL3"
