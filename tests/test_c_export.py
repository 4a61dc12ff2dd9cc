import shutil
import subprocess

import pytest

from edgezoo.converters.c_export import arena_constant, render_header, render_source, resolver_method
from edgezoo.edge.loader import load_tflite


@pytest.mark.parametrize("op, method", [
    ("CONV_2D", "AddConv2D"), ("DEPTHWISE_CONV_2D", "AddDepthwiseConv2D"),
    ("FULLY_CONNECTED", "AddFullyConnected"), ("BATCH_MATMUL", "AddBatchMatMul"),
    ("AVERAGE_POOL_2D", "AddAveragePool2D"), ("SQUARED_DIFFERENCE", "AddSquaredDifference"),
    ("PADV2", "AddPadV2"), ("UNIDIRECTIONAL_SEQUENCE_LSTM", "AddUnidirectionalSequenceLSTM"),
    ("L2_NORMALIZATION", "AddL2Normalization"), ("RELU6", "AddRelu6"), ("ADD_N", "AddAddN"),
])
def test_resolver_method_names(op, method):
    assert resolver_method(op) == method


def test_arena_constant_has_margin_and_alignment():
    assert arena_constant(55984) == 61584  # 55984 * 1.1 = 61582.4 -> next multiple of 16
    assert arena_constant(55984) % 16 == 0


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs the system C++ compiler")
def test_c_array_compiles_and_writes_back_identical_bytes(tmp_path, mlperf_dir):
    data, model = load_tflite(mlperf_dir / "pretrainedResnet_quant.tflite")
    (tmp_path / "model_data.h").write_text(render_header(model, 55984))
    (tmp_path / "model_data.cc").write_text(render_source(data))
    (tmp_path / "main.cc").write_text(
        '#include <stdio.h>\n#include <stdint.h>\n#include "model_data.h"\n'
        "int main(int argc, char** argv) {\n"
        "  if ((uintptr_t)g_model_data % 16 != 0) return 3;\n"
        '  FILE* f = fopen(argv[1], "wb");\n'
        "  fwrite(g_model_data, 1, g_model_data_len, f);\n"
        '  printf("%d %s %d\\n", EDGEZOO_TENSOR_ARENA_SIZE, EDGEZOO_INPUT_TYPE, EDGEZOO_NUM_OPS);\n'
        "  return fclose(f);\n}\n")
    subprocess.run(["g++", "-std=c++11", "-Wall", "-Werror", "-o", tmp_path / "dump",
                    tmp_path / "main.cc", tmp_path / "model_data.cc"], check=True)
    proc = subprocess.run([tmp_path / "dump", tmp_path / "back.tflite"], capture_output=True,
                          text=True, check=True)
    assert (tmp_path / "back.tflite").read_bytes() == data
    assert proc.stdout.split() == ["61584", "INT8", "6"]


def test_header_registers_exactly_the_models_ops(mlperf_dir):
    _, model = load_tflite(mlperf_dir / "kws_ref_model.tflite")
    header = render_header(model, 24272)
    registered = [line.split("resolver.")[1].split("(")[0] for line in header.splitlines()
                  if "resolver.Add" in line]
    assert registered == ["AddAveragePool2D", "AddConv2D", "AddDepthwiseConv2D",
                          "AddFullyConnected", "AddReshape", "AddSoftmax"]
    assert "#define EDGEZOO_NUM_OPS 6" in header
    assert "#define EDGEZOO_INPUT_ZERO_POINT (83)" in header


def test_arena_constant_takes_the_larger_of_recorded_and_minimum():
    assert arena_constant(18128, minimum_bytes=25168) == 27696  # 25168 * 1.1 = 27684.8 -> 27696
    assert arena_constant(24272, minimum_bytes=24272) == arena_constant(24272)
    assert arena_constant(30000, minimum_bytes=20000) == arena_constant(30000)
    assert arena_constant(None, minimum_bytes=25168) == 27696


def test_header_arena_from_summary_or_minimum_is_never_below_the_minimum(mlperf_dir):
    _, model = load_tflite(mlperf_dir / "kws_ref_model.tflite")
    summary = {"recorded_bytes": 18128, "minimum_bytes": 25168, "arena_bytes": 25168,
               "header_constant": 27696, "margin": 0.10}
    header = render_header(model, summary)
    assert "#define EDGEZOO_TENSOR_ARENA_SIZE 27696" in header
    assert "minimum 25168 B" in header and "25152 B fails" in header
    assert "recorded allocation total 18128 B" in header
    assert "27696 B = 25168 B + 2528 B" in header  # the margin, stated
    assert "64-bit host" in header and "32-bit" in header
    assert render_header(model, 18128, minimum_bytes=25168) == header


def test_header_with_recorded_bytes_only_keeps_its_constant(mlperf_dir):
    _, model = load_tflite(mlperf_dir / "kws_ref_model.tflite")
    header = render_header(model, 24272)
    assert "#define EDGEZOO_TENSOR_ARENA_SIZE 26704" in header  # 24272 * 1.1 -> 26704
    assert "the minimum was not" in header and "recorded allocation total 24272 B" in header
    assert "EDGEZOO_TENSOR_ARENA_SIZE" not in render_header(model, None)
    assert "arena not measured" in render_header(model, None)
