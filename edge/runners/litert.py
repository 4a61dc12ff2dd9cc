"""LiteRT (the maintained TensorFlow Lite runtime) with its default or reference kernels.

``LiteRTRunner`` runs in this process (for timing and trusted models);
``IsolatedLiteRTRunner`` runs the same interpreter in a worker process, so a model
that passed the loader's verifier and then crashes a kernel or the XNNPACK delegate
at allocate or invoke ends that worker, not the caller. ``edgezoo.edge.verify``
uses the isolated one.
"""
import atexit
import hashlib
import json
import re
import select
import signal
import subprocess
import warnings

import numpy as np

from edgezoo.edge.runners.base import Batch, Runner, read_npz_list
from edgezoo.edge.runners.worker import WorkerProcess
from edgezoo.base.errors import RuntimeFailure

RESOLVERS = ("default", "builtin", "reference")
KERNELS = {"default": "default kernels (XNNPACK)", "builtin": "optimized kernels without XNNPACK",
           "reference": "reference kernels (BUILTIN_REF)"}


class LiteRTRunner(Runner):
    """``resolver='default'`` uses the optimized kernels with XNNPACK; ``'builtin'`` the
    optimized kernels without it; ``'reference'`` uses BUILTIN_REF, whose integer arithmetic
    TFLite Micro reproduces."""

    def __init__(self, model_bytes, model, resolver="default", num_threads=1):
        super().__init__(model_bytes, model)
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        if resolver not in RESOLVERS:
            raise ValueError(f"resolver must be one of {RESOLVERS}, got {resolver!r}")
        self.name = f"litert-{resolver}"
        kind = {"default": OpResolverType.AUTO, "reference": OpResolverType.BUILTIN_REF,
                "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}[resolver]
        with warnings.catch_warnings():  # preserving tensors is how we read pre-softmax logits
            warnings.simplefilter("ignore", UserWarning)
            self.interpreter = Interpreter(
                model_content=self.model_bytes, num_threads=num_threads,
                experimental_op_resolver_type=kind,
                experimental_preserve_all_tensors=self.preserve,
            )
        self.interpreter.allocate_tensors()
        self._inputs = [d["index"] for d in self.interpreter.get_input_details()]
        self._outputs = list(self.readouts) if self.readouts != (None,) else [
            d["index"] for d in self.interpreter.get_output_details()]

    def invoke_all(self, sample):
        """One batch-1 inference on already-quantized inputs (one array each): every readout."""
        for index, value in zip(self._inputs, sample):
            self.interpreter.set_tensor(index, value)
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(j) for j in self._outputs]

    def invoke(self, sample):
        """One batch-1 inference on an already-quantized sample (a one-input model's array,
        or one array per input): the first readout."""
        return self.invoke_all(sample if isinstance(sample, (list, tuple)) else [sample])[0]

    def run_outputs(self, x):
        x = Batch.wrap(x)
        runs = [self.invoke_all(x.sample(i)) for i in range(len(x))]
        return [np.concatenate([r[k] for r in runs]) for k in range(len(self._outputs))]


class LiteRTRefusal(RuntimeFailure):
    """LiteRT refused a model (an error at build, allocate or invoke) or crashed or hung on it.

    ``stage``: "build", "allocate", "invoke", "crash" or "hang"; ``reason``: one line.
    """

    def __init__(self, resolver, stage, reason):
        self.resolver, self.stage, self.reason = resolver, stage, reason
        what = f"LiteRT's {KERNELS[resolver]}"
        if stage in ("crash", "hang"):
            super().__init__(f"{what} {self.detail} on this model")
        else:
            super().__init__(f"{what} refused this model at {stage}: {reason}")

    @property
    def detail(self):
        """What happened, naming neither the kernels nor the model: "refused at allocate: ..."."""
        if self.stage == "crash":
            return f"crashed ({self.reason}, in the worker process)"
        if self.stage == "hang":
            return f"did not finish ({self.reason})"
        return f"refused at {self.stage}: {self.reason}"


