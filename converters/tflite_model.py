"""Read a .tflite flatbuffer: operators with their tensor types, and the Keras layer each came from."""
import dataclasses

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgezoo.base.errors import ModelFileError

OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}


@dataclasses.dataclass(frozen=True)
class Operator:
    index: int
    op: str
    input_types: tuple
    output_types: tuple
    layer: str
    inputs: tuple = ()
    outputs: tuple = ()

    def as_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TensorDetails:
    name: str
    shape: tuple
    dtype: str
    scale: float
    zero_point: int
    shape_signature: tuple = ()  # -1 marks a dimension that is only known at run time

    @property
    def dynamic(self):
        """A dimension other than the batch is only known at run time (a dynamic batch is
        harmless: runtimes allocate the stored batch-1 shape)."""
        return any(int(d) < 0 for d in self.shape_signature[1:])


@dataclasses.dataclass(frozen=True)
class TFLiteModel:
    operators: tuple
    inputs: tuple
    outputs: tuple
    tensors: tuple
    num_subgraphs: int
    input_indices: tuple = ()  # tensor index of each input / output, in signature order
    output_indices: tuple = ()

    @property
    def op_names(self):
        return sorted({o.op for o in self.operators})

    def op_types(self):
        """{op name: sorted tensor types it reads or writes}."""
        table = {}
        for o in self.operators:
            table.setdefault(o.op, set()).update(o.input_types + o.output_types)
        return {k: sorted(v) for k, v in sorted(table.items())}

    def float_islands(self):
        """The ops of a quantized model that compute in float (a FLOAT32 input or output other
        than the boundary QUANTIZE / DEQUANTIZE): ``[{op, count, layers}]``, most frequent first.
        Empty for a float model (every op is float there: nothing is an island)."""
        quantized = any(t in ("INT8", "INT16") for o in self.operators
                        for t in o.input_types + o.output_types)
        found = {}
        for o in self.operators if quantized else ():
            if o.op in ("QUANTIZE", "DEQUANTIZE") or "FLOAT32" not in o.input_types + o.output_types:
                continue
            found.setdefault(o.op, []).append(o.layer)
        return [{"op": op, "count": len(layers), "layers": sorted(set(layers))[:5]}
                for op, layers in sorted(found.items(), key=lambda kv: (-len(kv[1]), kv[0]))]

    def readout_tensor(self):
        """Index of the tensor to compare across runtimes: the input of a final SOFTMAX, else None.

        Softmax squashes differences; runtimes are compared on the logits before it.
        """
        last = self.operators[-1] if self.operators else None
        if last is not None and last.op == "SOFTMAX" and last.inputs:
            return last.inputs[0]
        return None

    def readout_tensors(self):
        """The tensor compared across runtimes for each output: for a one-output model the
        input of a final SOFTMAX (``readout_tensor``) or the output; with several outputs,
        the outputs themselves (their measures read them as the model gives them)."""
        if len(self.output_indices) == 1 and self.readout_tensor() is not None:
            return (self.readout_tensor(),)
        return tuple(self.output_indices)


def layer_of(tensor_name):
    """The Keras layer a converted tensor came from, read off its TensorFlow name.

    Names look like ``vit_micro/block0_mlp_fc1/Tensordot/MatMul;...``: the layer
    is the path element after the model's own scope.
    """
    first = tensor_name.split(";")[0]
    parts = [p for p in first.split("/") if p]
    return parts[1] if len(parts) >= 2 else first


def _layer_of_op(tensors, indices):
    """The layer named by the first scoped tensor name among ``indices`` (outputs, then weights).

    A model's final op writes the signature output (``StatefulPartitionedCall:0``),
    and quantized weights may be unnamed (``tfl.pseudo_qconst``): then the op is
    named by its output tensor (``_name_by_consumers`` names it better when it can).
    """
    names = [tensors[j].name for j in indices]
    for name in names:
        if "/" in name.split(";")[0]:
            return layer_of(name)
    return names[0] if names else ""


