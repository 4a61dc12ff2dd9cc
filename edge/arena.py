"""The smallest TFLite Micro arena a model needs, found by bisection, and the header constant.

TFLite Micro's recorded "Arena allocation total" (``print_allocations``, what
``MicroRunner.measure_arena`` reports) is what the arena holds after Prepare,
not the most it needed during Prepare: kernels take temporary (per-channel
quantization, scratch) buffers there that are freed again. An int8 MLP
autoencoder as 1x1 CONV_2D records 18,128 B but fails CONV_2D Prepare below
25,168 B. So the arena a firmware must reserve is found by trying sizes:
``minimum_arena`` bisects for the smallest one that prepares the model and
runs it, and ``arena_summary`` puts it beside the recorded figure and the
constant the C header gets.
"""
import json
import math
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgezoo.converters.c_export import ALIGNMENT, ARENA_MARGIN, arena_constant
from edgezoo.edge.runners.base import Batch, InputError
from edgezoo.edge.runners.micro import CHILD, MicroRunner, child_env
from edgezoo.base.errors import RuntimeFailure

PROBE_TIMEOUT_S = 60  # one prepare and invoke(s) at one arena size
HOST_NOTE = ("Arena sizes are measured on this 64-bit host: a 32-bit microcontroller's pointers "
             "(and so TFLite Micro's tensor and node structs) are smaller, so its arena is a bit "
             "smaller; the host figure is an upper bound in practice.")


def _align_up(n, alignment=ALIGNMENT):
    return int(math.ceil(n / alignment) * alignment)


def _bounds(model_bytes, recorded, alignment):
    """(low, high, max) to bracket the minimum: around ``recorded`` when known."""
    top = _align_up(max(256 * 1024 * 1024, 20 * len(model_bytes)), alignment)
    if recorded:
        return recorded // 2 // alignment * alignment, _align_up(2 * recorded + 1024, alignment), top
    return 0, _align_up(max(64 * 1024, 4 * len(model_bytes)), alignment), top


def _run_child(model_bytes, sample, job, timeout):
    """Run the arena child on ``job`` (see _micro_child.find_min_arena); its min_arena.json."""
    x = Batch.wrap(sample)
    if any(a.ndim == 0 for a in x.arrays):
        raise ValueError("sample: one or more samples of every input, batch first")
    with tempfile.TemporaryDirectory(prefix="edgezoo-arena-") as tmp:
        work = Path(tmp)
        (work / "model.tflite").write_bytes(bytes(model_bytes))
        x.save(work / "inputs.npz")
        (work / "arena_job.json").write_text(json.dumps({**job, "probe_timeout": PROBE_TIMEOUT_S}))
        try:
            proc = subprocess.run([sys.executable, str(CHILD), tmp], capture_output=True,
                                  text=True, timeout=timeout, env=child_env())
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(
                f"the TFLite Micro arena search did not finish within {timeout:.0f} s"
            ) from None
        log = proc.stdout + proc.stderr
        if proc.returncode < 0:
            raise RuntimeFailure(
                f"the TFLite Micro arena search crashed ({signal.Signals(-proc.returncode).name}); "
                "load the model through edgezoo.edge.loader.load_tflite first"
            )
        result = work / "min_arena.json"
        if proc.returncode != 0 or not result.exists():
            detail = [line for line in log.splitlines() if line.strip()][-3:]
            raise RuntimeFailure("the TFLite Micro arena search failed: " + " | ".join(detail))
        return json.loads(result.read_text())


def bisect_arena(model_bytes, sample, low=None, high=None, recorded=None, alignment=ALIGNMENT,
                 timeout=None):
    """Run the bisection child; returns its report {"minimum", "alignment", "probes"}.

    ``probes``: [size, "ok" | "fail" | "crash" | "timeout", last log line] in the
    order tried. ``minimum`` is None when no size up to the child's limit worked.
    ``low`` (assumed failing; checked, halved while it works) and ``high``
    (checked; doubled while it fails) default to a bracket around ``recorded``.
    """
    d_low, d_high, top = _bounds(bytes(model_bytes), recorded, alignment)
    low = d_low if low is None else int(low)
    high = d_high if high is None else int(high)
    job = {"low": low, "high": high, "max": max(top, high), "alignment": int(alignment)}
    return _run_child(model_bytes, sample, job, timeout or 120 + 2 * PROBE_TIMEOUT_S)


