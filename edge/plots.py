"""report.png: per-layer weight size and per-op error of a converted model, beside report.md."""
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgezoo.converters.tflite_model import layer_of


def constant_bytes_per_op(tflite):
    """[(op index, op name, layer, bytes of its constant inputs)] of subgraph 0."""
    from edgezoo.converters.tflite_model import OP_NAMES

    model = schema.Model.GetRootAs(bytearray(tflite), 0)
    sg = model.Subgraphs(0)
    rows = []
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = OP_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        size, layer = 0, ""
        for j in range(op.InputsLength()):
            t = op.Inputs(j)
            if t < 0:
                continue
            tensor = sg.Tensors(t)
            buf = model.Buffers(tensor.Buffer())
            n = buf.DataLength() if buf is not None else 0
            if n == 0 and buf is not None and buf.Size():
                n = int(buf.Size())  # data outside the flatbuffer (models over 2 GiB)
            size += n
            if n and not layer:
                layer = layer_of((tensor.Name() or b"").decode(errors="replace"))
        rows.append((i, name, layer, size))
    return rows


def per_layer(tflite, per_op):
    """[(layer, weight bytes, largest LSB difference or None, over tolerance)] in graph order:
    the ops of one Keras layer (read off their tensors' names) summed into one row."""
    from edgezoo.converters.tflite_model import read_tflite

    ops = read_tflite(tflite).operators
    tolerances = per_op.get("tolerances", {})
    lsb = {r["index"]: r for r in per_op.get("ops", []) if r.get("max_lsb") is not None}
    rows = {}
    for (i, name, _, size), op in zip(constant_bytes_per_op(tflite), ops):
        row = rows.setdefault(op.layer or name, [0, None, False])
        row[0] += size
        if i in lsb:
            row[1] = max(row[1] or 0, lsb[i]["max_lsb"])
            row[2] |= lsb[i]["max_lsb"] > tolerances.get(name, 0)
    return [(layer, *row) for layer, row in rows.items()]


def write_report_plot(path, report, tflite):
    """Two panels over the model's layers: the bytes of weights each holds, and the largest
    difference between TFLite Micro and LiteRT's reference kernels in its ops (LSB; red: over
    the per-op gate's tolerance)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_op = report.get("per_op") or {}
    rows = per_layer(tflite, per_op)
    index = np.arange(len(rows))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(min(16.0, max(6.0, 0.12 * len(rows) + 2)), 6),
                                      sharex=True)
    top.bar(index, [r[1] / 1024 for r in rows], color="tab:blue")
    top.set_ylabel("weights (KiB)")
    verdict = "PASS" if report.get("passed") else "FAIL"
    agreement = report.get("agreement")
    extra = f", {agreement['measure']} agreement {agreement['value']:.3f}" if agreement else ""
    top.set_title(f"{report.get('model', '?')} on {report.get('target') or 'LiteRT'}: "
                  f"{report.get('tflite_bytes', len(tflite)):,} B{extra} — {verdict}", fontsize=10)
    if any(r[2] is not None for r in rows):
        lsb = [np.nan if r[2] is None else r[2] for r in rows]
        bottom.bar(index, lsb, color=["tab:red" if r[3] else "tab:green" for r in rows])
        bottom.scatter(index, lsb, marker="_", color="black", s=30)  # zeros stay visible
        bottom.set_ylabel("TFLite Micro vs\nreference (LSB)")
        bottom.set_ylim(0, max(2.0, float(np.nanmax(lsb)) + 1))
    else:
        bottom.text(0.5, 0.5, "the per-op comparison runs for TFLite Micro targets",
                    ha="center", va="center", transform=bottom.transAxes)
        bottom.set_yticks([])
    bottom.set_xticks(index, [r[0][:28] for r in rows], rotation=90,
                      fontsize=7 if len(rows) < 60 else 5)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
