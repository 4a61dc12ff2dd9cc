"""Per-operator comparison of TFLite Micro with LiteRT's reference kernels.

Comparing the two runtimes end to end is wrong both ways: a known rounding
difference of 1 LSB at one op (int8 FULLY_CONNECTED requantizes with one
rounding in LiteRT's reference kernel, two in TFLite Micro's) grows through a deep network to 2-3 LSB at the output, while a
real fault shows only at the end, unlocated. ``compare_ops`` instead runs every
operator alone, as a one-op model, in both runtimes on IDENTICAL inputs (the
values LiteRT's reference run of the whole model computed for that op's
inputs) and gates each op at its own tolerance: 0 LSB unless
``OP_TOLERANCE_LSB`` names a measured, explained rounding difference.

All TFLite Micro runs of one comparison happen in one child process
(``_micro_child.py``, ``ops_job.json`` mode); a crash there becomes a
``RuntimeFailure`` naming the op.
"""
import copy
import dataclasses
import json
import signal
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from edgezoo.converters.flatbuffer_io import AlignedBufferT, pack_model, read_model_t  # noqa: F401
from edgezoo.converters.tflite_model import OP_NAMES, TYPE_NAMES, quantize_input
from edgezoo.edge.runners.base import InputError
from edgezoo.edge.runners.micro import CHILD, child_env, read_progress, watch_child
from edgezoo.base.errors import RuntimeFailure

# Ops whose reference kernels round differently in the two runtimes: op -> (LSB, reason).
# Every other op is expected bit-exact on identical inputs. Widen only after measuring.
# Measured (one-op models, identical inputs, tflite-micro 0.dev20261023, ai-edge-litert 2.3.0):
# FULLY_CONNECTED 1 LSB on 0.7-2.5 % of outputs (MLPerf Tiny KWS and IC ResNet, an MLPerf AD
# shaped MLP); BATCH_MATMUL 1 LSB on 1-2 of 262144 outputs (perceiver_micro, perceiver_io_micro,
# 64 samples). Each differing value was recomputed from the int32 accumulator: LiteRT's matches
# one rounding of acc * multiplier / 2^n, TFLite Micro's the two-step rounding (rounding doubling
# high multiply, then rounding right shift). Every other op of the zoo's int8 micro models and of
# the MLPerf models was bit-exact.
OP_TOLERANCE_LSB = {
    "FULLY_CONNECTED": (1, "int8 requantization: TFLite Micro rounds twice (doubling high multiply, "
                           "then shift), LiteRT's BUILTIN_REF once; 1 LSB near half-way values"),
    "BATCH_MATMUL": (1, "same requantization rounding difference as FULLY_CONNECTED (1 LSB near "
                        "half-way values)"),
}
EXACT = (0, "expected bit-exact: same reference arithmetic in both runtimes")
FLOAT_RTOL = 1e-5  # float outputs: max |micro - reference| <= FLOAT_RTOL * max(1, max |reference|)
DEFAULT_SAMPLES = 8
# Ops that cannot be run alone: state across invokes or other subgraphs.
_NOT_ALONE = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE", "WHILE", "IF",
              "CALL", "STABLEHLO_COMPOSITE"}
_BYTES = {"FLOAT32": 4, "INT32": 4, "INT64": 8, "FLOAT16": 2, "INT16": 2, "UINT16": 2,
          "FLOAT64": 8, "UINT32": 4, "UINT64": 8, "COMPLEX64": 8}


def _operand(model_t, values, j):
    """Input tensor ``j`` of an op: one array per sample from the run, or the file's int8 data."""
    if j in values:
        return np.asarray(values[j])
    t = model_t.subgraphs[0].tensors[j]
    data = np.frombuffer(bytes(model_t.buffers[t.buffer].data), np.int8)
    return data.reshape([int(d) for d in t.shape])


