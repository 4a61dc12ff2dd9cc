"""Both runtimes behind one interface, on real MLPerf Tiny models and on bad input."""
import numpy as np
import pytest

from edgezoo.edge.loader import load_tflite
from edgezoo.edge.micro_ops import micro_op_table
from edgezoo.edge.runners import micro as micro_module
from edgezoo.edge.runners.base import InputError
from edgezoo.edge.runners.litert import LiteRTRunner
from edgezoo.edge.runners.micro import MicroRunner, check_micro_ops, parse_allocations
from edgezoo.base.errors import ModelFileError, RuntimeFailure, UnsupportedOpsError


def _random_int8(model, n, seed=0):
    shape = model.inputs[0].shape[1:]
    return np.random.default_rng(seed).integers(-128, 128, (n, *shape)).astype(np.int8)


@pytest.mark.parametrize("name, ops, arena", [
    ("kws_ref_model.tflite",
     ["AVERAGE_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX"], 24272),
    ("pretrainedResnet_quant.tflite",
     ["ADD", "AVERAGE_POOL_2D", "CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX"], 55984),
])
def test_mlperf_models_agree_across_runtimes(mlperf_dir, name, ops, arena):
    data, model = load_tflite(mlperf_dir / name)
    assert model.op_names == ops
    assert all(set(t) <= {"INT8", "INT32"} for t in model.op_types().values())
    assert model.readout_tensor() == model.operators[-1].inputs[0]  # compared before SOFTMAX
    x = _random_int8(model, 40)
    runner = MicroRunner(data, model)  # every gate on these files: tests/test_mlperf_tiny.py
    micro = runner.run(x)
    assert micro.shape == (40, model.tensors[model.readout_tensor()].shape[-1])
    reference = LiteRTRunner(data, model, "reference").run(x)
    assert np.abs(micro.astype(int) - reference).max() <= 2  # end to end: FC ties add up
    # The arena is TFLite Micro's own recorded total (head + tail), not an estimate.
    total, breakdown = parse_allocations(runner.log)
    assert runner.arena_bytes == total == arena
    head = int(runner.log.split("Arena allocation head ")[1].split()[0])
    tail = int(runner.log.split("Arena allocation tail ")[1].split()[0])
    assert head + tail == total
    assert 0 < sum(breakdown.values()) <= total


def test_op_table_comes_from_the_wheel():
    table = micro_op_table()
    assert {"CONV_2D", "FULLY_CONNECTED", "SOFTMAX", "BATCH_MATMUL", "LOGISTIC"} <= table
    assert "GELU" not in table and "REDUCE_PROD" not in table  # known gaps of TFLite Micro
    assert len(table) > 60


def test_hybrid_model_is_refused_with_layers(mlperf_dir):
    data, model = load_tflite(mlperf_dir / "kws_ref_model_float32.tflite")
    with pytest.raises(UnsupportedOpsError, match="hybrid op") as err:
        check_micro_ops(model)
    assert {p["op"] for p in err.value.problems} == {"CONV_2D"}
    assert all(p["layer"] for p in err.value.problems)
    # LiteRT has hybrid kernels and runs it; its two kernel sets quantize activations
    # differently, so they agree only roughly.
    x = np.random.default_rng(0).normal(size=(8, *model.inputs[0].shape[1:])).astype(np.float32)
    a = LiteRTRunner(data, model, "reference").run(x)
    b = LiteRTRunner(data, model, "default").run(x)
    assert a.shape == b.shape == (8, 12)
    assert np.abs(a - b).max() < 0.25


def test_int8_exp_fails_at_prepare_and_names_the_layer():
    import tf_keras as keras
    import tensorflow as tf

    from edgezoo.converters.quantize import convert

    inp = keras.Input((8,))
    h = keras.layers.Activation(tf.exp, name="expo")(keras.layers.Dense(8, name="fc")(inp))
    model = keras.Model(inp, keras.layers.Dense(4, name="head")(h))
    data, parsed = load_tflite(convert(model, "int8", np.random.rand(50, 8).astype(np.float32)))
    check_micro_ops(parsed)  # EXP is in the op table: only Prepare finds the type problem
    with pytest.raises(UnsupportedOpsError, match=r"EXP \(INT8\) from layer 'expo'.*requires FLOAT32"):
        MicroRunner(data, parsed).run(np.random.rand(2, 8).astype(np.float32))


def test_files_that_are_not_models(tmp_path, mlperf_dir):
    good = (mlperf_dir / "kws_ref_model.tflite").read_bytes()
    cases = {
        "text.tflite": b"this is not a flatbuffer at all",
        "truncated.tflite": good[: len(good) // 2],
        "tail_cut.tflite": good[:-64],
        "empty.tflite": b"",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ModelFileError, match="not a TFLite model|flatbuffer verification"):
            load_tflite(path)
    with pytest.raises(ModelFileError, match="no such file"):
        load_tflite(tmp_path / "missing.tflite")


def test_wrong_input_shape_or_dtype(mlperf_dir):
    data, model = load_tflite(mlperf_dir / "kws_ref_model.tflite")
    runner = LiteRTRunner(data, model, "reference")
    with pytest.raises(InputError, match=r"do not match the model input \(N, 49, 10, 1\)"):
        runner.run(np.zeros((2, 10, 49, 1), np.float32))
    with pytest.raises(InputError, match="dtype int32 but the model takes int8"):
        runner.run(np.zeros((2, 49, 10, 1), np.int32))


def _fake_child(tmp_path, monkeypatch, body):
    child = tmp_path / "child.py"
    child.write_text(body)
    monkeypatch.setattr(micro_module, "CHILD", child)


def test_a_crash_in_tflite_micro_becomes_an_error(tmp_path, monkeypatch, mlperf_dir):
    data, model = load_tflite(mlperf_dir / "kws_ref_model.tflite")
    _fake_child(tmp_path, monkeypatch, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    with pytest.raises(RuntimeFailure, match=r"TFLite Micro crashed \(SIGSEGV\)"):
        MicroRunner(data, model).run(_random_int8(model, 1))


def test_a_hang_in_tflite_micro_becomes_an_error(tmp_path, monkeypatch, mlperf_dir):
    data, model = load_tflite(mlperf_dir / "kws_ref_model.tflite")
    _fake_child(tmp_path, monkeypatch, "import time\ntime.sleep(60)\n")
    with pytest.raises(RuntimeFailure, match="did not finish 1 inference"):
        MicroRunner(data, model, timeout=2).run(_random_int8(model, 1))