def probe_arenas(model_bytes, sample, sizes, timeout=None):
    """Try each arena size once, each in its own forked process: {size: (status, detail)}.

    status: "ok" (prepared and invoked), "fail" (TFLite Micro raised), "crash" or
    "timeout"; detail: the probe's last log line.
    """
    job = {"sizes": [int(s) for s in sizes], "alignment": ALIGNMENT}
    report = _run_child(model_bytes, sample, job, timeout or 60 + PROBE_TIMEOUT_S * len(sizes))
    return {size: (status, detail) for size, status, detail in report["probes"]}


def minimum_arena(model_bytes, sample, recorded=None, timeout=None):
    """Smallest arena (bytes, a multiple of 16) with which TFLite Micro prepares the model
    and invokes it on ``sample``: that size works and 16 bytes less fails.

    ``sample``: already-quantized input 0 in the model's input dtype, shaped as the
    input (batch first; several rows are each invoked). ``recorded``: the recorded
    arena total, if measured, to start the search near it (about 12-16 probes).
    The search runs in one child process that forks each probe, since a too-small
    arena can crash TFLite Micro rather than fail cleanly; it raises RuntimeFailure
    if the child crashes or times out, or if no arena size lets the model run.
    """
    return _minimum(bisect_arena(model_bytes, sample, recorded=recorded, timeout=timeout))


def _minimum(report):
    if report["minimum"] is None:
        last = report["probes"][-1] if report["probes"] else [None, "", ""]
        raise RuntimeFailure(
            f"TFLite Micro could not prepare and run this model with any arena up to {last[0]} B "
            f"({last[1]}: {last[2]}); the failure is not the arena size"
        )
    return int(report["minimum"])


def default_sample(parsed):
    """Zeros for every input (shape and dtype of each), as MicroRunner.measure_arena uses."""
    return Batch([np.zeros(tuple(d.shape), np.dtype(d.dtype.lower())) for d in parsed.inputs])


def arena_summary(model_bytes, parsed, sample=None, recorded=None, margin=ARENA_MARGIN, timeout=None):
    """Recorded and minimum arena for ``parsed`` (a TFLiteModel of ``model_bytes``), and the
    header constant: a dict for reports and ``c_export.render_header``.

    ``recorded``: the recorded total if already measured (else measured here with
    MicroRunner). ``sample``: as for ``minimum_arena``; None: zeros. ``probes``:
    how many arena sizes the bisection tried.
    ``header_constant`` = arena_bytes x (1 + margin), rounded up to 16, where
    arena_bytes = max(recorded, minimum); so minimum <= header_constant <
    arena_bytes x (1 + margin) + 16.
    """
    if recorded is None:
        recorded = MicroRunner(model_bytes, parsed, check_ops=False).measure_arena()
    sample = default_sample(parsed) if sample is None else Batch.wrap(sample)
    if len(sample.arrays) != len(parsed.inputs):
        raise InputError(f"arena_summary: {len(sample.arrays)} input array(s); the model has "
                         f"{len(parsed.inputs)} inputs")
    for k, (a, details) in enumerate(zip(sample.arrays, parsed.inputs)):
        if (a.dtype != np.dtype(details.dtype.lower()) or a.ndim != len(details.shape)
                or a.shape[1:] != tuple(details.shape[1:])):
            raise InputError(f"arena_summary: sample of shape {a.shape} and dtype {a.dtype}; "
                             f"the model's input {k} is {tuple(details.shape)} "
                             f"{details.dtype.lower()} (quantize it first, e.g. with "
                             "Runner.prepare_inputs)")
    report = bisect_arena(model_bytes, sample, recorded=recorded, timeout=timeout)
    minimum = _minimum(report)
    arena_bytes = max(recorded or 0, minimum)
    return {
        "recorded_bytes": recorded,
        "minimum_bytes": minimum,
        "arena_bytes": arena_bytes,
        "header_constant": arena_constant(arena_bytes, margin),
        "margin": margin,
        "alignment": ALIGNMENT,
        "probes": len(report["probes"]),
        "note": (f"recorded: TFLite Micro's arena allocation total after Prepare; minimum: the "
                 f"smallest arena (multiple of {ALIGNMENT} B) that prepares and invokes the "
                 f"model, by bisection; the header reserves max(recorded, minimum) "
                 f"+{margin:.0%}. " + HOST_NOTE),
    }
