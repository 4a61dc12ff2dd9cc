"""Work per operator of a .tflite, from tensor shapes: MACs for matrix ops, elements for the rest.

The latency model (``latency_model.py``) turns this work into cycles; it is
counted here once so both that model and reports read the same numbers.
"""
import dataclasses
import math

from ai_edge_litert import schema_py_generated as schema

from edgezoo.base.errors import ModelFileError

MAC_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL", "TRANSPOSE_CONV")
POOL_OPS = ("AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D")
# Reductions read every input element once.
REDUCE_OPS = ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "ARG_MAX", "ARG_MIN")


@dataclasses.dataclass(frozen=True)
class OpWork:
    """``macs`` for MAC ops (0 otherwise); ``elements``: outputs of a MAC op, else elements processed."""

    index: int
    op: str
    layer: str
    macs: int
    elements: int
    dtype: str

    def as_dict(self):
        return dataclasses.asdict(self)


def _count(shape):
    return int(math.prod(max(0, int(d)) for d in shape))


def pool_windows(model_bytes):
    """{operator index: (filter height, filter width)} of the pooling ops in subgraph 0."""
    root = schema.Model.GetRootAs(bytearray(model_bytes), 0)
    if not root.SubgraphsLength():
        return {}
    sub = root.Subgraphs(0)
    windows = {}
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        if op.BuiltinOptionsType() == schema.BuiltinOptions.Pool2DOptions:
            table = op.BuiltinOptions()
            opts = schema.Pool2DOptions()
            opts.Init(table.Bytes, table.Pos)
            windows[i] = (int(opts.FilterHeight()), int(opts.FilterWidth()))
    return windows


def _shape(model, op, position, what, rank=None):
    tensors = op.inputs
    if position >= len(tensors):
        raise ModelFileError(f"{op.op} operator {op.index} has no {what} (input {position})")
    shape = model.tensors[tensors[position]].shape
    if rank is not None and len(shape) != rank:
        raise ModelFileError(f"{op.op} operator {op.index}: {what} has shape {shape}, expected rank {rank}")
    return shape


def _macs(model, op, out_shape):
    """MACs of one MAC op: output elements times the accumulation depth of each."""
    outputs = _count(out_shape)
    if op.op == "CONV_2D":  # filter (out_c, k_h, k_w, in_c / groups)
        _, k_h, k_w, k_c = _shape(model, op, 1, "filter", 4)
        return outputs * k_h * k_w * k_c
    if op.op == "DEPTHWISE_CONV_2D":  # filter (1, k_h, k_w, out_c): one input channel per output
        _, k_h, k_w, _ = _shape(model, op, 1, "filter", 4)
        return outputs * k_h * k_w
    if op.op == "FULLY_CONNECTED":  # weights (units, depth)
        weights = _shape(model, op, 1, "weights")
        return outputs * (int(weights[-1]) if weights else 0)
    if op.op == "BATCH_MATMUL":  # (..., M, K) x (..., K, N); K sits where M does not (adj_x)
        a = _shape(model, op, 0, "left operand")
        if len(a) < 2 or len(out_shape) < 2:
            raise ModelFileError(f"BATCH_MATMUL operator {op.index}: operands need rank >= 2, got {a}")
        depth = a[-1] if a[-2] == out_shape[-2] else a[-2]
        return outputs * int(depth)
    # TRANSPOSE_CONV: inputs (output_shape, filter (out_c, k_h, k_w, in_c), input); every
    # input element is scattered through the k_h x k_w x out_c filter.
    out_c, k_h, k_w, _ = _shape(model, op, 1, "filter", 4)
    return _count(_shape(model, op, 2, "input")) * out_c * k_h * k_w


def op_work(model, op, windows=None):
    """OpWork of operator ``op`` of the parsed ``model`` (``windows``: from ``pool_windows``)."""
    out_shape = model.tensors[op.outputs[0]].shape if op.outputs else ()
    in_shape = model.tensors[op.inputs[0]].shape if op.inputs else ()
    dtype = op.input_types[0] if op.input_types else ""
    if op.op in MAC_OPS:
        return OpWork(op.index, op.op, op.layer, _macs(model, op, out_shape), _count(out_shape), dtype)
    if op.op in POOL_OPS:
        window = (windows or {}).get(op.index)
        if window is None and len(in_shape) == 4 and len(out_shape) == 4:
            # Without the options, assume non-overlapping windows (exact for global pooling).
            window = (max(1, in_shape[1] // max(1, out_shape[1])), max(1, in_shape[2] // max(1, out_shape[2])))
        elements = _count(out_shape) * math.prod(window or (1,))
    elif op.op in REDUCE_OPS:
        elements = _count(in_shape)
    else:
        elements = _count(out_shape)
    return OpWork(op.index, op.op, op.layer, 0, elements, dtype)


def model_work(model, model_bytes=None):
    """OpWork of every operator of ``model`` (pool windows are read from ``model_bytes`` if given)."""
    windows = pool_windows(model_bytes) if model_bytes is not None else None
    return [op_work(model, op, windows) for op in model.operators]


def total_macs(model):
    return sum(w.macs for w in model_work(model))