def _derive_int8_mul(model_t, parsed, values, i):
    """TFLite Micro's int8 MUL of op ``i`` on the run's inputs (None unless every tensor is int8)."""
    from edgezoo.edge.int8_reference import int8_mul

    op_t = model_t.subgraphs[0].operators[i]
    ins, out = _indices(op_t.inputs), _indices(op_t.outputs)[0]
    tensors = [parsed.tensors[j] for j in ins + [out]]
    if len(ins) != 2 or any(t.dtype != "INT8" for t in tensors):
        return None
    activation = getattr(op_t.builtinOptions, "fusedActivationFunction", 0)
    return int8_mul(*(_operand(model_t, values, j) for j in ins),
                    *((t.scale, t.zero_point) for t in tensors), activation)


# Ops where the two runtimes were seen to disagree on identical inputs and TFLite Micro's integer
# arithmetic is re-derived in NumPy (edge/int8_reference.py): there, TFLite Micro must equal the
# derivation exactly, and the row says LiteRT was the one that differed. No tolerance is widened.
# op -> (derivation: (model_t, parsed, values, op index) -> output, or None where it does not
# apply; reason).
ARBITERS = {
    "MUL": (_derive_int8_mul, "int8 MUL: LiteRT's kernels are 1 LSB off on isolated products "
            "(deformable_detr_micro: the 6 of 65,536 input pairs whose product is 13,120); TFLite "
            "Micro equals NumPy's re-derivation of gemmlowp's requantization"),
}


def arbitrate(model_t, parsed, values, i, micro_out):
    """For an op of ``ARBITERS``: (whether TFLite Micro's output equals the derivation, its max
    LSB from it), or (None, None) where the derivation does not apply."""
    derive, _ = ARBITERS[parsed.operators[i].op]
    derived = derive(model_t, parsed, values, i)
    if derived is None:
        return None, None
    micro = np.asarray(micro_out)
    diff = micro.astype(np.int64) - np.broadcast_to(derived, micro.shape).astype(np.int64)
    lsb = int(np.abs(diff).max()) if micro.size else 0
    return lsb == 0, lsb


def tolerance(op):
    """(LSB, reason) allowed between the two runtimes for ``op`` on identical inputs."""
    return OP_TOLERANCE_LSB.get(op, EXACT)


# ---------------------------------------------------------------------------- model surgery

def _has_data(model_t, tensor):
    if tensor.buffer <= 0 or tensor.buffer >= len(model_t.buffers or []):
        return False
    buf = model_t.buffers[tensor.buffer]
    return buf.data is not None and len(buf.data) > 0


def constant_tensors(model_t):
    """Indices of subgraph 0's tensors that hold data in the file (weights, shapes, ...)."""
    sg = model_t.subgraphs[0]
    return {j for j, t in enumerate(sg.tensors or []) if _has_data(model_t, t)}


def _indices(values):
    return [int(j) for j in (values if values is not None else [])]


def extract_ops(model_t, op_indices, inputs=None, outputs=None):
    """A model of subgraph 0's operators ``op_indices`` alone, as ``schema.ModelT``.

    Keeps only the tensors, buffers and operator codes those ops use. ``inputs``
    defaults to their non-constant inputs that none of them produces, ``outputs``
    to what they produce; both are tensor indices of the original model.
    Returns (model, {original tensor index: index in the new model}).
    """
    sg = model_t.subgraphs[0]
    ops = [sg.operators[i] for i in op_indices]
    const = constant_tensors(model_t)
    produced = [j for op in ops for j in _indices(op.outputs) if j >= 0]
    if inputs is None:
        inputs = [j for op in ops for j in _indices(op.inputs)
                  if j >= 0 and j not in const and j not in produced]
    if outputs is None:
        outputs = produced
    inputs, outputs = list(dict.fromkeys(inputs)), list(dict.fromkeys(outputs))
    used = list(dict.fromkeys(
        inputs + [j for op in ops for field in (op.inputs, op.outputs, op.intermediates)
                  for j in _indices(field) if j >= 0] + outputs))
    remap = {old: new for new, old in enumerate(used)}
    buffers, tensors = [schema.BufferT()], []  # buffer 0: the empty sentinel
    for old in used:
        t = copy.copy(sg.tensors[old])
        if old in const:
            src = model_t.buffers[t.buffer]
            if getattr(src, "offset", 0):
                raise ValueError("buffers stored outside the flatbuffer (offset) are not supported")
            buf = AlignedBufferT()
            buf.data = src.data
            buffers.append(buf)
            t.buffer = len(buffers) - 1
        else:
            t.buffer = 0
        tensors.append(t)
    codes, new_ops = [], []
    for op in ops:
        code = model_t.operatorCodes[op.opcodeIndex]
        if code not in codes:
            codes.append(code)
        new = copy.copy(op)
        new.opcodeIndex = codes.index(code)
        new.inputs = [remap[j] if j >= 0 else -1 for j in _indices(op.inputs)]
        new.outputs = [remap[j] if j >= 0 else -1 for j in _indices(op.outputs)]
        if op.intermediates is not None:
            new.intermediates = [remap[j] if j >= 0 else -1 for j in _indices(op.intermediates)]
        new_ops.append(new)
    sub = schema.SubGraphT()
    sub.tensors, sub.operators, sub.name = tensors, new_ops, sg.name
    sub.inputs, sub.outputs = [remap[j] for j in inputs], [remap[j] for j in outputs]
    model = schema.ModelT()
    model.version, model.description = model_t.version, model_t.description
    model.operatorCodes, model.subgraphs, model.buffers = codes, [sub], buffers
    return model, remap


