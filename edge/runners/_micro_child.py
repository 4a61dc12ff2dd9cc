"""Child process for TFLite Micro: a fault in its C++ kills this process, not the caller.

Usage: python _micro_child.py WORKDIR (job.json, model.tflite, inputs.npy in WORKDIR).
Writes outputs.npy; allocations are printed by TFLite Micro itself.

Batch mode (job.json has "batch"): runs model_<id>.tflite one after the other,
each logging to log_<id>.txt and writing out_<id>.npy, and appends
"<id> load|invoke|done|error" to progress.txt as it goes, so the parent knows
which model a crash or hang belongs to.
"""
import ctypes
import json
import os
import sys
from pathlib import Path

import numpy as np


def _random_inputs(interpreter, samples, seed):
    """Seeded inputs shaped and typed as the interpreter's own input 0."""
    details = interpreter.get_input_details(0)
    shape, dtype = tuple(details["shape"]), np.dtype(details["dtype"])
    rng = np.random.default_rng(seed)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, (samples, *shape[1:]), dtype=dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, (samples, *shape[1:])).astype(dtype)
    return rng.standard_normal((samples, *shape[1:])).astype(dtype)


def _run_one(runtime, work, entry):
    """One model of a batch; returns after writing out_<id>.npy or raising."""
    i = entry["id"]
    model = (work / f"model_{i}.tflite").read_bytes()
    preserve = entry["tensor"] is not None
    config = (runtime.InterpreterConfig.kPreserveAllTensors if preserve
              else runtime.InterpreterConfig.kAllocationRecording)
    interpreter = runtime.Interpreter.from_bytes(model, arena_size=entry["arena_size"],
                                                 intrepreter_config=config)
    if entry["inputs"]:
        x = np.load(work / f"inputs_{i}.npy")
    else:
        x = _random_inputs(interpreter, entry["samples"], entry["seed"])
    _progress(work, f"{i} invoke")
    outputs = []
    for k in range(len(x)):
        interpreter.set_input(x[k : k + 1], 0)
        interpreter.invoke()
        if preserve:
            tensor = interpreter.GetTensor(entry["tensor"], 0)
            out = np.asarray(tensor["tensor_data"]).reshape(tuple(tensor["shape"]))
        else:
            out = interpreter.get_output(0)
        outputs.append(np.array(out, copy=True))
    np.save(work / f"out_{i}.npy", np.concatenate(outputs) if outputs else np.zeros((0,)))
    if preserve and len(x):  # as in single mode: record the arena with a recording interpreter
        interpreter = runtime.Interpreter.from_bytes(
            model, arena_size=entry["arena_size"],
            intrepreter_config=runtime.InterpreterConfig.kAllocationRecording)
        interpreter.set_input(x[:1], 0)
        interpreter.invoke()
    interpreter.print_allocations()


def _progress(work, line):
    fd = os.open(work / "progress.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def run_batch(work, job):
    from tflite_micro.python.tflite_micro import runtime

    libc = ctypes.CDLL(None)
    saved = os.dup(1), os.dup(2)
    for entry in job["batch"]:
        i = entry["id"]
        sys.stdout.flush()
        sys.stderr.flush()
        libc.fflush(None)
        log = os.open(work / f"log_{i}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        _progress(work, f"{i} load")
        try:
            _run_one(runtime, work, entry)
        except Exception as exc:  # the parent reads the reason from log_<id>.txt
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


def main(workdir):
    from tflite_micro.python.tflite_micro import runtime

    work = Path(workdir)
    job = json.loads((work / "job.json").read_text())
    if "batch" in job:
        run_batch(work, job)
        return
    model = (work / "model.tflite").read_bytes()
    preserve = job["tensor"] is not None

    def interpreter_with(config):
        return runtime.Interpreter.from_bytes(model, arena_size=job["arena_size"],
                                              intrepreter_config=config)

    interpreter = interpreter_with(runtime.InterpreterConfig.kPreserveAllTensors if preserve
                                   else runtime.InterpreterConfig.kAllocationRecording)
    x = np.load(work / "inputs.npy")
    outputs = []
    for i in range(len(x)):
        interpreter.set_input(x[i : i + 1], 0)
        interpreter.invoke()
        if preserve:
            tensor = interpreter.GetTensor(job["tensor"], 0)
            out = np.asarray(tensor["tensor_data"]).reshape(tuple(tensor["shape"]))
        else:
            out = interpreter.get_output(0)
        outputs.append(np.array(out, copy=True))
    np.save(work / "outputs.npy", np.concatenate(outputs) if outputs else np.zeros((0,)))
    sys.stdout.flush()
    if preserve and len(x):  # reading inner tensors needs a config that does not record the arena
        interpreter = interpreter_with(runtime.InterpreterConfig.kAllocationRecording)
        interpreter.set_input(x[:1], 0)
        interpreter.invoke()
    interpreter.print_allocations()


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as exc:  # reported to the parent through stderr and the exit code
        print(f"EDGEZOO_CHILD_ERROR: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(3)
