"""What edgezoo measures in a .tflite, against hand counts: weight sparsity, the TFLite Micro
type check, and the arena record TFLite Micro prints."""
import re

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from edgezoo.converters.quantize import convert
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.converters.tflite_weights import sparsity_by_layer
from edgezoo.edge.micro_ops import MICRO_UNSUPPORTED_TYPES
from edgezoo.edge.runners.micro import check_micro_ops, parse_allocations, static_problems
from edgezoo.base.errors import UnsupportedOpsError


def _tiny_model():
    """Conv2D(4, 2x2) on 3x3x2 -> 2x2x4 -> Flatten (16) -> Dense(8) -> Softmax.

    The softmax keeps the Dense op from writing the signature output, so its tensors carry
    the layer's name.
    """
    inp = keras.Input((3, 3, 2), name="img")
    h = keras.layers.Conv2D(4, 2, name="conv")(inp)
    h = keras.layers.Flatten(name="flat")(h)
    h = keras.layers.Dense(8, name="fc")(h)
    return keras.Model(inp, keras.layers.Softmax(name="prob")(h), name="tiny")


def _calibration(n=16, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 3, 3, 2)).astype(np.float32)


# --- a. sparsity measured on the stored int8 weights ---------------------------------------

def _hand_kernel(shape, zeros_per_channel, rng):
    """Kernel with the output channel on the last axis. Each channel holds one +-127 (so the
    symmetric per-channel int8 scale is exactly 1.0), ``zeros_per_channel[c]`` exact zeros, a
    few +-3 and otherwise +-1: the +-1 weights are stored as int8 +-1, not 0.
    Returns (kernel, zeros, ones) with the exact counts of zeros and of +-1 weights."""
    kernel = np.zeros(shape, np.float32)
    flat = kernel.reshape(-1, shape[-1])
    per_channel = flat.shape[0]
    zeros = ones = 0
    for c, nz in enumerate(zeros_per_channel):
        values = np.empty(per_channel, np.float32)
        values[0] = 127.0
        values[1:1 + nz] = 0.0
        rest = per_channel - 1 - nz
        n3 = min(2, rest // 3)
        values[1 + nz:] = [3.0] * n3 + [1.0] * (rest - n3)
        values *= rng.choice([-1.0, 1.0], per_channel)
        values[values == -0.0] = 0.0
        flat[:, c] = rng.permutation(values)
        zeros += nz
        ones += rest - n3
    return flat.reshape(shape), zeros, ones


def _stored_int8_weights(data, shape):
    """The stored int8 constant of ``shape``, read through LiteRT (independent of edgezoo)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data)
    found = [d for d in interpreter.get_tensor_details()
             if tuple(d["shape"]) == shape and d["dtype"] == np.int8]
    assert len(found) == 1, found
    return interpreter.get_tensor(found[0]["index"])


def test_sparsity_by_layer_counts_exact_zeros_not_small_int8_steps():
    rng = np.random.default_rng(3)
    model = _tiny_model()
    conv_k, conv_zeros, conv_ones = _hand_kernel((2, 2, 2, 4), [3, 3, 3, 3], rng)  # 8 per channel
    fc_k, fc_zeros, fc_ones = _hand_kernel((16, 8), [0, 2, 4, 6, 8, 10, 12, 14], rng)
    model.get_layer("conv").set_weights([conv_k, np.full(4, 0.25, np.float32)])
    model.get_layer("fc").set_weights([fc_k, np.full(8, -0.5, np.float32)])
    assert (conv_zeros, conv_k.size) == (12, 32) and (fc_zeros, fc_k.size) == (56, 128)
    assert conv_ones >= 8 and fc_ones >= 30  # many weights one int8 step from zero

    data = convert(model, "int8", _calibration())

    # The premise, read independently: the +-1 weights are stored as int8 +-1.
    for kernel, shape, ones in ((conv_k, (4, 2, 2, 2), conv_ones), (fc_k, (8, 16), fc_ones)):
        stored = _stored_int8_weights(data, shape)
        assert int(np.sum(np.abs(stored) == 1)) == ones
        assert int(np.sum(stored == 0)) == int(np.sum(kernel == 0))
        assert int(np.sum(np.abs(stored) == 127)) == shape[0]

    measured = sparsity_by_layer(data)
    # Denominators are powers of two, so the shares are exact in floating point.
    assert measured == {"conv": conv_zeros / conv_k.size, "fc": fc_zeros / fc_k.size}
    assert measured == {"conv": 0.375, "fc": 0.4375}


# --- b. types TFLite Micro has no kernels for -----------------------------------------------

def _ops_with(parsed, dtype):
    return {o.index: o for o in parsed.operators if dtype in o.input_types + o.output_types}


def test_float16_model_is_refused_naming_float16_and_ops():
    model = _tiny_model()
    parsed = read_tflite(convert(model, "float16"))
    f16_ops = _ops_with(parsed, "FLOAT16")
    assert f16_ops  # the converter stores float16 weights behind DEQUANTIZE ops
    problems = static_problems(parsed)
    assert sorted(p["index"] for p in problems) == sorted(f16_ops)
    for p in problems:
        op = f16_ops[p["index"]]
        assert (p["op"], p["types"], p["layer"]) == (op.op, ["FLOAT16"], op.layer)
        assert p["op"] == "DEQUANTIZE"
        assert p["reason"] == MICRO_UNSUPPORTED_TYPES["FLOAT16"]
    assert "conv" in {p["layer"] for p in problems}  # the conv kernel's DEQUANTIZE
    with pytest.raises(UnsupportedOpsError, match=r"DEQUANTIZE \(FLOAT16\) from layer 'conv': "
                                                  r"TFLite Micro has no float16 kernels") as err:
        check_micro_ops(parsed)
    assert err.value.problems == problems


def test_float16_problems_name_the_keras_layers():
    parsed = read_tflite(convert(_tiny_model(), "float16"))
    assert {p["layer"] for p in static_problems(parsed)} == {"conv", "fc"}


class _ThroughFloat64(keras.layers.Layer):
    def call(self, x):
        return tf.cast(tf.cast(x, tf.float64), tf.float32)


def test_float64_model_is_refused_naming_float64_and_layer():
    inp = keras.Input((4,), name="v")
    h = _ThroughFloat64(name="dbl")(inp)
    model = keras.Model(inp, keras.layers.Softmax(name="prob")(keras.layers.Dense(3, name="fc")(h)),
                        name="f64")
    parsed = read_tflite(convert(model, "none"))
    f64_ops = _ops_with(parsed, "FLOAT64")
    assert [(o.op, o.layer) for o in f64_ops.values()] == [("CAST", "dbl"), ("CAST", "dbl")]
    problems = static_problems(parsed)
    assert [(p["op"], p["types"], p["layer"], p["index"], p["reason"]) for p in problems] == [
        ("CAST", ["FLOAT64"], "dbl", i, MICRO_UNSUPPORTED_TYPES["FLOAT64"]) for i in sorted(f64_ops)]
    with pytest.raises(UnsupportedOpsError, match=r"CAST \(FLOAT64\) from layer 'dbl': "
                                                  r"TFLite Micro has no float64 kernels"):
        check_micro_ops(parsed)


def test_plain_int8_model_has_no_problems():
    parsed = read_tflite(convert(_tiny_model(), "int8", _calibration()))
    assert {t for o in parsed.operators for t in o.input_types + o.output_types} <= {"INT8", "INT32"}
    assert static_problems(parsed) == []
    check_micro_ops(parsed)  # no error


# --- c. TFLite Micro's arena record ---------------------------------------------------------

# RecordingMicroAllocator::PrintAllocations, as the wheel prints it (copied from a real run of
# the MLPerf Tiny KWS model), with made-up numbers; "used" and "requested" differ on purpose.
_RECORD = """\
[RecordingMicroAllocator] Arena allocation total 31337 bytes
[RecordingMicroAllocator] Arena allocation head 20000 bytes
[RecordingMicroAllocator] Arena allocation tail 11337 bytes
[RecordingMicroAllocator] 'TfLiteEvalTensor data' used 1016 bytes with alignment overhead (requested 1008 bytes for 42 allocations)
[RecordingMicroAllocator] 'Persistent TfLiteTensor data' used 192 bytes with alignment overhead (requested 180 bytes for 3 tensors)
[RecordingMicroAllocator] 'Persistent TfLiteTensor quantization data' used 96 bytes with alignment overhead (requested 88 bytes for 6 allocations)
[RecordingMicroAllocator] 'Persistent buffer data' used 7777 bytes with alignment overhead (requested 7700 bytes for 41 allocations)
[RecordingMicroAllocator] 'NodeAndRegistration struct' used 1234 bytes with alignment overhead (requested 1234 bytes for 17 NodeAndRegistration structs)
"""
_NOISE = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
          "E0000 00:00:1796160460.744561    3808 cuda_dnn.cc:8310] Unable to register cuDNN factory: "
          "Attempting to register factory for plugin cuDNN when one has already been registered\n")


def test_parse_allocations_reads_total_and_breakdown():
    total, breakdown = parse_allocations(_RECORD + _NOISE)
    assert total == 31337
    assert breakdown == {
        "TfLiteEvalTensor data": 1016,
        "Persistent TfLiteTensor data": 192,
        "Persistent TfLiteTensor quantization data": 96,
        "Persistent buffer data": 7777,
        "NodeAndRegistration struct": 1234,
    }
    assert parse_allocations(_NOISE + _RECORD) == (total, breakdown)


def test_parse_allocations_without_a_record():
    assert parse_allocations("") == (None, {})
    assert parse_allocations(_NOISE + "Invoke() failed\n") == (None, {})


def test_hand_written_record_has_the_real_format(mlperf_dir):
    """The record above has the lines and categories a real TFLite Micro run prints."""
    from edgezoo.edge.loader import load_tflite
    from edgezoo.edge.runners.micro import MicroRunner

    data, parsed = load_tflite(mlperf_dir / "kws_ref_model.tflite")
    runner = MicroRunner(data, parsed)
    runner.run(np.zeros((1, *parsed.inputs[0].shape[1:]), np.int8))
    real = [line for line in runner.log.splitlines() if line.startswith("[RecordingMicroAllocator]")]
    ours = _RECORD.splitlines()
    assert len(real) == len(ours)
    assert [re.sub(r"\d+", "#", line) for line in real] == [re.sub(r"\d+", "#", line) for line in ours]
    total, breakdown = parse_allocations(runner.log)
    assert runner.arena_bytes == total and set(breakdown) == set(parse_allocations(_RECORD)[1])
