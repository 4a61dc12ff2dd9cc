"""Per-layer Dense forms: one .tflite whose FULLY_CONNECTED layers are each per-channel or
per-tensor.

The converter's dense-layer switch is one choice for the whole model, so the model is converted
both ways (same graph, same calibration, so every activation tensor has the same scale in
both) and each chosen layer's weight and bias tensors, values and quantization, are taken
from the per-tensor conversion. A layer's per-channel arrays cost TFLite Micro arena (its
output multipliers and shifts, 8 B a channel); per-tensor weights are coarser.
"""
import copy

import numpy as np

from edgezoo.base.errors import ModelFileError


def fully_connected_layers(data):
    """{layer: operator index} of the FULLY_CONNECTED operators with stored weights."""
    from edgezoo.converters.tflite_weights import constant_weights

    return {w.layer: w for w in constant_weights(data) if w.op == "FULLY_CONNECTED"}


def _same_graph(a, b):
    sa, sb = a.subgraphs[0], b.subgraphs[0]
    ops = lambda m, s: [(m.operatorCodes[o.opcodeIndex].builtinCode, tuple(o.inputs),
                         tuple(o.outputs)) for o in s.operators]
    shapes = lambda s: [tuple(t.shape) for t in s.tensors]
    return ops(a, sa) == ops(b, sb) and shapes(sa) == shapes(sb)


def splice_dense(per_channel, per_tensor, layers):
    """``per_channel`` with the weights and biases of the FULLY_CONNECTED ``layers`` taken from
    ``per_tensor`` (two conversions of one model that differ only in the dense switch)."""
    from edgezoo.converters.flatbuffer_io import AlignedBufferT, pack_model, read_model_t
    from edgezoo.converters.tflite_model import OP_NAMES

    a, b = read_model_t(per_channel), read_model_t(per_tensor)
    if not _same_graph(a, b):
        raise ModelFileError("the per-channel and per-tensor conversions have different graphs; "
                             "convert one model both ways with the same calibration")
    known = fully_connected_layers(per_channel)
    unknown = sorted(set(layers) - set(known))
    if unknown:
        raise ModelFileError(f"no FULLY_CONNECTED layer named {unknown}; the model has "
                             f"{sorted(known)}")
    wanted = {known[name].name for name in layers}
    sa, sb = a.subgraphs[0], b.subgraphs[0]
    for op_a, op_b in zip(sa.operators, sb.operators):
        if OP_NAMES.get(a.operatorCodes[op_a.opcodeIndex].builtinCode) != "FULLY_CONNECTED":
            continue
        name = sa.tensors[op_a.inputs[1]].name
        if (name.decode() if isinstance(name, bytes) else name) not in wanted:
            continue
        for slot in (1, 2):  # weights, bias
            if slot >= len(op_a.inputs) or op_a.inputs[slot] < 0:
                continue
            target, source = sa.tensors[op_a.inputs[slot]], sb.tensors[op_b.inputs[slot]]
            buffer = AlignedBufferT()
            buffer.data = np.asarray(b.buffers[source.buffer].data, np.uint8).copy()
            a.buffers.append(buffer)  # a new buffer: the old one may be shared (deduplicated)
            target.buffer = len(a.buffers) - 1
            target.type = source.type
            target.quantization = copy.deepcopy(source.quantization)
    _drop_unused_buffers(a)
    aligned = []
    for old in a.buffers:  # every buffer 16-byte aligned, as the converter writes them
        buffer = AlignedBufferT()
        buffer.data = old.data
        aligned.append(buffer)
    a.buffers = aligned
    return pack_model(a)


def _drop_unused_buffers(model_t):
    """Remove the buffers no tensor or metadata entry refers to (buffer 0 stays, empty)."""
    used = {0} | {t.buffer for sg in model_t.subgraphs for t in sg.tensors}
    used |= {m.buffer for m in model_t.metadata or []}
    remap = {old: new for new, old in enumerate(sorted(used))}
    model_t.buffers = [model_t.buffers[old] for old in sorted(used)]
    for sg in model_t.subgraphs:
        for t in sg.tensors:
            t.buffer = remap[t.buffer]
    for m in model_t.metadata or []:
        m.buffer = remap[m.buffer]
