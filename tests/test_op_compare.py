"""The per-op gate: TFLite Micro against LiteRT's reference kernels, one op at a time on identical
inputs, bit-exact except where the two reference kernels are known to requantize differently."""
import numpy as np
import pytest

from edgezoo.edge import op_compare
from edgezoo.edge.loader import load_tflite
from edgezoo.edge.op_compare import OP_TOLERANCE_LSB, compare_ops, one_op_model, read_model_t
from edgezoo.base.errors import RuntimeFailure

from conftest import ad_autoencoder, shifted_micro

MLPERF_MODELS = ("kws_ref_model.tflite", "pretrainedResnet_quant.tflite")
ROUNDING_OPS = {"FULLY_CONNECTED", "BATCH_MATMUL"}


def _random_int8(model, n, seed=0):
    shape = model.inputs[0].shape[1:]
    return np.random.default_rng(seed).integers(-128, 128, (n, *shape)).astype(np.int8)


@pytest.fixture(scope="module")
def kws(mlperf_dir):
    return load_tflite(mlperf_dir / "kws_ref_model.tflite")


def test_tolerance_table_names_only_the_rounding_ops():
    assert set(OP_TOLERANCE_LSB) == ROUNDING_OPS
    assert all(lsb == 1 and reason for lsb, reason in OP_TOLERANCE_LSB.values())
    assert op_compare.tolerance("ADD")[0] == op_compare.tolerance("SOFTMAX")[0] == 0


@pytest.mark.parametrize("name", MLPERF_MODELS)
def test_mlperf_models_pass_and_only_fully_connected_differs(mlperf_dir, name):
    data, model = load_tflite(mlperf_dir / name)
    result = compare_ops(data, model, _random_int8(model, 8))
    assert result["passed"] and result["first_failure"] is None, result["first_failure"]
    assert result["extraction_exact"]
    assert [r["index"] for r in result["ops"]] == list(range(len(model.operators)))
    for row in result["ops"]:
        assert row["layer"] == model.operators[row["index"]].layer and row["tensor"], row
        assert row["max_lsb"] == 0 or row["op"] == "FULLY_CONNECTED", row
        assert row["tolerance"] == (1 if row["op"] == "FULLY_CONNECTED" else 0)
    assert set(result["max_lsb_by_op"]) == set(model.op_names)
    e2e = result["end_to_end"]
    assert e2e["tensor"] == model.tensors[model.readout_tensor()].name  # pre-softmax headline
    assert e2e["max_lsb"] is not None


def test_deep_mlp_grows_fc_rounding_end_to_end_but_passes_per_op():
    """A 1-LSB rounding difference at one FULLY_CONNECTED grows through ten of them: the end-to-end difference
    exceeds 1 LSB (seed 0: 2 LSB on 4 of these 8 samples) while every op is within 1."""
    from edgezoo.converters.quantize import make_converter

    model = ad_autoencoder(seed=0)
    calibration = np.random.default_rng(0).normal(size=(100, 640)).astype(np.float32)
    converter = make_converter(model, "int8", calibration)
    converter._experimental_disable_per_channel = True  # per-tensor FULLY_CONNECTED, as MLPerf AD
    data, parsed = load_tflite(bytes(converter.convert()))
    assert parsed.op_names == ["FULLY_CONNECTED"] and len(parsed.operators) == 10
    x = np.random.default_rng(100).normal(size=(8, 640)).astype(np.float32)  # quantized inside
    result = compare_ops(data, parsed, x)
    assert result["end_to_end"]["max_lsb"] > 1, result["end_to_end"]  # the old gate fails
    assert result["passed"], result["first_failure"]
    assert result["max_lsb_by_op"] == {"FULLY_CONNECTED": 1}  # 1-LSB roundings seen, none beyond
    assert all(r["max_lsb"] <= 1 for r in result["ops"])


def test_a_real_divergence_is_located_at_its_op():
    """TFLite Micro's int8 RELU6 clamps without requantizing: when its output's scale and zero
    point differ from its input's (here a CONCATENATION with a TANH branch sets them), every
    element is off by up to the zero-point difference. The gate names that op and its layer."""
    import tf_keras as keras

    from edgezoo.converters.quantize import make_converter

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 4))
    h = keras.layers.Conv2D(16, 3, padding="same", name="conv")(inp)
    h = keras.layers.Concatenate(name="concat")([keras.layers.ReLU(6.0, name="clip6")(h),
                                                  keras.layers.Activation("tanh", name="tanh")(h)])
    out = keras.layers.Dense(10, name="head")(keras.layers.GlobalAveragePooling2D(name="gap")(h))
    calibration = np.random.default_rng(0).normal(size=(64, 8, 8, 4)).astype(np.float32)
    data, parsed = load_tflite(bytes(make_converter(keras.Model(inp, out), "int8",
                                                    calibration).convert()))
    relu6 = next(o for o in parsed.operators if o.op == "RELU6")
    src, dst = parsed.tensors[relu6.inputs[0]], parsed.tensors[relu6.outputs[0]]
    assert (src.scale, src.zero_point) != (dst.scale, dst.zero_point)
    x = np.random.default_rng(1).normal(size=(8, 8, 8, 4)).astype(np.float32)
    result = compare_ops(data, parsed, x)
    assert not result["passed"]
    first = result["first_failure"]
    assert first["op"] == "RELU6" and first["index"] == relu6.index and first["layer"] == "clip6"
    assert first["max_lsb"] > 1
    assert all(r["passed"] for r in result["ops"] if r["op"] != "RELU6")


