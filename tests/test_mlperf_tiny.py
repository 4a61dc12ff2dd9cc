"""``edgezoo test`` on real MLPerf Tiny files: the official int8 models pass every board gate, and a
copy of KWS with one convolution's weights negated fails at the agreement gate."""
import numpy as np
import pytest

from edgezoo.device_test import test_tflite as edgezoo_test


@pytest.mark.parametrize("name", ["kws_ref_model.tflite", "pretrainedResnet_quant.tflite"])
def test_official_int8_files_pass(mlperf_dir, name):
    report = edgezoo_test(mlperf_dir / name, "stm32l4r5")
    assert report["passed"], report["failures"]
    assert set(report["checks"]) == {"micro_vs_reference_per_op", "fits"}
    assert report["arena"]["header_constant"] >= report["arena"]["minimum_bytes"]


def _negate_first_conv(data):
    """The model with its first CONV_2D's int8 weights negated (a real fault, same file layout)."""
    from ai_edge_litert import schema_py_generated as schema

    from edgezoo.edge.op_compare import pack_model, read_model_t

    model = read_model_t(data)
    sg = model.subgraphs[0]
    for op in sg.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.CONV_2D:
            buffer = model.buffers[sg.tensors[op.inputs[1]].buffer]
            weights = np.asarray(buffer.data, np.uint8).view(np.int8).astype(np.int16)
            buffer.data = np.clip(-weights, -127, 127).astype(np.int8).view(np.uint8)
            return pack_model(model)
    raise AssertionError("no CONV_2D")


def _mfcc_like(n, seed=0):
    """Seeded inputs over the int8 input range of KWS (49x10 MFCC frames): noise, random walks
    along time, constant rows and columns. No speech data ships offline."""
    rng = np.random.default_rng(seed)
    lo, hi = (-128 - 83) * 0.5847029, (127 - 83) * 0.5847029
    parts = []
    for k in range(n):
        base = rng.uniform(lo, hi)
        kind = k % 4
        if kind == 0:
            x = rng.normal(base, rng.uniform(1, 40), (49, 10, 1))
        elif kind == 1:
            x = np.cumsum(rng.normal(0, rng.uniform(1, 10), (49, 10, 1)), axis=0) + base
        elif kind == 2:
            x = np.repeat(rng.uniform(lo, hi, (1, 10, 1)), 49, 0) + rng.normal(0, 5, (49, 10, 1))
        else:
            x = np.repeat(rng.uniform(lo, hi, (49, 1, 1)), 10, 1) + rng.normal(0, 5, (49, 10, 1))
        parts.append(np.clip(x, lo, hi))
    return np.stack(parts).astype(np.float32)


def test_kws_with_a_negated_convolution_fails_at_the_agreement_gate(mlperf_dir, tmp_path):
    """Judged against kws_ref_model_float32.tflite on the same inputs, the faulty copy fails the
    agreement gate by far; the official file agrees much better (0.64 measured on these synthetic
    inputs: without speech data it cannot show its real 0.98+, so its own gate fails too)."""
    bad = tmp_path / "kws_negated.tflite"
    bad.write_bytes(_negate_first_conv((mlperf_dir / "kws_ref_model.tflite").read_bytes()))
    data = tmp_path / "mfcc_like.npy"
    np.save(data, _mfcc_like(256))
    reference = mlperf_dir / "kws_ref_model_float32.tflite"
    faulty = edgezoo_test(bad, "stm32l4r5", float_model=reference, data=data)
    official = edgezoo_test(mlperf_dir / "kws_ref_model.tflite", "stm32l4r5", float_model=reference,
                            data=data)
    check = faulty["checks"]["agreement_top1"]
    assert not check["passed"] and not faulty["passed"]
    assert any(f.startswith("the converted model agrees with the float model on top-1") for f in
               faulty["failures"])
    assert faulty["checks"]["micro_vs_reference_per_op"]["passed"]  # both runtimes run the fault
    assert official["agreement"]["value"] - check["value"] >= 0.2, (official["agreement"], check)