def _name_by_consumers(operators, tensors):
    """An op whose tensors carry no layer scope (the DEQUANTIZE of float16 weights writes
    ``tfl.dequantize``) takes the layer of the op that reads its output."""
    unscoped = {o.index for o in operators
                if all("/" not in tensors[j].name.split(";")[0] for j in o.outputs + o.inputs[1:])}
    readers = {}
    for o in operators:
        for j in o.inputs:
            readers.setdefault(j, o)
    named = []
    for o in operators:
        reader = next((readers[j] for j in o.outputs if j in readers), None)
        if o.index in unscoped and reader is not None and reader.index not in unscoped:
            o = dataclasses.replace(o, layer=reader.layer)
        named.append(o)
    return named


def _opcode_name(opcode):
    code = max(opcode.builtinCode, opcode.deprecatedBuiltinCode)
    if code == schema.BuiltinOperator.CUSTOM:
        custom = opcode.customCode
        return f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}"
    return OP_NAMES.get(code, f"BUILTIN_{code}")


def _tensor_details(subgraph, index):
    t = subgraph.tensors[index]
    q = t.quantization
    scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else 0.0
    zero = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None and len(q.zeroPoint) else 0
    name = t.name.decode() if isinstance(t.name, bytes) else (t.name or "")
    shape = tuple(int(s) for s in (t.shape if t.shape is not None else ()))
    signature = tuple(int(s) for s in (t.shapeSignature if t.shapeSignature is not None else ()))
    return TensorDetails(name, shape, TYPE_NAMES.get(t.type, str(t.type)), scale, zero, signature)


def read_tflite(data):
    """Parse ``data`` (bytes of a .tflite file). Call only on bytes that passed the verifier."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFileError("not a TFLite model: the file identifier 'TFL3' is missing at byte 4")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(data), 0))
        subgraph = model.subgraphs[0]
        tensors = tuple(_tensor_details(subgraph, j) for j in range(len(subgraph.tensors or [])))
        operators = []
        for i, op in enumerate(subgraph.operators or []):
            ins = tuple(int(j) for j in (op.inputs if op.inputs is not None else []) if j >= 0)
            outs = tuple(int(j) for j in (op.outputs if op.outputs is not None else []) if j >= 0)
            operators.append(Operator(
                i, _opcode_name(model.operatorCodes[op.opcodeIndex]),
                tuple(tensors[j].dtype for j in ins), tuple(tensors[j].dtype for j in outs),
                _layer_of_op(tensors, outs + ins[1:]), ins, outs,
            ))
        operators = _name_by_consumers(operators, tensors)
        inputs = tuple(tensors[j] for j in subgraph.inputs)
        outputs = tuple(tensors[j] for j in subgraph.outputs)
    except ModelFileError:
        raise
    except Exception as exc:  # malformed tables surface as IndexError, struct.error, ...
        raise ModelFileError(f"malformed TFLite model: {type(exc).__name__}: {exc}") from None
    return TFLiteModel(tuple(operators), inputs, outputs, tensors, len(model.subgraphs),
                       tuple(int(j) for j in subgraph.inputs), tuple(int(j) for j in subgraph.outputs))


def quantize_input(x, details):
    """Float input -> the model's input dtype using its scale and zero point."""
    dtype = np.dtype(details.dtype.lower()) if details.dtype != "FLOAT32" else np.float32
    if details.dtype in ("INT8", "INT16", "UINT8") and details.scale:
        info = np.iinfo(dtype)
        q = np.round(np.asarray(x, np.float32) / details.scale) + details.zero_point
        return np.clip(q, info.min, info.max).astype(dtype)
    return np.asarray(x, dtype)


def dequantize_output(y, details):
    if details.dtype in ("INT8", "INT16", "UINT8") and details.scale:
        return (np.asarray(y, np.float32) - details.zero_point) * details.scale
    return np.asarray(y, np.float32)

