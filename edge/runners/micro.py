"""TFLite Micro (the wheel's interpreter: TFLite Micro's C++ with reference kernels) in a child process."""
import dataclasses
import functools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgezoo.converters.micro_support import known_reasons
from edgezoo.edge.micro_ops import MICRO_UNSUPPORTED_TYPES, micro_op_table, runtime_library
from edgezoo.edge.runners.base import Batch, Runner, read_npz_list
from edgezoo.base.errors import RuntimeFailure, UnsupportedOpsError

CHILD = Path(__file__).with_name("_micro_child.py")
_ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_ARENA_LINE = re.compile(r"'([^']+)' used (\d+) bytes")
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '(\w+)'")
_FAILED_NODE = re.compile(r"Node (\w+) \(number (\d+)\w*\) failed to (prepare|invoke|init)")
_BAD_TYPE = re.compile(r"(?:Type|type) (\w+) \((\d+)\) (?:is )?not supported")
_TYPE_CHECK = re.compile(r"kernels/(\w+)\.cc:\d+ .*?\((\w+) != (\w+)\)")


# Custom operators TFLite Micro links itself (name as read_tflite gives it -> registration symbol).
MICRO_CUSTOM_OPS = {"CUSTOM:TFLM_DECODE": b"Register_DECODEEv"}  # LUT weight decompression


@functools.lru_cache(maxsize=1)
def micro_custom_ops():
    """The MICRO_CUSTOM_OPS whose kernel the installed TFLite Micro library exports."""
    data = runtime_library().read_bytes()
    return frozenset(op for op, symbol in MICRO_CUSTOM_OPS.items() if symbol in data)


def static_problems(model):
    """Operators or tensor types of ``model`` that the installed TFLite Micro lacks, with layers."""
    table = micro_op_table() | micro_custom_ops()
    problems = []
    for tensor in model.inputs:
        if tensor.dynamic:
            problems.append({"op": "input", "types": [tensor.dtype], "layer": tensor.name, "index": -1,
                             "reason": f"input shape {tensor.shape_signature} has a run-time (-1) "
                                       "dimension; TFLite Micro allocates static shapes: convert "
                                       "with every dimension fixed"})
    for op in model.operators:
        if op.op not in table:
            known = known_reasons(op.op)  # a measured case of MICRO_UNSUPPORTED says why
            problems.append({"op": op.op, "types": sorted(set(op.input_types + op.output_types)),
                             "layer": op.layer, "index": op.index,
                             "reason": f"TFLite Micro has no {op.op} kernel"
                                       + "".join(f" ({r})" for r in known)})
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

    def child_tensors(self):
        """Per output, the inner tensor the child reads instead (or None): see _micro_child."""
        return [self.readout] if self.readout is not None else [None] * len(self.model.outputs)

    def run_outputs(self, x):
        x = Batch.wrap(x)
        timeout = self.timeout or 60 + 0.5 * len(x)
        with tempfile.TemporaryDirectory(prefix="edgezoo-micro-") as tmp:
            work = Path(tmp)
            (work / "model.tflite").write_bytes(self.model_bytes)
            x.save(work / "inputs.npz")
            (work / "job.json").write_text(json.dumps({"arena_size": int(self.arena_size),
                                                       "tensors": self.child_tensors()}))
            try:
                proc = subprocess.run([sys.executable, str(CHILD), tmp], capture_output=True,
                                      text=True, timeout=timeout, env=child_env())
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
                raise self._failure(self.log)
            outputs = read_npz_list((work / "outputs.npz").read_bytes())
        self._record_arena(self.log)
        return outputs

    def _failure(self, log):
        """The error for a run that TFLite Micro refused (not a crash): missing op, bad type, ..."""
        problems = self._diagnose(log)
        if problems:
            return UnsupportedOpsError(unsupported_message(problems), problems)
        detail = [line for line in log.splitlines() if line.strip()][-3:]
        return RuntimeFailure("TFLite Micro failed: " + " | ".join(detail))

    def _record_arena(self, log):
        total, breakdown = parse_allocations(log)
        if total is not None:
            self.arena_bytes, self.arena_breakdown = total, breakdown

    def measure_arena(self):
        """Arena bytes TFLite Micro allocates for this model (recorded on one invoke)."""
        if self.arena_bytes is None:
            readout, self.readout = self.readout, None
            try:
                self.run_outputs(Batch([np.zeros(t.shape, np.dtype(t.dtype.lower()))
                                        for t in self.model.inputs]))
            finally:
                self.readout = readout
        return self.arena_bytes


@dataclasses.dataclass
class MicroResult:
    """One model of ``run_many``: its readout, or the edgezoo error it ended in.

    ``reached_invoke``: TFLite Micro built and prepared the model and began invoking it.
    """

    outputs: object = None
    error: Exception = None
    reached_invoke: bool = False


_STARTUP_S = 120  # the child's interpreter start and imports, before its first model


