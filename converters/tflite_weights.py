"""The constant weight tensors of a .tflite model, by the Keras layer they came from.

What pruning and clustering promise (zeros, few distinct values per channel) is
measured here, on the bytes that ship, not on the Keras model.
"""
import dataclasses

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgezoo.converters.tflite_model import (
    TYPE_NAMES,
    _layer_of_op,
    _opcode_name,
    _tensor_details,
    read_tflite,
)

# Operator -> index of its weight input and the axis its output channels lie on.
WEIGHT_INPUTS = {
    "CONV_2D": (1, 0),
    "DEPTHWISE_CONV_2D": (1, 3),
    "FULLY_CONNECTED": (1, 0),
    "TRANSPOSE_CONV": (1, 0),
    "CONV_3D": (1, 4),
}
NUMPY_TYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32,
               "FLOAT32": np.float32, "FLOAT16": np.float16}


@dataclasses.dataclass(frozen=True)
class WeightTensor:
    layer: str
    op: str
    name: str
    values: np.ndarray  # stored values (int8 for quantized models), the tensor's shape
    channel_axis: int
    zero_point: np.ndarray  # per channel (or one value)

    @property
    def sparsity(self):
        """Share of stored values equal to the zero point (a pruned weight)."""
        zp = self.zero_point.reshape([-1 if a == self.channel_axis else 1
                                      for a in range(self.values.ndim)]) \
            if self.zero_point.size > 1 else self.zero_point.reshape(())
        return float(np.mean(self.values == zp))

    def unique_per_channel(self):
        """Number of distinct stored values in each output channel."""
        moved = np.moveaxis(self.values, self.channel_axis, 0).reshape(self.values.shape[self.channel_axis], -1)
        return np.array([len(np.unique(row)) for row in moved])


def constant_weights(data):
    """Every weight input of a conv / fully-connected operator that is stored in the file."""
    read_tflite(data)  # the file-identifier and structure checks, with their clear errors
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(data), 0))
    subgraph = model.subgraphs[0]
    details = [_tensor_details(subgraph, j) for j in range(len(subgraph.tensors or []))]
    found = []
    for op in subgraph.operators or []:
        name = _opcode_name(model.operatorCodes[op.opcodeIndex])
        if name not in WEIGHT_INPUTS:
            continue
        slot, axis = WEIGHT_INPUTS[name]
        index = int(op.inputs[slot])
        tensor = subgraph.tensors[index]
        buffer = model.buffers[tensor.buffer]
        raw = (bytes(buffer.data) if buffer.data is not None and len(buffer.data)
               else _offset_bytes(data, buffer))
        if not raw:
            continue  # computed at run time (e.g. by a DECODE operator)
        dtype = NUMPY_TYPES.get(TYPE_NAMES.get(tensor.type), None)
        if dtype is None:
            continue
        values = np.frombuffer(raw, dtype).reshape([int(s) for s in tensor.shape])
        q = tensor.quantization
        zp = np.asarray(q.zeroPoint if q is not None and q.zeroPoint is not None else [0])
        outs = tuple(int(j) for j in op.outputs)
        found.append(WeightTensor(_layer_of_op(details, (index,) + outs), name,
                                  details[index].name, values, axis, zp))
    return found


def _offset_bytes(data, buffer):
    """Buffers of models over 2 GB (or written by some tools) live after the flatbuffer."""
    offset, size = int(getattr(buffer, "offset", 0) or 0), int(getattr(buffer, "size", 0) or 0)
    return bytes(data[offset : offset + size]) if offset > 1 and size else b""


def weights_report(data):
    """What the report says of a .tflite's weights: sparsity per layer, distinct values per channel."""
    return {"sparsity_by_layer": sparsity_by_layer(data),
            "max_unique_per_channel": max_unique_per_channel(data)}


def sparsity_by_layer(data):
    """{layer: share of zero weights} over the conv / fully-connected weights of ``data``."""
    table = {}
    for w in constant_weights(data):
        zeros, total = table.get(w.layer, (0.0, 0))
        table[w.layer] = (zeros + w.sparsity * w.values.size, total + w.values.size)
    return {layer: zeros / total for layer, (zeros, total) in table.items()}


def max_unique_per_channel(data):
    """{layer: the largest number of distinct values in any output channel}."""
    table = {}
    for w in constant_weights(data):
        table[w.layer] = max(table.get(w.layer, 0), int(w.unique_per_channel().max()))
    return table
