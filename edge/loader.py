"""Load untrusted .tflite bytes safely: identifier, LiteRT's flatbuffer verifier, edgezoo's
structural checks, then parsing.

The verifier proves the flatbuffer well formed; the structural checks prove what
it says consistent (indices in range, constant data the size of its tensor, data
flowing forward). TFLite Micro trusts both and reads out of bounds otherwise.
"""
import atexit
import json
import math
import select
import signal
import struct
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgezoo.converters.tflite_model import OP_NAMES, TYPE_NAMES, read_tflite
from edgezoo.edge.safe_load import check_tflite_ops
from edgezoo.edge.runners.worker import WorkerProcess
from edgezoo.base.errors import ModelFileError

# Bits per element of fixed-size tensor types; STRING, RESOURCE and VARIANT have no fixed size.
_BITS = {"FLOAT32": 32, "FLOAT16": 16, "INT32": 32, "UINT8": 8, "INT64": 64, "BOOL": 8, "INT16": 16,
         "COMPLEX64": 64, "INT8": 8, "FLOAT64": 64, "COMPLEX128": 128, "UINT64": 64, "UINT32": 32,
         "UINT16": 16, "INT4": 4, "BFLOAT16": 16, "INT2": 2, "UINT4": 4, "FLOAT8_E4M3FN": 8,
         "FLOAT8_E5M2": 8}
_ZERO_POINT_RANGE = {"INT8": (-128, 127), "UINT8": (0, 255), "INT16": (-32768, 32767)}
# Ranks the common kernels assume without checking all of them: (input, weights, output); None: any.
_RANKS = {"CONV_2D": (4, 4, 4), "DEPTHWISE_CONV_2D": (4, 4, 4), "FULLY_CONNECTED": (None, 2, None),
          "AVERAGE_POOL_2D": (4, None, 4), "MAX_POOL_2D": (4, None, 4)}
_BINARY = ("ADD", "SUB", "MUL", "SQUARED_DIFFERENCE")
MAX_RANK = 16
MAX_TENSOR_BYTES = 2**31 - 1  # sizes are int32 in TFLite Micro
MAX_TOTAL_BYTES = 2**32
_NOT_A_FLATBUFFER = "not a valid Flatbuffer"


def read_model_bytes(source):
    """Bytes of a .tflite given as a path or bytes, with a clear error for a missing file."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    return path.read_bytes()


# LiteRT's verifier and interpreter builder run in a worker process: a model that slips past the
# verifier can crash the builder (a fuzzer found one), and that must not take the caller down.
_WORKER = r"""
import json, os, struct, sys
from ai_edge_litert.interpreter import Interpreter
replies = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
while True:
    head = sys.stdin.buffer.read(8)
    if len(head) < 8:
        break
    data = sys.stdin.buffer.read(struct.unpack("<Q", head)[0])
    try:
        Interpreter(model_content=data)
        reply = {"ok": True}
    except Exception as exc:
        reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    replies.write(json.dumps(reply) + "\n")
"""
VERIFY_TIMEOUT_S = 120


class _Verifier(WorkerProcess):
    """One long-lived worker that builds a LiteRT interpreter from each model it is sent."""

    def __init__(self):
        super().__init__(_WORKER)

    def check(self, data, timeout=VERIFY_TIMEOUT_S):
        """LiteRT's error message for ``data``, or None when it builds; ModelFileError if it crashes."""
        with self.lock:
            self.ensure()
            proc = self.proc
            try:
                proc.stdin.write(struct.pack("<Q", len(data)) + data)
                ready = select.select([proc.stdout], [], [], timeout)[0]
                line = proc.stdout.readline() if ready else None
            except (BrokenPipeError, OSError):
                line = b""
            if line is None:
                self.kill()
                return _Verdict(hung=True)
            if not line:
                code = proc.wait()
                self.proc = None
                return _Verdict(signal=signal.Signals(-code).name if code < 0 else f"exit code {code}")
            reply = json.loads(line)
            return _Verdict(error=None if reply["ok"] else reply["error"])


class _Verdict:
    def __init__(self, error=None, hung=False, signal=None):
        self.error, self.hung, self.signal = error, hung, signal


