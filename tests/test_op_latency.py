"""XNNPACK partitions and the op-level benchmark (edge.op_latency), on hand-built cases."""
import numpy as np
import tf_keras as keras

from edgezoo.converters.quantize import convert
from edgezoo.converters.tflite_model import read_tflite
from edgezoo.edge.op_latency import op_breakdown, xnnpack_partitions


def _mlp(middle=None):
    x = inp = keras.Input((16,))
    x = keras.layers.Dense(16, name="fc1")(x)
    if middle is not None:
        x = middle(x)
    return keras.Model(inp, keras.layers.Dense(4, name="fc2")(x))


def test_partitions_count_where_xnnpack_stops():
    keras.utils.set_random_seed(0)
    samples = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
    plain = convert(_mlp(), "int8", samples)
    assert xnnpack_partitions(plain) == 1  # FULLY_CONNECTED x2 (and I/O (de)quantize): one piece
    # LayerNorm's int8 SQUARED_DIFFERENCE and RSQRT are not delegated: they split the graph
    split = convert(_mlp(keras.layers.LayerNormalization(name="norm")), "int8", samples)
    assert {"SQUARED_DIFFERENCE", "RSQRT"} <= set(read_tflite(split).op_names)
    assert xnnpack_partitions(split) >= 2
    assert xnnpack_partitions(convert(_mlp(keras.layers.LayerNormalization()), "none")) == 1


def test_breakdown_times_every_op_that_reads_data():
    keras.utils.set_random_seed(0)
    samples = np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)
    data = convert(_mlp(), "int8", samples)
    parsed = read_tflite(data)
    result = op_breakdown(data, parsed, runs=5)
    assert [r["index"] for r in result["ops"]] == [op.index for op in parsed.operators]
    assert set(result["by_op"]) == set(parsed.op_names)
    assert all(r["ms"] > 0 for r in result["ops"])
    assert abs(result["total_ms"] - sum(r["ms"] for r in result["ops"])) < 1e-9