# The worker: one interpreter per (model, resolver, threads, preserve), the last few kept. A job is
# a JSON line then the model's bytes and the inputs as .npy (none: build and allocate only); the
# reply a JSON line then the outputs as .npy. No pickle either way.
_WORKER = r"""
import io, json, os, sys, warnings
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
KINDS = {"default": OpResolverType.AUTO, "reference": OpResolverType.BUILTIN_REF,
         "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
replies = os.fdopen(os.dup(1), "wb", buffering=0)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
cache = {}
def reply(head, payload=b""):
    replies.write(json.dumps(head).encode() + b"\n" + payload)
while True:
    line = sys.stdin.buffer.readline()
    if not line:
        break
    job = json.loads(line)
    model = sys.stdin.buffer.read(job["model_len"])
    raw = sys.stdin.buffer.read(job["inputs_len"])
    key = (job["key"], job["resolver"], job["num_threads"], job["preserve"])
    stage = "build"
    try:
        if key not in cache:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                interpreter = Interpreter(model_content=model, num_threads=job["num_threads"],
                                          experimental_op_resolver_type=KINDS[job["resolver"]],
                                          experimental_preserve_all_tensors=job["preserve"])
            stage = "allocate"
            interpreter.allocate_tensors()
            if len(cache) >= 4:
                cache.pop(next(iter(cache)))
            cache[key] = interpreter
        interpreter = cache[key]
        if not raw:
            reply({"ok": True, "nbytes": 0})
            continue
        stage = "invoke"
        ins = [d["index"] for d in interpreter.get_input_details()]
        outs = job["outputs"] or [d["index"] for d in interpreter.get_output_details()]
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            xs = [z[str(j)] for j in range(len(z.files))]
        outputs = [[] for _ in outs]
        for i in range(len(xs[0])):
            for j, x in zip(ins, xs):
                interpreter.set_tensor(j, x[i : i + 1])
            interpreter.invoke()
            for k, j in enumerate(outs):
                outputs[k].append(np.array(interpreter.get_tensor(j), copy=True))
        buf = io.BytesIO()
        np.savez(buf, **{str(k): np.concatenate(o) for k, o in enumerate(outputs)})
        reply({"ok": True, "nbytes": len(buf.getvalue())}, buf.getvalue())
    except Exception as exc:
        cache.pop(key, None)
        reply({"ok": False, "stage": stage, "error": str(exc)})
"""
_STARTUP_S = 60


def _one_line(text, limit=400):
    """LiteRT's error reporter joins its messages without a separator: one line, "; " between."""
    text = " ".join(str(text).split())
    text = re.sub(r"(?<=\S)(?=Node number \d|unsupported |failed to create )", "; ", text)
    text = text.rstrip(".")
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Worker(WorkerProcess):
    """The long-lived LiteRT worker process; it is restarted after a crash or a hang."""

    def __init__(self):
        super().__init__(_WORKER)

    def _read(self, n):
        chunks, left = [], n
        while left:
            chunk = self.proc.stdout.read(left)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def run(self, job, model, inputs, timeout):
        """(reply header, payload bytes), or ("crash", signal) / ("hang", seconds)."""
        with self.lock:
            started = self.ensure()
            proc = self.proc
            head = dict(job, model_len=len(model), inputs_len=len(inputs))
            try:
                proc.stdin.write(json.dumps(head).encode() + b"\n" + model + inputs)
                limit = timeout + (_STARTUP_S if started else 0)
                line = proc.stdout.readline() if select.select([proc.stdout], [], [], limit)[0] else None
                if line is None:
                    self.kill()
                    return "hang", limit
                reply = json.loads(line) if line else None
                payload = self._read(reply["nbytes"]) if reply and reply.get("nbytes") else b""
            except (BrokenPipeError, OSError, EOFError, ValueError):
                reply = None
            if reply is None:
                self.proc = None
                try:  # it is dying (its pipe closed first) ...
                    code = proc.wait(timeout=10)
                except subprocess.TimeoutExpired:  # ... or alive with an unreadable reply: stop it
                    proc.kill()
                    proc.wait()
                    return "crash", "an unreadable reply"
                return "crash", signal.Signals(-code).name if code < 0 else f"exit code {code}"
            return reply, payload


_worker = _Worker()
atexit.register(_worker.close)


class IsolatedLiteRTRunner(Runner):
    """LiteRT as ``LiteRTRunner``, in a worker process: a refusal, crash or hang there raises
    ``LiteRTRefusal`` (an EdgezooError) here. Building it builds and allocates the interpreter,
    so a model the kernels refuse at prepare is refused here; ``run_raw`` may still refuse at
    invoke. ``timeout`` (s) per call; by default 120 s plus 1 s per sample, so only a hang
    (a kernel looping on a corrupted model) reaches it."""

    def __init__(self, model_bytes, model, resolver="default", num_threads=1, timeout=None):
        super().__init__(model_bytes, model)
        if resolver not in RESOLVERS:
            raise ValueError(f"resolver must be one of {RESOLVERS}, got {resolver!r}")
        self.resolver, self.name, self.timeout = resolver, f"litert-{resolver}", timeout
        self._job = {"key": hashlib.sha1(self.model_bytes).hexdigest(), "resolver": resolver,
                     "num_threads": int(num_threads), "preserve": self.preserve,
                     "outputs": [int(j) for j in self.readouts if j is not None] or None}
        self._call(None)

    def _call(self, x):
        inputs = b"" if x is None else x.to_bytes()
        timeout = self.timeout or 120 + 1.0 * (0 if x is None else len(x))  # a hang, not slowness
        reply, payload = _worker.run(self._job, self.model_bytes, inputs, timeout)
        if reply == "crash":
            raise LiteRTRefusal(self.resolver, "crash", payload)
        if reply == "hang":
            raise LiteRTRefusal(self.resolver, "hang", f"stopped after {payload:.0f} s")
        if not reply["ok"]:
            raise LiteRTRefusal(self.resolver, reply["stage"], _one_line(reply["error"]))
        return read_npz_list(payload) if payload else None

    def invoke(self, sample):
        """One batch-1 inference (through the worker: not for timing)."""
        return self.run_raw(sample)

    def run_outputs(self, x):
        x = Batch.wrap(x)
        if len(x) == 0:
            raise ValueError("no samples to run")
        return self._call(x)