_verifier = _Verifier()
atexit.register(_verifier.close)


def verify_flatbuffer(data, source="model"):
    """Run LiteRT's flatbuffer verifier over ``data``; raise ModelFileError if it fails.

    Building a LiteRT interpreter from a buffer verifies it before anything
    reads it; tensors are not allocated. It runs in a worker process, so a
    crash or hang there is an error here. When the flatbuffer is well formed
    but LiteRT cannot build it, edgezoo's own checks name the inconsistency.
    """
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFileError(
            f"{source} is not a TFLite model: the 'TFL3' identifier is missing "
            f"({len(data)} bytes read). Pass a .tflite flatbuffer."
        )
    verdict = _verifier.check(data)
    if verdict.hung:
        raise ModelFileError(f"{source}: LiteRT did not finish reading it within {VERIFY_TIMEOUT_S} s")
    if verdict.signal is not None:
        raise ModelFileError(f"{source} crashed LiteRT's model reader ({verdict.signal}): it is malformed "
                             "in a way LiteRT's flatbuffer verifier does not catch")
    if verdict.error is None:
        return
    reason = " ".join(line.strip() for line in verdict.error.split(":", 1)[-1].splitlines() if line.strip())
    if _NOT_A_FLATBUFFER in reason:
        raise ModelFileError(f"{source} failed LiteRT's flatbuffer verification (truncated or corrupted?): {reason}")
    check_structure(data, source)  # verified, so safe to walk: names the problem if it can
    raise ModelFileError(f"{source} is a well-formed flatbuffer that LiteRT cannot build: {reason}")


def _name(tensor):
    return (tensor.Name() or b"").decode(errors="replace")


def _check_name(tensor, label):
    try:
        (tensor.Name() or b"").decode()
    except UnicodeDecodeError:
        raise ModelFileError(f"{label} has a name that is not valid UTF-8") from None


def _array(obj, field):
    return getattr(obj, f"{field}AsNumpy")() if getattr(obj, f"{field}Length")() else np.zeros(0, np.int32)


def _check_quantization(q, shape, dtype, label):
    if q is None:
        return
    scales, zeros = _array(q, "Scale"), _array(q, "ZeroPoint")
    if len(scales) and not np.all(np.isfinite(scales) & (scales >= 0)):
        raise ModelFileError(f"{label} has a negative or non-finite quantization scale")
    if len(scales) and len(zeros):
        if len(scales) != len(zeros):
            raise ModelFileError(f"{label} has {len(scales)} quantization scales but {len(zeros)} zero points")
        if len(scales) > 1:
            dim = q.QuantizedDimension()
            if not 0 <= dim < len(shape) or shape[dim] != len(scales):
                raise ModelFileError(f"{label} of shape {tuple(shape)} has {len(scales)} per-channel scales "
                                     f"along dimension {dim}, which does not match its shape")
    low, high = _ZERO_POINT_RANGE.get(dtype, (None, None))
    if low is not None and len(zeros) and (zeros.min() < low or zeros.max() > high):
        raise ModelFileError(f"{label} has a zero point outside the {dtype} range [{low}, {high}]")


