"""Child process for TFLite Micro: a fault in its C++ kills this process, not the caller.

Usage: python _micro_child.py WORKDIR (job.json, model.tflite, inputs.npy in WORKDIR).
Writes outputs.npy; allocations are printed by TFLite Micro itself.
"""
import json
import sys
from pathlib import Path

import numpy as np


def main(workdir):
    from tflite_micro.python.tflite_micro import runtime

    work = Path(workdir)
    job = json.loads((work / "job.json").read_text())
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
