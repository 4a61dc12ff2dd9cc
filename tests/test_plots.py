"""report.png's numbers: weight bytes per layer, counted independently from tensor shapes."""
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgezoo.edge.plots import constant_bytes_per_op, per_layer, write_report_plot

ITEMSIZE = {schema.TensorType.INT8: 1, schema.TensorType.INT32: 4, schema.TensorType.FLOAT32: 4,
            schema.TensorType.INT16: 2, schema.TensorType.INT64: 8}


def test_weight_bytes_per_op_match_the_constant_tensors_shapes(mlperf_dir):
    data = (mlperf_dir / "kws_ref_model.tflite").read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(data), 0))
    sg = model.subgraphs[0]
    expected = []
    for op in sg.operators:
        total = 0
        for t in op.inputs:
            tensor = sg.tensors[t] if t >= 0 else None
            if tensor is not None and model.buffers[tensor.buffer].data is not None:
                total += int(np.prod(tensor.shape)) * ITEMSIZE[tensor.type]
        expected.append(total)
    assert [row[3] for row in constant_bytes_per_op(data)] == expected
    rows = per_layer(data, {})
    assert sum(r[1] for r in rows) == sum(expected) and all(r[2] is None for r in rows)


def test_the_plot_marks_ops_over_their_tolerance(mlperf_dir, tmp_path):
    data = (mlperf_dir / "kws_ref_model.tflite").read_bytes()
    per_op = {"tolerances": {"FULLY_CONNECTED": 1},
              "ops": [{"index": 0, "max_lsb": 3}, {"index": 1, "max_lsb": 0}]}
    rows = per_layer(data, per_op)
    assert rows[0][2:] == (3, True) and rows[1][2:] == (0, False)  # CONV_2D allows 0 LSB
    write_report_plot(tmp_path / "r.png", {"model": "kws", "per_op": per_op, "passed": False}, data)
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
