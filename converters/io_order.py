"""Inputs and outputs of a converted model in the Keras model's order.

The converter orders a signature's inputs by name and its outputs as it likes (a model
with inputs ``input_ids``, ``attention_mask`` comes out as ``attention_mask``,
``input_ids``), while every runtime feeds input j and reads output j by position. The
signature def still maps each name (``output_k`` for the k-th output) to its tensor, so
the subgraph's input and output vectors are permuted into the Keras order in place: the
file keeps its size and every other byte.
"""
import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgezoo.base.errors import ModelFileError


def _name(value):
    return value.decode() if isinstance(value, bytes) else value


def signature_maps(data):
    """({input name: tensor index}, {output name: tensor index}) of the first signature."""
    model = schema.Model.GetRootAs(data, 0)
    if not model.SignatureDefsLength():
        return None, None
    sig = model.SignatureDefs(0)
    ins = {_name(sig.Inputs(i).Name()): sig.Inputs(i).TensorIndex() for i in range(sig.InputsLength())}
    outs = {_name(sig.Outputs(i).Name()): sig.Outputs(i).TensorIndex()
            for i in range(sig.OutputsLength())}
    return ins, outs


def keras_io_order(tflite, input_names, num_outputs):
    """``tflite`` with subgraph 0's inputs in ``input_names`` order and its outputs in
    ``output_0 .. output_{n-1}`` order (bytes returned unchanged when already so)."""
    data = bytearray(tflite)
    ins, outs = signature_maps(data)
    if ins is None or (len(input_names) == 1 and num_outputs == 1):
        return bytes(tflite)
    out_names = [f"output_{k}" for k in range(num_outputs)]
    missing = [n for n in input_names if n not in ins] + [n for n in out_names if n not in outs]
    if missing:
        raise ModelFileError(f"the converted model's signature lacks {missing} (it has inputs "
                             f"{sorted(ins)} and outputs {sorted(outs)}): cannot put its inputs "
                             "and outputs in the Keras model's order")
    subgraph = schema.Model.GetRootAs(data, 0).Subgraphs(0)
    for current, wanted in ((subgraph.InputsAsNumpy(), [ins[n] for n in input_names]),
                            (subgraph.OutputsAsNumpy(), [outs[n] for n in out_names])):
        if sorted(current.tolist()) != sorted(wanted):
            raise ModelFileError("the converted model's signature names other tensors than its "
                                 "subgraph's inputs and outputs")
        current[:] = np.asarray(wanted, current.dtype)  # a view on ``data``: written in place
    return bytes(data)
