"""TFLite Micro's integer arithmetic in NumPy (edge/int8_reference.py), checked on hand-computed
cases, and its use as the arbiter of the per-op gate where LiteRT's int8 MUL is 1 LSB off."""
import numpy as np
import pytest

from edgezoo.edge.int8_reference import int8_mul, multiply_by_quantized_multiplier, \
    quantize_multiplier

# deformable_detr_micro's sampling MUL (encoder0_attn/mul_35): scales and zero points
DEFORMABLE_MUL = ((0.00392156420275569, -128), (0.0039215534925460815, -128),
                  (0.003918113652616739, -128))


def test_quantize_multiplier_by_hand():
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(0.25) == (1 << 30, -1)
    assert quantize_multiplier(3.0) == (3 << 29, 2)  # 0.75 * 2^2
    assert quantize_multiplier(0.0) == (0, 0)


@pytest.mark.parametrize("x, real, expected", [
    (3, 0.5, 2),     # 1.5, a positive tie: up
    (2, 0.25, 1),    # 0.5 in the rounding shift: up
    (5, 0.25, 2),    # 1.25, but the high multiply rounds 5 * 0.5 = 2.5 to 3 before 3 / 2 -> 2:
                     # the double rounding (one rounding would give 1)
    (7, 0.25, 2),    # 1.75
    (-5, 0.25, -1),  # -1.25
    (-7, 0.25, -2),  # -1.75
    (13120, 0.003925007072035683, 51),  # 51.496
])
def test_requantization_by_hand(x, real, expected):
    q, shift = quantize_multiplier(real)
    assert int(multiply_by_quantized_multiplier(np.array([x]), q, shift)[0]) == expected


def test_int8_mul_by_hand():
    # (-48 + 128) * (36 + 128) = 13,120; * 0.0039250 = 51.496 -> 51; + (-128) = -77
    assert int(int8_mul(np.int8(-48), np.int8(36), *DEFORMABLE_MUL)) == -77
    # a fused RELU clamps at the output zero point
    assert int(int8_mul(np.int8(-128), np.int8(0), (0.1, 0), (0.1, 0), (0.1, 0), 1)) == 0
    assert int(int8_mul(np.int8(-128), np.int8(0), (0.1, 0), (0.1, 0), (0.1, 0), 0)) == 0
    assert int(int8_mul(np.int8(-20), np.int8(10), (0.1, 0), (0.1, 0), (0.1, 0), 1)) == 0
    assert int(int8_mul(np.int8(-20), np.int8(10), (0.1, 0), (0.1, 0), (0.1, 0), 0)) == -20


def _mul_model(quant=DEFORMABLE_MUL):
    """A one-MUL int8 model of two (4, 340) inputs with the given quantization."""
    import tensorflow as tf
    import tf_keras as keras

    from edgezoo.converters.flatbuffer_io import pack_model, read_model_t
    from edgezoo.edge.loader import load_tflite

    a, b = keras.Input((4, 340), batch_size=1), keras.Input((4, 340), batch_size=1)
    model = keras.Model([a, b], keras.layers.Multiply()([a, b]))
    rng = np.random.default_rng(0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.uniform(0, 1, (1, 4, 340)).astype(np.float32)
                                                 for _ in range(2)] for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    model_t = read_model_t(converter.convert())
    sg = model_t.subgraphs[0]
    mul = next(op for op in sg.operators
               if model_t.operatorCodes[op.opcodeIndex].builtinCode == 18)  # MUL
    for j, (scale, zero) in zip([*mul.inputs, *mul.outputs], quant):
        sg.tensors[j].quantization.scale = [scale]
        sg.tensors[j].quantization.zeroPoint = [zero]
    return load_tflite(pack_model(model_t))


def _inputs():
    """Every int8 pair once (65,536 of them over 49 samples of 4 x 340), the rest zeros."""
    pairs = np.array([(i, j) for i in range(-128, 128) for j in range(-128, 128)], np.int8)
    size = 4 * 340
    n = -(-len(pairs) // size)
    full = np.zeros((n * size, 2), np.int8)
    full[:len(pairs)] = pairs
    return [full[:, 0].reshape(n, 4, 340), full[:, 1].reshape(n, 4, 340)]


@pytest.mark.parametrize("quant", [DEFORMABLE_MUL, ((0.02, 0), (0.03, 3), (0.05, -7)),
                                   ((0.1, 5), (0.007, -20), (0.0123, 10))])
def test_the_derivation_is_tflite_micros_mul_on_every_int8_pair(quant):
    """An independent implementation: TFLite Micro's own kernel, on all 65,536 input pairs
    (negative products and ties included where the zero points are not -128)."""
    from edgezoo.edge.op_compare import MicroJob, run_micro_jobs

    from edgezoo.edge.op_compare import read_model_t

    data, parsed = _mul_model(quant)
    a, b = _inputs()
    mul = next(o for o in parsed.operators if o.op == "MUL")
    by_tensor = {mul.inputs[0]: a, mul.inputs[1]: b}
    # one array per subgraph input, in the subgraph's order; one batch-1 tensor a row
    rows = [by_tensor[j].reshape(len(a), 1, 4, 340) for j in read_model_t(data).subgraphs[0].inputs]
    micro = run_micro_jobs([MicroJob("mul", data, rows, 1, 1 << 20)])[0][0]
    np.testing.assert_array_equal(np.asarray(micro).reshape(a.shape), int8_mul(a, b, *quant))


def test_mul_where_litert_is_off_is_judged_by_the_numpy_derivation():
    from edgezoo.edge.op_compare import compare_ops, run_micro_jobs

    data, parsed = _mul_model()
    x = _inputs()
    result = compare_ops(data, parsed, x, samples=len(x[0]))
    row = next(r for r in result["ops"] if r["op"] == "MUL")
    # LiteRT's reference kernel and TFLite Micro differ (1 LSB, on the products of 13,120) ...
    assert row["max_lsb"] == 1 and 0 < row["differing"] < 1e-3
    # ... and TFLite Micro equals the derivation, so the op passes, saying so
    assert row["passed"] and result["passed"]
    assert row["arbitrated"]["micro_vs_derivation_lsb"] == 0
    assert [a["op"] for a in result["arbitrated"]] == ["MUL"]

    def off_elsewhere(jobs):  # negative control: TFLite Micro 1 LSB off where LiteRT agreed
        outs = run_micro_jobs(jobs)
        for job, out in zip(jobs, outs):
            if job.op_index is not None:
                out[0].reshape(-1)[0] = out[0].reshape(-1)[0] + 1  # (0, 0) pair: not a 13,120
        return outs

    broken = compare_ops(data, parsed, x, samples=len(x[0]), micro=off_elsewhere)
    row = next(r for r in broken["ops"] if r["op"] == "MUL")
    assert not row["passed"] and not broken["passed"]
    assert row["arbitrated"]["micro_vs_derivation_lsb"] == 1
    assert broken["first_failure"]["op"] == "MUL"