def _check_tensor(tensor, i, buffers, where):
    """Bytes the tensor needs at run time (0 for constants); raises on an inconsistency."""
    label = f"{where} tensor {i} {_name(tensor)!r}"
    _check_name(tensor, label)
    dtype = TYPE_NAMES.get(tensor.Type())
    if dtype is None:
        raise ModelFileError(f"{label} has an unknown type code {tensor.Type()}")
    shape = [int(d) for d in _array(tensor, "Shape")]
    if len(shape) > MAX_RANK:
        raise ModelFileError(f"{label} has rank {len(shape)} (at most {MAX_RANK})")
    if any(d < 0 for d in shape):
        raise ModelFileError(f"{label} has a negative dimension in its shape {tuple(shape)}")
    count = math.prod(shape)
    nbytes = -(-count * _BITS.get(dtype, 8) // 8)
    if nbytes > MAX_TENSOR_BYTES:
        raise ModelFileError(f"{label} of shape {tuple(shape)} and type {dtype} would take "
                             f"{nbytes:,} bytes (at most {MAX_TENSOR_BYTES:,})")
    b = tensor.Buffer()
    if not 0 <= b < len(buffers):
        raise ModelFileError(f"{label} refers to buffer {b}, but the model has {len(buffers)} buffers")
    _check_quantization(tensor.Quantization(), shape, dtype, label)
    held = buffers[b]
    if held and dtype in _BITS and tensor.Sparsity() is None:
        allowed = {nbytes} | ({count} if _BITS[dtype] < 8 else set())  # sub-byte types packed or not
        if held not in allowed:
            raise ModelFileError(f"{label} of shape {tuple(shape)} and type {dtype} needs {nbytes:,} bytes "
                                 f"of constant data, but its buffer {b} holds {held:,}")
    return 0 if held else nbytes


def _check_shapes(name, sg, ins, outs, label):
    """Ranks of the main kernels' operands; RESHAPE keeps the element count."""
    def shape(j):
        return [int(d) for d in _array(sg.Tensors(int(j)), "Shape")]

    for part, rank, values in zip(("input", "weights", "output"), _RANKS.get(name, ()),
                                  (ins[:1], ins[1:2], outs[:1])):
        if rank is not None and len(values) and values[0] >= 0 and len(shape(values[0])) != rank:
            raise ModelFileError(f"{label} ({name}) has a {part} of shape {tuple(shape(values[0]))}; "
                                 f"{name} needs rank {rank}")
    if name in _BINARY:
        if len(ins) != 2:
            raise ModelFileError(f"{label} ({name}) has {len(ins)} inputs; {name} takes 2")
        types = {TYPE_NAMES.get(sg.Tensors(int(j)).Type()) for j in ins if j >= 0}
        if len(types) > 1:
            raise ModelFileError(f"{label} ({name}) mixes input types {', '.join(sorted(types))}")
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(ins) >= 2 and len(outs) and min(ins[0], ins[1], outs[0]) >= 0:
        x, w, y = shape(ins[0]), shape(ins[1]), shape(outs[0])
        groups_ok = name != "CONV_2D" or (w[3] > 0 and x[3] % w[3] == 0 and x[3] >= w[3])
        out_ok = (w[0] if name == "CONV_2D" else w[3]) == y[3]
        if not (groups_ok and out_ok):
            raise ModelFileError(f"{label} ({name}) has input {tuple(x)}, filter {tuple(w)} and output "
                                 f"{tuple(y)}, whose channels do not match")
    if name == "RESHAPE" and len(ins) and len(outs) and ins[0] >= 0 and outs[0] >= 0:
        a, b = shape(ins[0]), shape(outs[0])
        if math.prod(a) != math.prod(b):
            raise ModelFileError(f"{label} (RESHAPE) turns shape {tuple(a)} into {tuple(b)}: "
                                 "the element counts differ")


def _op_name(root, index):
    code = root.OperatorCodes(index)
    return OP_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "")


def _check_operators(root, sg, n, constant, where):
    """Opcode and tensor indices in range; every tensor read is an input, a constant or written before."""
    n_codes = root.OperatorCodesLength()
    available = {int(j) for j in _array(sg, "Inputs")} | constant
    writer = {}
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        label = f"{where} operator {i}"
        if not 0 <= op.OpcodeIndex() < n_codes:
            raise ModelFileError(f"{label} has opcode index {op.OpcodeIndex()}, but the model has "
                                 f"{n_codes} operator codes")
        ins, outs, inner = (_array(op, f) for f in ("Inputs", "Outputs", "Intermediates"))
        for part, values in (("inputs", ins), ("outputs", outs), ("intermediates", inner)):
            for j in values:
                if not -1 <= int(j) < n:
                    raise ModelFileError(f"{label} ({part}) refers to tensor {int(j)}, but the subgraph "
                                         f"has {n} tensors")
        for j in map(int, ins):
            if j >= 0 and j not in available:
                raise ModelFileError(f"{label} reads tensor {j} {_name(sg.Tensors(j))!r} before any operator "
                                     "writes it (and it is neither a model input nor a constant)")
        for j in map(int, outs):
            if j < 0:
                continue
            if j in constant:
                raise ModelFileError(f"{label} writes tensor {j} {_name(sg.Tensors(j))!r}, which is a constant")
            if j in writer:
                raise ModelFileError(f"{label} writes tensor {j} {_name(sg.Tensors(j))!r}, which operator "
                                     f"{writer[j]} already writes")
            writer[j] = i
            available.add(j)
        available.update(int(j) for j in inner if j >= 0)
        _check_shapes(_op_name(root, op.OpcodeIndex()), sg, ins, outs, label)