@pytest.mark.parametrize("k", [0, 1, 2])
def test_shift_negative_control_is_reported_exactly(kws, k):
    data, model = kws
    x = _random_int8(model, 8)
    # on these samples every op of this model is bit-exact, so a shift of k reads as exactly k
    result = compare_ops(data, model, x, micro=shifted_micro(k))
    assert [r["max_lsb"] for r in result["ops"]] == [k] * len(model.operators)
    for row in result["ops"]:
        assert row["passed"] == (k <= OP_TOLERANCE_LSB.get(row["op"], (0,))[0]), row
    first = result["first_failure"]
    if k == 0:
        assert result["passed"] and first is None
    else:
        assert not result["passed"]
        if k == 1:  # passes on FULLY_CONNECTED only: the first failure is the first other op
            assert all(r["passed"] == (r["op"] in ROUNDING_OPS) for r in result["ops"])
            expected = next(o for o in model.operators if o.op not in ROUNDING_OPS)
        else:  # over every tolerance: the first op in execution order fails
            expected = model.operators[0]
        assert first["index"] == expected.index and first["op"] == expected.op
        assert first["layer"] == expected.layer and first["max_lsb"] == k
        assert first["tensor"] == model.tensors[expected.outputs[0]].name


def test_one_op_models_reproduce_the_whole_models_tensors(mlperf_dir):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    data, model = load_tflite(mlperf_dir / "pretrainedResnet_quant.tflite")
    x = _random_int8(model, 2, seed=3)
    kind = OpResolverType.BUILTIN_REF
    full = Interpreter(model_content=data, experimental_op_resolver_type=kind,
                       experimental_preserve_all_tensors=True)
    full.allocate_tensors()
    model_t = read_model_t(data)
    for sample in x:
        full.set_tensor(full.get_input_details()[0]["index"], sample[None])
        full.invoke()
        for op in model.operators:
            one, remap = one_op_model(model_t, op.index)
            parsed_one = load_tflite(one)[1]  # it passes the verifier and the structural checks
            assert [o.op for o in parsed_one.operators] == [op.op]
            single = Interpreter(model_content=one, experimental_op_resolver_type=kind)
            single.allocate_tensors()
            for detail in single.get_input_details():
                original = next(j for j, new in remap.items() if new == detail["index"])
                single.set_tensor(detail["index"], full.get_tensor(original))
            single.invoke()
            for j in op.outputs:
                np.testing.assert_array_equal(single.get_tensor(remap[j]), full.get_tensor(j))


def test_several_inputs_one_op_model_of_an_add(mlperf_dir):
    """A two-input model (the residual ADD of the ResNet, alone) takes a list of arrays."""
    data, model = load_tflite(mlperf_dir / "pretrainedResnet_quant.tflite")
    add = next(o for o in model.operators if o.op == "ADD")
    one, remap = one_op_model(read_model_t(data), add.index)
    one_bytes, one_parsed = load_tflite(one)
    assert len(one_parsed.inputs) == 2
    rng = np.random.default_rng(0)
    x = [rng.integers(-128, 128, (4, *t.shape[1:])).astype(np.int8) for t in one_parsed.inputs]
    result = compare_ops(one_bytes, one_parsed, x, samples=4)
    assert result["passed"] and result["ops"][0]["max_lsb"] == 0
    assert result["end_to_end"]["max_lsb"] == 0


FAKE_CHILD = r'''
import json, os, signal, sys
from pathlib import Path
import numpy as np
work = Path(sys.argv[1])
job = json.loads((work / "ops_job.json").read_text())
def progress(line):
    with open(work / "progress.txt", "a") as f:
        f.write(line + "\n")
for entry in job["op_batch"]:
    i = entry["id"]
    progress(f"{i} load")
    progress(f"{i} invoke")
    if i == 1:
        os.kill(os.getpid(), signal.SIGSEGV)
    with np.load(work / f"opin_{i}.npz") as data:
        np.savez(work / f"opout_{i}.npz", **{"0": data["0"]})
    progress(f"{i} done")
'''


def test_a_crash_in_tflite_micro_names_the_op(kws, tmp_path, monkeypatch):
    data, model = kws
    child = tmp_path / "fake_child.py"
    child.write_text(FAKE_CHILD)
    monkeypatch.setattr(op_compare, "CHILD", child)
    with pytest.raises(RuntimeFailure, match="crashed") as err:
        compare_ops(data, model, _random_int8(model, 2))
    op = model.operators[1]
    assert f"op 1 {op.op}" in str(err.value) and op.layer in str(err.value)
    assert "SIGSEGV" in str(err.value)


def test_a_refused_model_is_a_runtime_failure_naming_it():
    job = op_compare.MicroJob("op 3 CONV_2D", b"\0" * 256, [np.zeros((1, 4), np.int8)], 1, 65536,
                              3, "conv1")
    with pytest.raises(RuntimeFailure, match="op 3 CONV_2D .layer 'conv1'."):
        op_compare.run_micro_jobs([job])
