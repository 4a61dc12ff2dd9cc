"""Where the time goes on a LiteRT (CPU) target: XNNPACK's partitions and an op-level benchmark.

``xnnpack_partitions`` counts the delegate nodes XNNPACK leaves in the graph: every op it
does not delegate splits the graph, and each split costs a hand-over between XNNPACK and the
builtin kernels. ``op_breakdown`` cuts each operator out as a one-op model (as the per-op gate
does) and times it alone in LiteRT's default kernels, median of repeated batch-1 invokes on
seeded inputs: host figures, for telling the expensive ops apart, not a board measurement.
"""
import collections
import warnings


def seeded_interpreter(model_bytes, seed=0):
    """LiteRT's default kernels on ``model_bytes``, every input set to the verification path's
    seeded random inputs (``verification.random_inputs``), ready to invoke."""
    from ai_edge_litert.interpreter import Interpreter

    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.verification import random_inputs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(model_content=bytes(model_bytes), num_threads=1)
    interpreter.allocate_tensors()
    values = random_inputs(list(read_tflite(bytes(model_bytes)).inputs), 1, seed)
    for d, value in zip(interpreter.get_input_details(), values):
        interpreter.set_tensor(d["index"], value)
    return interpreter


def xnnpack_partitions(model_bytes):
    """How many XNNPACK delegate partitions LiteRT's default kernels make of the model."""
    interpreter = seeded_interpreter(model_bytes)
    interpreter.invoke()  # delegation is complete once the graph has run
    return sum(1 for op in interpreter._get_ops_details() if op["op_name"] == "DELEGATE")


def median_invoke_ms(interpreter, runs):
    from edgezoo.edge.latency import median_ms

    return median_ms(interpreter.invoke, runs=runs, warmup=3)


def op_breakdown(model_bytes, parsed, runs=30, top=8):
    """The model's ops timed one by one in LiteRT's default kernels: ``{"ops": [{index, op,
    layer, ms}], "by_op": {op: ms}, "total_ms", "top": the ``top`` slowest op types, "note"}``."""
    from edgezoo.edge.op_compare import constant_tensors, extract_ops, pack_model, read_model_t

    model_t = read_model_t(model_bytes)
    sg = model_t.subgraphs[0]
    const = constant_tensors(model_t)
    rows = []
    for i, op in enumerate(sg.operators or []):
        ins = [int(j) for j in (op.inputs if op.inputs is not None else []) if j >= 0]
        if not [j for j in ins if j not in const]:
            continue  # constant inputs only: folded, nothing to time
        one, _ = extract_ops(model_t, [i])
        try:
            ms = median_invoke_ms(seeded_interpreter(pack_model(one), seed=i), runs)
        except (RuntimeError, ValueError):  # an op that cannot run alone (state, subgraphs)
            continue
        rows.append({"index": i, "op": parsed.operators[i].op, "layer": parsed.operators[i].layer,
                     "ms": ms})
    by_op = collections.defaultdict(float)
    for row in rows:
        by_op[row["op"]] += row["ms"]
    ranked = dict(sorted(by_op.items(), key=lambda kv: -kv[1]))
    return {"ops": rows, "by_op": ranked, "total_ms": float(sum(by_op.values())),
            "top": dict(list(ranked.items())[:top]),
            "note": "each op alone in LiteRT's default kernels (XNNPACK where it delegates), "
                    "median of batch-1 invokes on this host; a one-op model pays no partition "
                    "hand-over, so the sum can differ from the whole model's time"}