def _check_structure(data, source):
    root = schema.Model.GetRootAs(bytearray(data), 0)
    if not root.SubgraphsLength():
        raise ModelFileError(f"{source} has no subgraphs")
    buffers = []
    for k in range(root.BuffersLength()):
        buf = root.Buffers(k)
        if buf.Offset() > 1:  # data stored after the flatbuffer (models over 2 GB)
            if buf.Offset() + buf.Size() > len(data):
                raise ModelFileError(f"{source}: buffer {k} points to bytes {buf.Offset():,}-"
                                     f"{buf.Offset() + buf.Size():,} past the end of the file ({len(data):,})")
            buffers.append(int(buf.Size()))
        else:
            buffers.append(int(buf.DataLength()))
    for s in range(root.SubgraphsLength()):
        sg = root.Subgraphs(s)
        where = f"{source} subgraph {s}"
        n = sg.TensorsLength()
        for part in ("Inputs", "Outputs"):
            for j in _array(sg, part):
                if not 0 <= int(j) < n:
                    raise ModelFileError(f"{where} {part.lower()} refer to tensor {int(j)}, but the "
                                         f"subgraph has {n} tensors")
        needs = [_check_tensor(sg.Tensors(i), i, buffers, where) for i in range(n)]
        if sum(needs) > MAX_TOTAL_BYTES:
            raise ModelFileError(f"{where}: its tensors would take {sum(needs):,} bytes "
                                 f"(at most {MAX_TOTAL_BYTES:,})")
        tensors = [sg.Tensors(i) for i in range(n)]
        # Constants hold data; variables keep state between invokes; empty tensors hold nothing.
        constant = {i for i, t in enumerate(tensors) if buffers[t.Buffer()] or t.IsVariable()
                    or not needs[i] or TYPE_NAMES.get(t.Type()) in ("RESOURCE", "VARIANT", "STRING")}
        _check_operators(root, sg, n, constant, where)
    first = root.Subgraphs(0)
    if not first.InputsLength() or not first.OutputsLength():
        raise ModelFileError(f"{source} has no {'inputs' if not first.InputsLength() else 'outputs'}: "
                             "edgezoo needs a model with at least one input and one output")


def check_structure(data, source="model"):
    """Raise ModelFileError naming the first inconsistency of a verified flatbuffer.

    Buffer, tensor and opcode indices in range; shapes non-negative and of sane
    size; constant data exactly the size of its tensor; sane quantization;
    operators read only inputs, constants or tensors written before them; the
    main kernels get operands of the rank they assume.
    """
    try:
        _check_structure(data, source)
    except ModelFileError:
        raise
    except Exception as exc:  # a table the verifier let through but that does not read back
        raise ModelFileError(f"{source} is malformed: {type(exc).__name__}: {exc}") from None


def load_tflite(source):
    """(bytes, parsed model) of a verified, consistent .tflite from a path or bytes.

    Flex (SELECT_TF_OPS) and unknown custom ops are refused first, before LiteRT's verifier
    builds an interpreter from the bytes (``edgezoo.edge.safe_load.check_tflite_ops``), and
    again, strictly, once the flatbuffer is verified."""
    data = read_model_bytes(source)
    name = str(source) if not isinstance(source, (bytes, bytearray, memoryview)) else "model"
    check_tflite_ops(data, name)
    verify_flatbuffer(data, name)
    check_structure(data, name)
    check_tflite_ops(data, name, verified=True)
    return data, read_tflite(data)