def one_op_model(model_t, index):
    """(bytes, tensor remap) of a .tflite holding operator ``index`` of subgraph 0 alone; its
    inputs are the op's non-constant inputs, its outputs the op's outputs."""
    model, remap = extract_ops(model_t, [index])
    return pack_model(model), remap


def _op_name(model_t, op):
    code = model_t.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode
        return f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}"
    return OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def _tensor_bytes(tensor):
    n = int(np.prod(_indices(tensor.shape))) if tensor.shape is not None else 1
    return n * _BYTES.get(TYPE_NAMES.get(tensor.type, ""), 1)


# ---------------------------------------------------------------------------- runtimes

def _litert(model_bytes, preserve=False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(model_content=model_bytes, num_threads=1,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
                                  experimental_preserve_all_tensors=preserve)
    interpreter.allocate_tensors()
    return interpreter


def _run_litert(interpreter, feeds, fetch, samples):
    """{tensor: (samples, *shape)} for the ``fetch`` tensors, given ``feeds`` shaped alike."""
    out = {j: [] for j in fetch}
    for n in range(samples):
        for j, values in feeds.items():
            interpreter.set_tensor(j, values[n])
        interpreter.invoke()
        for j in fetch:
            out[j].append(np.array(interpreter.get_tensor(j), copy=True))
    return {j: np.stack(v) for j, v in out.items()}


@dataclasses.dataclass
class MicroJob:
    """One model for TFLite Micro: ``inputs`` is one array per subgraph input, one sample per row
    (each row shaped as the tensor); ``op_index`` is None for the whole model."""

    name: str
    model_bytes: bytes
    inputs: list
    num_outputs: int
    arena_size: int
    op_index: object = None
    layer: str = ""


def _job_label(job):
    where = f" (layer {job.layer!r})" if job.layer else ""
    return f"{job.name}{where}"


def run_micro_jobs(jobs, timeout=None):
    """Run every job in ONE TFLite Micro child process: for each job, its outputs (one array per
    subgraph output, one sample per row). A crash, a hang or a refusal becomes a
    ``RuntimeFailure`` naming the job (the op and its layer)."""
    if not jobs:
        return []
    with tempfile.TemporaryDirectory(prefix="edgezoo-opcmp-") as tmp:
        work = Path(tmp)
        batch = []
        for k, job in enumerate(jobs):
            (work / f"opmodel_{k}.tflite").write_bytes(job.model_bytes)
            np.savez(work / f"opin_{k}.npz",
                     **{str(j): np.asarray(a) for j, a in enumerate(job.inputs)})
            samples = len(job.inputs[0]) if job.inputs else 1
            batch.append({"id": k, "arena_size": int(job.arena_size), "inputs": len(job.inputs),
                          "outputs": int(job.num_outputs), "samples": int(samples)})
        (work / "ops_job.json").write_text(json.dumps({"op_batch": batch}))
        with open(work / "child.log", "w") as log:
            proc = subprocess.Popen([sys.executable, str(CHILD), tmp], stdout=log, stderr=log,
                                    env=child_env())
        hung = watch_child(proc, work, lambda k: timeout or 60 + 0.5 * batch[k]["samples"])
        stages = read_progress(work)
        results = []
        for k, job in enumerate(jobs):
            seen = stages.get(k, [])
            if seen and seen[-1] == "done":
                with np.load(work / f"opout_{k}.npz") as data:
                    results.append([data[str(j)] for j in range(job.num_outputs)])
                continue
            log_file = work / f"oplog_{k}.txt"
            text = log_file.read_text(errors="replace") if log_file.exists() else ""
            detail = " | ".join([line for line in text.splitlines() if line.strip()][-3:])
            if seen and seen[-1] == "error":
                raise RuntimeFailure(f"TFLite Micro refused {_job_label(job)}: {detail}")
            if not seen and not stages:
                text = (work / "child.log").read_text(errors="replace")
                detail = " | ".join([line for line in text.splitlines() if line.strip()][-3:])
                cause = "did not start in time" if hung else f"exited with code {proc.returncode}"
                raise RuntimeFailure(f"TFLite Micro's child process {cause}: {detail}")
            if hung is not None and hung[0] == k:
                raise RuntimeFailure(f"TFLite Micro did not finish {_job_label(job)} within "
                                     f"{hung[1]:.0f} s")
            if proc.returncode is not None and proc.returncode < 0:
                sig = signal.Signals(-proc.returncode).name
                raise RuntimeFailure(f"TFLite Micro crashed ({sig}) on {_job_label(job)}"
                                     + (f": {detail}" if detail else ""))
            raise RuntimeFailure(f"TFLite Micro's child process exited with code {proc.returncode} "
                                 f"on {_job_label(job)}" + (f": {detail}" if detail else ""))
        return results


# ---------------------------------------------------------------------------- comparison

def _inputs_list(x, model_t, tensors, samples):
    """The samples per model input as arrays shaped (samples, *tensor shape)."""
    from edgezoo.edge.runners.base import Batch

    xs = x.arrays if isinstance(x, Batch) else list(x) if isinstance(x, (list, tuple)) else [x]
    sg = model_t.subgraphs[0]
    ins = _indices(sg.inputs)
    if len(xs) != len(ins):
        raise InputError(f"the model has {len(ins)} input(s); got {len(xs)} array(s)")
    out = []
    for k, (a, j) in enumerate(zip(xs, ins)):
        details, tensor = tensors[j], sg.tensors[j]
        shape = tuple(_indices(tensor.shape))
        a = np.asarray(a)
        if a.dtype.kind == "f" and details.dtype != "FLOAT32":
            a = quantize_input(a, details)
        dtype = np.dtype(details.dtype.lower())
        if a.dtype != dtype:
            raise InputError(f"input {k}: dtype {a.dtype} but the model takes {dtype}")
        if a.ndim == len(shape) and tuple(a.shape[1:]) == shape[1:]:
            a = a.reshape(len(a), *shape)
        elif tuple(a.shape[1:]) != shape:
            raise InputError(f"input {k}: shape {a.shape} does not match the model input "
                             f"(N, {', '.join(map(str, shape[1:]))})")
        out.append(a[:samples])
    n = {len(a) for a in out}
    if len(n) != 1 or 0 in n:
        raise InputError(f"inputs need the same, non-zero number of samples; got {sorted(n)}")
    return out


def _difference(micro, ref):
    """(max LSB or None, max abs error, fraction of elements that differ)."""
    if micro.shape != ref.shape:
        raise RuntimeFailure(f"output shapes differ: TFLite Micro {micro.shape}, "
                             f"LiteRT {ref.shape}")
    if ref.dtype.kind == "f":
        err = np.abs(micro.astype(np.float64) - ref.astype(np.float64))
        if not err.size:
            return None, 0.0, 0.0
        return None, float(err.max()), float((err > 0).mean())
    lsb = np.abs(micro.astype(np.int64) - ref.astype(np.int64))
    m = int(lsb.max()) if lsb.size else 0
    return m, float(m), float((lsb > 0).mean()) if lsb.size else 0.0


def compare_ops(model_bytes, parsed, x, samples=DEFAULT_SAMPLES, micro=None, timeout=None):
    """Gate TFLite Micro against LiteRT's reference kernels operator by operator.

    ``x``: already-quantized samples (N, ...) for input 0, or a list of arrays, one per
    model input (float arrays for an integer input are quantized with its scale).
    ``samples``: how many of them to run. ``micro``: a function ``[MicroJob] -> outputs``
    replacing ``run_micro_jobs`` (negative controls wrap the real one).

    Returns a dict: ``ops`` (the rows, one per op output: index, op, layer, tensor,
    max_lsb, tolerance, passed, ...), ``max_lsb_by_op``, ``tolerances`` (the non-zero
    ones), ``first_failure`` (the first op in execution order over its tolerance) or
    None, ``passed``, ``skipped`` (ops not compared and why), ``extraction_exact``
    (every one-op model reproduced the whole model's tensor in LiteRT), ``end_to_end``
    (the whole model in both runtimes: information, not the gate).
    """
    from edgezoo.edge.runners.micro import check_micro_ops

    check_micro_ops(parsed)
    model_t = read_model_t(model_bytes)
    sg = model_t.subgraphs[0]
    const = constant_tensors(model_t)
    xs = _inputs_list(x, model_t, parsed.tensors, samples)
    n = len(xs[0])
    model_inputs = _indices(sg.inputs)

    # (1) the whole model in LiteRT's reference kernels, keeping every tensor
    plan, skipped = [], []
    for i, op in enumerate(sg.operators or []):
        name = _op_name(model_t, op)
        ins = [j for j in _indices(op.inputs) if j >= 0]
        if name in _NOT_ALONE:
            skipped.append({"index": i, "op": name,
                            "reason": "cannot run alone (state or subgraphs)"})
        elif not [j for j in ins if j not in const]:
            skipped.append({"index": i, "op": name, "reason": "constant inputs only"})
        else:
            plan.append(i)
    fetch = sorted({j for i in plan for field in (sg.operators[i].inputs, sg.operators[i].outputs)
                    for j in _indices(field) if j >= 0 and j not in const})
    readout = parsed.readout_tensor()
    e2e_tensors = list(dict.fromkeys(_indices(sg.outputs) + ([] if readout is None else [readout])))
    full = _litert(model_bytes, preserve=True)
    values = _run_litert(full, dict(zip(model_inputs, xs)),
                         sorted(set(fetch) | set(e2e_tensors)), n)
    del full

    # (2) each op alone, in LiteRT's reference kernels and (below) TFLite Micro
    jobs, refs = [], []
    for i in plan:
        op = sg.operators[i]
        one, remap = extract_ops(model_t, [i])
        data, sub = pack_model(one), one.subgraphs[0]
        inverse = {new: old for old, new in remap.items()}
        sub_in = [inverse[j] for j in _indices(sub.inputs)]
        sub_out = [inverse[j] for j in _indices(sub.outputs)]
        feeds = {remap[j]: values[j] for j in sub_in}
        interpreter = _litert(data)  # one per one-op model, all samples
        ref = _run_litert(interpreter, feeds, [remap[j] for j in sub_out], n)
        refs.append((i, sub_out, [ref[remap[j]] for j in sub_out]))
        tensor_bytes = sum(_tensor_bytes(sg.tensors[j]) for j in remap)
        jobs.append(MicroJob(f"op {i} {_op_name(model_t, op)}", data, [values[j] for j in sub_in],
                             len(sub_out), max(64 * 1024, 4 * tensor_bytes), i,
                             parsed.operators[i].layer))
    if len(model_t.subgraphs) > 1:  # other subgraphs stay referenced: run the file as it is
        e2e_tensors, whole_bytes = _indices(sg.outputs), bytes(model_bytes)
    else:  # the whole model, with the pre-softmax readout as an extra output
        whole, _ = extract_ops(model_t, range(len(sg.operators or [])), inputs=model_inputs,
                               outputs=e2e_tensors)
        whole_bytes = pack_model(whole)
    jobs.append(MicroJob("whole model", whole_bytes, xs, len(e2e_tensors),
                         max(4 * 1024 * 1024, 10 * len(model_bytes))))
    outputs = micro(jobs) if micro is not None else run_micro_jobs(jobs, timeout)
    if len(outputs) != len(jobs):
        raise RuntimeFailure(f"TFLite Micro returned {len(outputs)} results for {len(jobs)} models")

    # (3) per op and output tensor: micro vs reference on identical inputs
    rows = []
    for (i, sub_out, ref_outs), micro_outs in zip(refs, outputs[:-1]):
        op = parsed.operators[i]
        lsb_allowed = tolerance(op.op)[0]
        for j, ref_out, micro_out in zip(sub_out, ref_outs, micro_outs):
            details = parsed.tensors[j]
            max_lsb, max_abs, differing = _difference(np.asarray(micro_out), ref_out)
            extraction, _, _ = _difference(ref_out, values[j])
            if max_lsb is None:
                peak = float(np.abs(ref_out).max()) if ref_out.size else 1.0
                allowed = FLOAT_RTOL * max(1.0, peak)
                passed = max_abs <= allowed
            else:
                allowed = lsb_allowed
                passed = max_lsb <= allowed
                if details.scale:
                    max_abs = max_lsb * details.scale
            arbiter = {}
            if not passed and op.op in ARBITERS and len(sub_out) == 1:
                exact, lsb = arbitrate(model_t, parsed, values, i, micro_out)
                if exact is not None:
                    passed = exact
                    arbiter = {"arbitrated": {"by": "numpy integer derivation",
                                              "micro_vs_derivation_lsb": lsb,
                                              "reference_vs_micro_lsb": max_lsb,
                                              "reason": ARBITERS[op.op][1]}}
            rows.append({**arbiter,
                "index": i, "op": op.op, "layer": op.layer, "tensor": details.name,
                "tensor_index": j, "dtype": details.dtype, "max_lsb": max_lsb,
                "max_abs_error": max_abs, "differing": differing, "tolerance": allowed,
                "passed": bool(passed),
                "extraction_exact": extraction == 0 if extraction is not None
                else bool(np.array_equal(ref_out, values[j])),
            })
    max_by_op = {}
    for row in rows:
        if row["max_lsb"] is not None:
            max_by_op[row["op"]] = max(max_by_op.get(row["op"], 0), row["max_lsb"])
    failing = [row for row in rows if not row["passed"]]
    first = None
    if failing:
        row = failing[0]
        first = {k: row[k] for k in ("index", "op", "layer", "tensor", "tensor_index", "max_lsb",
                                     "tolerance")}

    # (4) the whole model, for information
    e2e = []
    for j, micro_out in zip(e2e_tensors, outputs[-1]):
        details = parsed.tensors[j]
        max_lsb, max_abs, differing = _difference(np.asarray(micro_out), values[j])
        per_sample = None
        if max_lsb is not None:
            diff = np.abs(np.asarray(micro_out).astype(np.int64) - values[j].astype(np.int64))
            per_sample = [int(v) for v in diff.reshape(n, -1).max(-1)]
        e2e.append({"tensor": details.name, "tensor_index": j, "readout": j == readout,
                    "max_lsb": max_lsb, "max_abs_error": max_abs, "differing": differing,
                    "max_lsb_per_sample": per_sample})
    # the headline is the readout (pre-softmax) when there is one: softmax magnifies a 1-LSB logit
    headline = [t for t in e2e if t["readout"]] or e2e
    lsbs = [t["max_lsb"] for t in headline if t["max_lsb"] is not None]
    return {
        "samples": n,
        "ops": rows,
        "max_lsb_by_op": max_by_op,
        "tolerances": {op: lsb for op, (lsb, _) in OP_TOLERANCE_LSB.items()},
        "tolerance_reasons": {op: reason for op, (_, reason) in OP_TOLERANCE_LSB.items()},
        "arbitrated": [{k: row[k] for k in ("index", "op", "layer", "arbitrated")}
                       for row in rows if "arbitrated" in row],
        "first_failure": first,
        "passed": not failing,
        "skipped": skipped,
        "extraction_exact": all(row["extraction_exact"] for row in rows),
        "end_to_end": {"tensors": e2e, "max_lsb": max(lsbs) if lsbs else None,
                       "tensor": headline[0]["tensor"] if headline else None,
                       "note": "information only, not gated: per-op rounding differences grow "
                               "through the model"},
    }
