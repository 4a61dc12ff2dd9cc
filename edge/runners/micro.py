"""TFLite Micro (the wheel's interpreter: TFLite Micro's C++ with reference kernels) in a child process."""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgezoo.edge.micro_ops import MICRO_UNSUPPORTED_TYPES, micro_op_table
from edgezoo.edge.runners.base import Runner
from edgezoo.errors import RuntimeFailure, UnsupportedOpsError

CHILD = Path(__file__).with_name("_micro_child.py")
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_ARENA_LINE = re.compile(r"'([^']+)' used (\d+) bytes")
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '(\w+)'")
_FAILED_NODE = re.compile(r"Node (\w+) \(number (\d+)\w*\) failed to (prepare|invoke|init)")
_BAD_TYPE = re.compile(r"(?:Type|type) (\w+) \((\d+)\) (?:is )?not supported")
_TYPE_CHECK = re.compile(r"kernels/(\w+)\.cc:\d+ .*?\((\w+) != (\w+)\)")


def static_problems(model):
    """Operators or tensor types of ``model`` that the installed TFLite Micro lacks, with layers."""
    table = micro_op_table()
    problems = []
    for op in model.operators:
        if op.op not in table:
            problems.append({"op": op.op, "types": sorted(set(op.input_types + op.output_types)),
                             "layer": op.layer, "index": op.index,
                             "reason": f"TFLite Micro has no {op.op} kernel"})
            continue
        bad = sorted(t for t in set(op.input_types + op.output_types) if t in MICRO_UNSUPPORTED_TYPES)
        if op.input_types[:1] == ("FLOAT32",) and "INT8" in op.input_types[1:2]:
            problems.append({"op": op.op, "types": sorted(set(op.input_types)), "layer": op.layer,
                             "index": op.index, "reason": "hybrid op (float activations, int8 "
                             "weights): TFLite Micro has no hybrid kernels; quantize fully (int8)"})
        elif bad:
            problems.append({"op": op.op, "types": bad, "layer": op.layer, "index": op.index,
                             "reason": "; ".join(MICRO_UNSUPPORTED_TYPES[t] for t in bad)})
    return problems


def unsupported_message(problems, what="TFLite Micro"):
    lines = [f"  - {p['op']} ({'/'.join(p['types'])}) from layer {p['layer']!r}: {p['reason']}"
             for p in problems]
    return (f"{what} cannot run this model:\n" + "\n".join(lines) +
            "\nRewrite those layers (edgezoo.converters rewrites), change their activation, "
            "or quantize differently.")


def check_micro_ops(model):
    """Raise UnsupportedOpsError naming each missing op or type and its layer."""
    problems = static_problems(model)
    if problems:
        raise UnsupportedOpsError(unsupported_message(problems), problems)


def parse_allocations(text):
    """Arena total and its breakdown by category from TFLite Micro's allocation record."""
    total = _ARENA_TOTAL.search(text)
    breakdown = {name: int(n) for name, n in _ARENA_LINE.findall(text)}
    return (int(total.group(1)) if total else None), breakdown


class MicroRunner(Runner):
    """Runs each sample through TFLite Micro in a child process with a time limit."""

    name = "tflite-micro"

    def __init__(self, model_bytes, model, arena_size=None, timeout=None, check_ops=True):
        super().__init__(model_bytes, model)
        if check_ops:
            check_micro_ops(model)
        self.arena_size = arena_size or max(4 * 1024 * 1024, 10 * len(self.model_bytes))
        self.timeout = timeout
        self.arena_bytes = None
        self.arena_breakdown = {}
        self.log = ""

    def _diagnose(self, log):
        problems = []
        for op in _MISSING_OP.findall(log):
            layers = sorted({o.layer for o in self.model.operators if o.op == op})
            problems.append({"op": op, "types": [], "layer": ", ".join(layers),
                             "reason": f"TFLite Micro has no {op} kernel"})
        for match in _FAILED_NODE.finditer(log):
            op_name, index, stage = match.group(1), int(match.group(2)), match.group(3)
            op = self.model.operators[index] if index < len(self.model.operators) else None
            types = sorted(set(op.input_types + op.output_types)) if op else []
            bad = _BAD_TYPE.findall(log)
            check = _TYPE_CHECK.search(log)
            before = log[: match.start()].strip().splitlines()
            kernel_line = before[-1] if before and "kernels/" in before[-1] else ""
            if check:
                reason = (f"its kernel ({check.group(1)}.cc) does not accept {check.group(2)} "
                          f"(it requires {check.group(3)}) and failed to {stage}")
            elif bad:
                reason = f"its kernel does not support type {', '.join(t for t, _ in bad)}"
            elif kernel_line:
                reason = f"its kernel refused it: {kernel_line.split('kernels/')[-1]}"
            else:
                reason = f"its kernel failed to {stage}"
            problems.append({"op": op_name, "types": types, "layer": op.layer if op else "?",
                             "reason": reason})
        return problems

    def run_raw(self, x):
        timeout = self.timeout or 60 + 0.5 * len(x)
        with tempfile.TemporaryDirectory(prefix="edgezoo-micro-") as tmp:
            work = Path(tmp)
            (work / "model.tflite").write_bytes(self.model_bytes)
            np.save(work / "inputs.npy", x)
            (work / "job.json").write_text(json.dumps({"arena_size": int(self.arena_size),
                                                       "tensor": self.readout}))
            env = {**os.environ, "PYTHONFAULTHANDLER": "0"}
            try:
                proc = subprocess.run([sys.executable, str(CHILD), tmp], capture_output=True,
                                      text=True, timeout=timeout, env=env)
            except subprocess.TimeoutExpired:
                raise RuntimeFailure(
                    f"TFLite Micro did not finish {len(x)} inference(s) within {timeout:.0f} s; "
                    "the model may loop or be far too large for this check"
                ) from None
            self.log = proc.stdout + proc.stderr
            if proc.returncode < 0:
                sig = signal.Signals(-proc.returncode).name
                raise RuntimeFailure(
                    f"TFLite Micro crashed ({sig}) on this model. It does not verify flatbuffers: "
                    "load the model through edgezoo.edge.loader.load_tflite first"
                )
            if proc.returncode != 0:
                problems = self._diagnose(self.log)
                if problems:
                    raise UnsupportedOpsError(unsupported_message(problems), problems)
                detail = [line for line in self.log.splitlines() if line.strip()][-3:]
                raise RuntimeFailure("TFLite Micro failed: " + " | ".join(detail))
            outputs = np.load(work / "outputs.npy")
        total, breakdown = parse_allocations(self.log)
        if total is not None:
            self.arena_bytes, self.arena_breakdown = total, breakdown
        return outputs

    def measure_arena(self):
        """Arena bytes TFLite Micro allocates for this model (recorded on one invoke)."""
        if self.arena_bytes is None:
            readout, self.readout = self.readout, None
            try:
                shape = self.model.inputs[0].shape
                dtype = np.dtype(self.model.inputs[0].dtype.lower().replace("float32", "float32"))
                self.run_raw(np.zeros(shape, dtype))
            finally:
                self.readout = readout
        return self.arena_bytes