def run_many(runners, inputs=None, samples=1, seed=0, timeout=None, chunk_size=100):
    """Run several MicroRunners, up to ``chunk_size`` per child process: ``[MicroResult]``.

    ``inputs``: one quantized batch per runner, or None for ``samples`` seeded
    random inputs drawn in the child from each model's own input tensor.
    ``timeout`` (s) applies to each model. A crash or hang ends only the model
    that caused it; the rest run in a fresh child.
    """
    results = [None] * len(runners)
    for start in range(0, len(runners), chunk_size):
        pending = list(range(start, min(start + chunk_size, len(runners))))
        while pending:
            pending = _run_chunk(runners, inputs, samples, seed, timeout, pending, results)
    return results


def child_env():
    """The environment of a TFLite Micro child: without PYTHONFAULTHANDLER (any value turns
    Python's fault handler on), so a crash reaches the parent as the child's signal."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONFAULTHANDLER"}


def read_progress(work):
    """{model id: [stages]} from a batch child's progress.txt ("<id> load|invoke|done|error")."""
    path = work / "progress.txt"
    lines = path.read_text().split("\n") if path.exists() else []
    stages = {}
    for line in lines:
        if " " in line:
            k, stage = line.split(" ", 1)
            stages.setdefault(int(k), []).append(stage)
    return stages


def watch_child(proc, work, limit_for):
    """Wait for a batch child; kill it when the model it is on runs past ``limit_for(id)`` seconds
    (``_STARTUP_S`` before its first model). Returns (id, limit) of the hang, or None."""
    current, since = None, time.monotonic()
    while proc.poll() is None:
        time.sleep(0.02)
        running = [k for k, s in read_progress(work).items() if s[-1] in ("load", "invoke")]
        now = time.monotonic()
        if running and running[-1] != current:
            current, since = running[-1], now
        limit = _STARTUP_S if current is None else limit_for(current)
        if now - since > limit:
            proc.kill()
            proc.wait()
            return current, limit
    return None


def _run_chunk(runners, inputs, samples, seed, timeout, pending, results):
    """Run ``pending`` in one child; fill ``results``; return the ids still to run."""
    with tempfile.TemporaryDirectory(prefix="edgezoo-micro-") as tmp:
        work = Path(tmp)
        batch = []
        for k in pending:
            runner = runners[k]
            (work / f"model_{k}.tflite").write_bytes(runner.model_bytes)
            if inputs is not None:
                Batch.wrap(inputs[k]).save(work / f"inputs_{k}.npz")
            batch.append({"id": k, "arena_size": int(runner.arena_size),
                          "tensors": runner.child_tensors(), "inputs": inputs is not None,
                          "num_inputs": len(runner.model.inputs), "samples": int(samples),
                          "seed": int(seed)})
        (work / "job.json").write_text(json.dumps({"batch": batch}))
        with open(work / "child.log", "w") as log:
            proc = subprocess.Popen([sys.executable, str(CHILD), tmp], stdout=log, stderr=log,
                                    env=child_env())
        hung = watch_child(proc, work, lambda k: timeout or runners[k].timeout or 60 + 0.5 * (
            len(Batch.wrap(inputs[k])) if inputs is not None else samples))
        stages = read_progress(work)
        for k in pending:
            runner, seen = runners[k], stages.get(k, [])
            if not seen or seen[-1] not in ("done", "error"):
                continue
            text = (work / f"log_{k}.txt").read_text(errors="replace")
            runner.log = text
            reached = "invoke" in seen
            if seen[-1] == "done":
                runner._record_arena(text)
                outputs = read_npz_list((work / f"out_{k}.npz").read_bytes())
                results[k] = MicroResult(outputs[0] if len(outputs) == 1 else outputs, None, reached)
            else:
                results[k] = MicroResult(None, runner._failure(text), reached)
        started = [k for k in pending if k in stages and results[k] is None]
        if started:  # the model running when the child died or was stopped
            k = started[0]
            seen = stages[k]
            log_file = work / f"log_{k}.txt"
            runners[k].log = log_file.read_text(errors="replace") if log_file.exists() else ""
            if hung is not None and hung[0] == k:
                error = RuntimeFailure(f"TFLite Micro did not finish this model within {hung[1]:.0f} s; "
                                       "it may loop or be far too large for this check")
            elif proc.returncode < 0:
                error = RuntimeFailure(f"TFLite Micro crashed ({signal.Signals(-proc.returncode).name}) "
                                       "on this model")
            else:
                error = RuntimeFailure(f"TFLite Micro's child process exited with code {proc.returncode} "
                                       "on this model")
            results[k] = MicroResult(None, error, "invoke" in seen)
        elif not any(k in stages for k in pending):  # the child failed before its first model
            text = (work / "child.log").read_text(errors="replace")
            detail = [line for line in text.splitlines() if line.strip()][-3:]
            cause = "did not start in time" if hung else f"exited with code {proc.returncode}"
            for k in pending:
                results[k] = MicroResult(None, RuntimeFailure(
                    f"TFLite Micro's child process {cause}: " + " | ".join(detail)), False)
    return [k for k in pending if results[k] is None]
