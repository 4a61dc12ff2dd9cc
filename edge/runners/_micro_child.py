"""Child process for TFLite Micro: a fault in its C++ kills this process, not the caller.

Usage: python _micro_child.py WORKDIR (job.json, model.tflite, inputs.npz in WORKDIR).
Inputs and outputs are .npz files holding array "j" for input / output j, samples first.
Writes outputs.npz; allocations are printed by TFLite Micro itself. ``"tensors"`` in a
job: per output, None (read the output) or the index of the inner tensor to read instead
(the input of a final SOFTMAX), which needs an interpreter that preserves every tensor.

Batch mode (job.json has "batch"): runs model_<id>.tflite one after the other,
each logging to log_<id>.txt and writing out_<id>.npz, and appends
"<id> load|invoke|done|error" to progress.txt as it goes, so the parent knows
which model a crash or hang belongs to.
"""
import ctypes
import json
import os
import sys
from pathlib import Path

import numpy as np


def _random_input(details, samples, rng):
    shape, dtype = tuple(details["shape"]), np.dtype(details["dtype"])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, (samples, *shape[1:]), dtype=dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, (samples, *shape[1:])).astype(dtype)
    return rng.standard_normal((samples, *shape[1:])).astype(dtype)


def _random_inputs(interpreter, samples, seed, count):
    """Seeded inputs shaped and typed as each of the interpreter's ``count`` inputs."""
    rng = np.random.default_rng(seed)
    return [_random_input(interpreter.get_input_details(j), samples, rng) for j in range(count)]


def load_inputs(path):
    with np.load(path, allow_pickle=False) as z:
        return [z[str(j)] for j in range(len(z.files))]


def set_inputs(interpreter, xs, k):
    for j, x in enumerate(xs):
        interpreter.set_input(x[k : k + 1], j)


def invoke_all(interpreter, xs, tensors):
    """Invoke on every sample of ``xs``: per output, the arrays read (``tensors`` as above)."""
    outputs = [[] for _ in tensors]
    for k in range(len(xs[0]) if xs else 0):
        set_inputs(interpreter, xs, k)
        interpreter.invoke()
        for o, tensor in enumerate(tensors):
            if tensor is not None:
                t = interpreter.GetTensor(tensor, 0)
                out = np.asarray(t["tensor_data"]).reshape(tuple(t["shape"]))
            else:
                out = interpreter.get_output(o)
            outputs[o].append(np.array(out, copy=True))
    return [np.concatenate(o) if o else np.zeros((0,)) for o in outputs]


def save_outputs(path, outputs):
    np.savez(path, **{str(o): a for o, a in enumerate(outputs)})


def _run_one(runtime, work, entry):
    """One model of a batch; returns after writing out_<id>.npy or raising."""
    i = entry["id"]
    model = (work / f"model_{i}.tflite").read_bytes()
    tensors = entry["tensors"]
    preserve = any(t is not None for t in tensors)
    config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve
              else runtime.InterpreterConfig.kAllocationRecording)
    interpreter = runtime.Interpreter.from_bytes(model, arena_size=entry["arena_size"],
                                                 intrepreter_config=config)
    if entry["inputs"]:
        xs = load_inputs(work / f"inputs_{i}.npz")
    else:
        xs = _random_inputs(interpreter, entry["samples"], entry["seed"], entry["num_inputs"])
    _progress(work, f"{i} invoke")
    save_outputs(work / f"out_{i}.npz", invoke_all(interpreter, xs, tensors))
    if preserve and len(xs[0]):  # as in single mode: record the arena with a recording interpreter
        interpreter = runtime.Interpreter.from_bytes(
            model, arena_size=entry["arena_size"],
            intrepreter_config=runtime.InterpreterConfig.kAllocationRecording)
        set_inputs(interpreter, xs, 0)
        interpreter.invoke()
    interpreter.print_allocations()


def _progress(work, line):
    fd = os.open(work / "progress.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _run_logged(work, entries, log_prefix, run_one):
    """Run each entry with stdout/stderr (TFLite Micro's C++ prints there) sent to
    <log_prefix>_<id>.txt, appending "<id> load|invoke|done|error" to progress.txt, so the
    parent knows which model a crash or hang belongs to."""
    from tflite_micro.python.tflite_micro import runtime

    libc = ctypes.CDLL(None)
    saved = os.dup(1), os.dup(2)
    for entry in entries:
        i = entry["id"]
        sys.stdout.flush()
        sys.stderr.flush()
        libc.fflush(None)
        log = os.open(work / f"{log_prefix}_{i}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        _progress(work, f"{i} load")
        try:
            run_one(runtime, work, entry)
        except Exception as exc:  # the parent reads the reason from the log
            print(f"EDGEZOO_CHILD_ERROR: {type(exc).__name__}: {exc}", file=sys.stderr)
            stage = "error"
        else:
            stage = "done"
        sys.stdout.flush()
        sys.stderr.flush()
        libc.fflush(None)
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        _progress(work, f"{i} {stage}")


def run_batch(work, job):
    _run_logged(work, job["batch"], "log", _run_one)


def _run_op_model(runtime, work, entry):
    """One model of an op batch (edgezoo.edge.op_compare): several inputs and outputs.

    opin_<id>.npz holds input j as "j", one sample per row (each row shaped as the
    tensor); writes opout_<id>.npz with output j as "j", one sample per row.
    """
    i = entry["id"]
    model = (work / f"opmodel_{i}.tflite").read_bytes()
    interpreter = runtime.Interpreter.from_bytes(model, arena_size=entry["arena_size"])
    with np.load(work / f"opin_{i}.npz") as data:
        xs = [data[str(j)] for j in range(entry["inputs"])]
    _progress(work, f"{i} invoke")
    outputs = [[] for _ in range(entry["outputs"])]
    for n in range(entry["samples"]):
        for j, x in enumerate(xs):
            interpreter.set_input(x[n], j)
        interpreter.invoke()
        for j in range(entry["outputs"]):
            outputs[j].append(np.array(interpreter.get_output(j), copy=True))
    np.savez(work / f"opout_{i}.npz", **{str(j): np.stack(o) for j, o in enumerate(outputs)})


def run_op_batch(work, job):
    """ops_job.json: many small models in one process, each logging to oplog_<id>.txt (a crash
    ends the process; the parent names the model from the last stage in progress.txt)."""
    _run_logged(work, job["op_batch"], "oplog", _run_op_model)


def _arena_probe(runtime, model, x, size, log_path, timeout):
    """Prepare and invoke ``model`` with a ``size``-byte arena in a forked process.

    Returns (status, detail): "ok", "fail" (TFLite Micro raised), "crash" (the
    process died on a signal) or "timeout"; detail is the probe's last log line.
    """
    import signal

    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    sys.stderr.flush()
    libc.fflush(None)
    pid = os.fork()
    if pid == 0:  # the probe: nothing in it returns to the bisection
        code = 1
        try:
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(log, 1)
            os.dup2(log, 2)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(max(1, int(timeout)))
            interpreter = runtime.Interpreter.from_bytes(model, arena_size=int(size))
            for k in range(len(x[0])):
                set_inputs(interpreter, x, k)
                interpreter.invoke()
            code = 0
        except BaseException as exc:  # noqa: BLE001 (a probe that fails reports it and exits)
            print(f"EDGEZOO_PROBE_ERROR: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            libc.fflush(None)
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    text = Path(log_path).read_text(errors="replace") if Path(log_path).exists() else ""
    lines = [line for line in text.splitlines() if line.strip()]
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        state = "timeout" if sig == signal.SIGALRM else "crash"
        return state, (lines[-1] if lines else signal.Signals(sig).name)
    if os.WEXITSTATUS(status) == 0:
        return "ok", ""
    reasons = [line for line in lines if not line.startswith("EDGEZOO_PROBE_ERROR")]
    return "fail", (reasons[-1] if reasons else lines[-1] if lines else "")


def find_min_arena(work, job):
    """Smallest arena (a multiple of ``alignment``) that prepares the model and invokes it.

    arena_job.json: {"low": L, "high": H, "max": M, "alignment": A, "probe_timeout": T};
    WORKDIR also holds model.tflite and inputs.npz (one or more samples of every input,
    quantized, batch first; each is invoked). Writes min_arena.json:
    {"minimum": S or null, "alignment": A, "probes": [[size, status, detail], ...]}.
    With "sizes": [s, ...] in the job it only tries those sizes (minimum: null).

    Each probe runs in a forked process: with the tflite-micro wheel a too-small
    arena usually makes ``Interpreter.from_bytes`` raise RuntimeError ("TFLM failed
    to allocate tensors", after "Failed to resize buffer" / "Failed to allocate tail
    memory" or a kernel's "failed to prepare"), but at many sizes it segfaults
    instead: every size below 464 B, and bands well inside the range (in steps of
    16 B: KWS 4176-9056 B in patches; an int8 MLP autoencoder as FULLY_CONNECTED
    14048-16304 B and 19136 B, just below its 19152 B minimum; as 1x1 CONV_2D
    14544-19648 B), so one process cannot try sizes one after the other.

    Bracketing: L is probed (L <= 0 counts as failing) and halved while it works;
    H is probed and doubled up to M while it fails; then bisection keeps
    "lo fails, hi works" until they are one alignment step apart, so the result is
    proven at both ends: S works and S - A fails. It is the minimum on the
    assumption that a working arena stays working when it grows (size s works =>
    s + A works). That was checked with every multiple of 16 on the MLPerf Tiny KWS
    model (464-30000 B), the ResNet-8 IC model (464-90000 B) and an int8 MLP
    autoencoder as FULLY_CONNECTED (464-40000 B) and as 1x1 CONV_2D (464-40000 B):
    each has exactly one fail -> ok transition, at the bisected minimum.
    """
    from tflite_micro.python.tflite_micro import runtime

    align = int(job.get("alignment", 16))
    low = max(0, int(job.get("low", 0)) // align * align)
    high = max(low + align, -(-int(job.get("high", align)) // align) * align)
    top = max(high, int(job.get("max", high)))
    timeout = float(job.get("probe_timeout", 60))
    model = (work / "model.tflite").read_bytes()
    x = load_inputs(work / "inputs.npz")
    probes, known = [], {}

    def works(size):
        if size not in known:
            status, detail = _arena_probe(runtime, model, x, size, work / f"probe_{size}.txt",
                                          timeout)
            probes.append([int(size), status, detail])
            known[size] = status == "ok"
        return known[size]

    def finish(minimum):
        (work / "min_arena.json").write_text(json.dumps(
            {"minimum": minimum, "alignment": align, "probes": probes}))

    if "sizes" in job:  # no search: try exactly these sizes (a direct check of a boundary)
        for size in job["sizes"]:
            works(int(size))
        return finish(None)
    while low > 0 and works(low):  # the low end must fail
        high, low = low, low // 2 // align * align
    while not works(high):  # the high end must work
        low = high
        if high >= top:
            return finish(None)
        high = min(top, high * 2)
        high = -(-high // align) * align
    while high - low > align:
        mid = (low + high) // 2 // align * align
        if works(mid):
            high = mid
        else:
            low = mid
    return finish(high)


def main(workdir):
    if (Path(workdir) / "arena_job.json").exists():  # edgezoo.edge.arena
        find_min_arena(Path(workdir), json.loads((Path(workdir) / "arena_job.json").read_text()))
        return
    if (Path(workdir) / "ops_job.json").exists():  # edgezoo.edge.op_compare
        run_op_batch(Path(workdir), json.loads((Path(workdir) / "ops_job.json").read_text()))
        return
    from tflite_micro.python.tflite_micro import runtime

    work = Path(workdir)
    job = json.loads((work / "job.json").read_text())
    if "batch" in job:
        run_batch(work, job)
        return
    model = (work / "model.tflite").read_bytes()
    tensors = job["tensors"]
    preserve = any(t is not None for t in tensors)

    def interpreter_with(config):
        return runtime.Interpreter.from_bytes(model, arena_size=job["arena_size"],
                                              intrepreter_config=config)

    interpreter = interpreter_with(runtime.InterpreterConfig.kPreserveAllTensors if preserve
                                   else runtime.InterpreterConfig.kAllocationRecording)
    xs = load_inputs(work / "inputs.npz")
    save_outputs(work / "outputs.npz", invoke_all(interpreter, xs, tensors))
    sys.stdout.flush()
    if preserve and len(xs[0]):  # reading inner tensors needs a config that does not record the arena
        interpreter = interpreter_with(runtime.InterpreterConfig.kAllocationRecording)
        set_inputs(interpreter, xs, 0)
        interpreter.invoke()
    interpreter.print_allocations()


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as exc:  # reported to the parent through stderr and the exit code
        print(f"EDGEZOO_CHILD_ERROR: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(3)
