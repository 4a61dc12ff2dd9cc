"""The one verification path: does a .tflite run on a board, fit it, and agree with its float model?

``edgezoo convert``, ``edgezoo test``, the demo and the pytest plugin all call
``verify``; its gates and their defaults live here (``Thresholds``), and every
result lists the thresholds it used. What is compared with what:

- TFLite Micro against LiteRT's reference kernels, op by op on identical inputs
  (``edge.op_compare``): bit-exact, except at ops whose two reference kernels are
  known to requantize differently (``OP_TOLERANCE_LSB``); the first op over its
  tolerance is named. The end-to-end difference is reported, not gated: a 1-LSB
  difference at one FULLY_CONNECTED can grow through a deep graph without any fault.
- LiteRT's default kernels (XNNPACK) against TFLite Micro: the task's measure, on data.
- On a LiteRT board (rpi4): LiteRT's default kernels against its reference ones, every output:
  on data by the task's measure (they round differently, and the difference grows through a deep
  graph: a trained int8 ViT drifts 10-20 LSB at its logits while both agree on the class), the
  end-to-end LSB reported; on seeded random inputs, which carry no classes, by the LSB.
- The converted model against the float model on held-out data: the task's agreement
  measure (``edgezoo.zoo.tasks``: top-1 for a classifier, per-query class and box IoU for a
  detector, next-token top-1 for a language model, hidden-state cosine for an encoder) and
  every named output's error, marked uninformative (and failed) when the float outputs
  cannot tell a good model from a bad one (one class for nearly every sample, constant, or
  NaN).

Models have N named inputs and outputs of any dtype: samples are an array (one input), a
list in input order or a dict by input name; int32 token ids pass as they are.
- The arena: TFLite Micro's recorded total and the smallest arena it really
  prepares and invokes with (bisected), the larger one budgeted.

LiteRT runs in a worker process (``IsolatedLiteRTRunner``), TFLite Micro in child
processes: a model that passed the loader and then crashes a kernel or a delegate
ends that process, not the caller. When LiteRT's default kernels (XNNPACK) refuse a
model (an error at allocate or invoke, a crash or a hang; bit-flipped zero points
do it) the result records ``runtimes["default"] = {"available": False, "reason": ...}``
and the reference kernels are still compared. On a LiteRT board that FAILS the
verdict (check ``litert_default_kernels``): the default kernels are what the board
runs, so it cannot run the model. On a TFLite Micro board it is a note in
``notes``, not a failure: the board never runs XNNPACK. When LiteRT's reference
kernels refuse a model, nothing can be checked against them: ``verify`` raises
``LiteRTRefusal`` (an EdgezooError), as it does when TFLite Micro refuses one.
Every caller (``edgezoo test``, ``edge_check``) gets the same verdict from here.
"""
import dataclasses

import numpy as np

from edgezoo.base.errors import EdgezooError


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Default gates; override any of them with ``replace`` (reports say which were used)."""

    top1_agreement: float = 0.98  # converted vs float model, top-1, held-out samples
    query_class_agreement: float = 0.95  # detection: per-query arg-max class, converted vs float
    box_iou: float = 0.90  # detection: mean IoU of the boxes of the queries the float model keeps
    next_token_top1: float = 0.95  # causal language models: next-token arg-max, per position
    hidden_cosine: float = 0.99  # encoders: cosine of each unmasked token's hidden state
    pooled_cosine: float = 0.99  # encoders: cosine of the pooled vector
    default_vs_micro_top1: float = 0.99  # XNNPACK vs TFLite Micro, top-1, on data only
    max_lsb_default: int = 8  # LiteRT boards, random inputs: default vs reference kernels, end to end
    default_vs_reference_top1: float = 0.99  # LiteRT boards, data: default vs reference, task measure
    max_top_class_share: float = 0.90  # float model's top class on more samples: uninformative
    min_output_std: float = 1e-6  # float outputs flatter than this: uninformative
    min_classes_used: float = 0.5  # share of the classes each top-1 on >= 1 % of samples
    max_estimated_ms: float = None  # optional bound on the latency estimate
    per_op_samples: int = 8  # samples each op is compared on

    def replace(self, **overrides):
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise EdgezooError(f"unknown thresholds {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def as_dict(self):
        return dataclasses.asdict(self)


DEFAULT_THRESHOLDS = Thresholds()


def lut_compressed(model):
    """Whether a parsed model decodes LUT-compressed weights at run time (TFLite Micro only)."""
    return any(op.op == "CUSTOM:TFLM_DECODE" for op in model.operators)


def top1(outputs):
    return np.asarray(outputs).reshape(len(outputs), -1).argmax(-1)


def random_inputs(details, samples, seed, token_range=None):
    """Seeded inputs in the model's own input type: every integer value of a quantized
    input, token ids in ``token_range`` (default [0, 2)) for an int32 one, or standard
    normal floats. ``details``: one input's TensorDetails, or all of a model's (a list)."""
    if isinstance(details, (list, tuple)):
        rng = np.random.default_rng(seed)
        return [_random_input(d, samples, rng, token_range) for d in details]
    return _random_input(details, samples, np.random.default_rng(seed), token_range)


def _random_input(details, samples, rng, token_range):
    shape = (samples, *details.shape[1:])
    if details.dtype in ("INT8", "INT16", "UINT8") and details.scale:
        info = np.iinfo(np.dtype(details.dtype.lower()))
        return rng.integers(info.min, int(info.max) + 1, shape).astype(info.dtype)
    if details.dtype in ("INT32", "INT64", "INT8", "INT16", "UINT8"):
        low, high = token_range or (0, 2)
        return rng.integers(low, high, shape).astype(np.dtype(details.dtype.lower()))
    return rng.standard_normal(shape).astype(np.float32)


def _as_list(outputs):
    """Float outputs as a list of arrays, one per output."""
    if isinstance(outputs, dict):
        return [np.asarray(v) for v in outputs.values()]
    if isinstance(outputs, (list, tuple)):
        return [np.asarray(v) for v in outputs]
    return [np.asarray(outputs)]


def uninformative_reasons(float_outputs, thresholds=DEFAULT_THRESHOLDS, task=None):
    """Why agreement with these float outputs would say nothing ([] when it says something):
    NaN or constant outputs for any task, and the task's own reasons (a classifier whose
    top-1 is one class for nearly every sample, ...)."""
    from edgezoo.zoo.tasks import CLASSIFICATION

    task = task or CLASSIFICATION
    outs = _as_list(float_outputs)
    reasons = []
    for k, out in enumerate(outs):
        y = np.asarray(out, np.float64).reshape(len(out), -1)
        what = "outputs" if len(outs) == 1 else f"output {k}"
        if np.isnan(y).any():
            return [f"the float model's {what} contain NaN"]
        if float(y.std()) < thresholds.min_output_std:
            reasons.append(f"the float model's {what} are constant (std {y.std():.2g} < "
                           f"{thresholds.min_output_std:g})")
    if task.uninformative is not None:
        reasons.extend(task.uninformative(outs, thresholds))
    return reasons


def tensor_errors(float_outputs, converted, details):
    """Per named output: the converted model's error against the float one, relative to the
    float output's spread (every output tensor is compared, not only the first)."""
    from edgezoo.zoo.tasks.measures import logit_error

    rows = []
    for k, (f, c, d) in enumerate(zip(float_outputs, converted, details)):
        err = logit_error(f, c)
        rows.append({"output": k, "tensor": d.name, "dtype": d.dtype.lower(),
                     "shape": list(d.shape), "float_std": float(np.asarray(f).std()), **err})
    return rows


def _check(value, limit, passed, **detail):
    return {"value": value, "limit": limit, "passed": bool(passed), **detail}


DEFAULT_UNAVAILABLE = ("LiteRT default kernels (XNNPACK) unavailable for this model: {reason}; "
                       "reference kernels still compared")


def _default_litert(tflite, parsed, xq):
    """LiteRT's default kernels (XNNPACK) on ``xq``, in the worker process: (outputs, None), or
    (None, reason) when they refuse the model at allocate or invoke, or crash or hang on it."""
    from edgezoo.edge.runners.litert import IsolatedLiteRTRunner, LiteRTRefusal

    try:
        return IsolatedLiteRTRunner(tflite, parsed, "default").run_outputs(xq), None
    except LiteRTRefusal as exc:
        return None, exc.detail


def _reference_litert(tflite, parsed, x, what, names=None):
    """LiteRT's reference kernels on ``x``, in the worker process: (runner, quantized x, outputs).
    When they refuse the model, nothing checks ``what`` against them: a LiteRTRefusal, which is
    an EdgezooError (``edgezoo test`` exits 2, ``edge_check`` fails naming it)."""
    from edgezoo.edge.runners.litert import IsolatedLiteRTRunner, LiteRTRefusal

    try:
        runner = IsolatedLiteRTRunner(tflite, parsed, "reference")
        xq = runner.prepare_batch(x, names)
        return runner, xq, runner.run_outputs(xq)
    except LiteRTRefusal as exc:
        exc.args = (f"{exc}; nothing to compare {what} with",)
        raise


def _runtime_agreement(a, b, parsed, task, xq):
    """Two runtimes' raw outputs compared by the task's primary measure (top-1 for a
    classifier): (the share on which they agree, the measure's name)."""
    from edgezoo.converters.tflite_model import dequantize_output

    if task.name == "classification":
        return float((top1(a[0]) == top1(b[0])).mean()), "top-1"
    details = [parsed.tensors[j] for j in parsed.readout_tensors()]
    fa = [dequantize_output(o, d) for o, d in zip(a, details)]
    fb = [dequantize_output(o, d) for o, d in zip(b, details)]
    measured = task.measure(fa, fb, xq.arrays)
    return float(measured["value"]), measured.get("measure", task.name)


def _micro_checks(tflite, parsed, x, result, checks, th, lsb_model, micro_runner, op_micro,
                  real_data, task, names):
    """TFLite Micro: its outputs, arena (recorded and bisected) and the per-op gate."""
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.arena import arena_summary
    from edgezoo.edge.op_compare import compare_ops
    from edgezoo.edge.runners.micro import MicroRunner, check_micro_ops

    check_micro_ops(parsed)
    micro = micro_runner or MicroRunner(tflite, parsed)
    xq = micro.prepare_batch(x, names)
    out = micro.run_outputs(xq)
    result["arena"] = arena_summary(tflite, parsed, xq[:1], recorded=micro.arena_bytes)
    result["arena_bytes"] = result["arena"]["arena_bytes"]
    result["arena_breakdown"] = micro.arena_breakdown
    runtimes = result["runtimes"] = {}
    lut = lut_compressed(parsed)
    if lut and lsb_model is None:
        runtimes["per_op"] = ("not run: LUT-compressed (DECODE operators), which LiteRT has no kernel "
                              "for; verify the uncompressed .tflite for the per-op gate")
    else:
        lsb_bytes = tflite if lsb_model is None else lsb_model
        lsb_parsed = parsed if lsb_model is None else read_tflite(lsb_bytes)
        # compare_ops runs LiteRT in this process: the whole model first in the worker, so a
        # model its reference kernels refuse or crash on is named here instead
        _reference_litert(lsb_bytes, lsb_parsed, xq[: th.per_op_samples],
                          "TFLite Micro's per-op results")
        per_op = compare_ops(lsb_bytes, lsb_parsed, xq[: th.per_op_samples], micro=op_micro)
        if lsb_model is not None:
            per_op["model"] = "the same model before LUT compression (lossless)"
        result["per_op"] = per_op
        runtimes["micro_vs_reference_max_lsb_end_to_end"] = per_op["end_to_end"]["max_lsb"]
        worst = max((r["max_lsb"] for r in per_op["ops"] if r.get("max_lsb") is not None), default=0)
        first = per_op.get("first_failure")
        checks["micro_vs_reference_per_op"] = _check(
            worst, "per-op table: 0 LSB, except " + ", ".join(
                f"{op} {lsb}" for op, lsb in per_op.get("tolerances", {}).items())
            + "".join(f"; {a['op']} {a['index']} judged by its NumPy derivation (LiteRT off by "
                      f"{a['arbitrated']['reference_vs_micro_lsb']})"
                      for a in per_op.get("arbitrated", [])),
            per_op["passed"], first_failure=first, samples=per_op.get("samples"))
    if not lut:
        default, refusal = _default_litert(tflite, parsed, xq)
        runtimes["default"] = {"available": default is not None, "reason": refusal}
        if default is None:  # not what a microcontroller runs: a fact, not a failure
            result["notes"].append(DEFAULT_UNAVAILABLE.format(reason=refusal))
        else:
            agree, measure = _runtime_agreement(default, out, parsed, task, xq)
            runtimes["default_vs_micro_top1"], runtimes["runtime_measure"] = agree, measure
            if real_data:  # on random inputs top-1 is a coin toss between near-equal logits
                checks["default_vs_micro_top1"] = _check(agree, th.default_vs_micro_top1,
                                                         agree >= th.default_vs_micro_top1,
                                                         measure=measure)
    else:
        runtimes["litert"] = ("not run: LUT-compressed (DECODE operators), which LiteRT has no "
                              "kernel for")
    return out, micro.name, xq


def _litert_checks(tflite, parsed, x, result, checks, th, names, real_data, task):
    """A LiteRT board: its default kernels against the reference ones, end to end. The default
    kernels are what the board runs: when they refuse the model, that check fails."""
    reference_runner, xq, reference = _reference_litert(tflite, parsed, x,
                                                        "LiteRT's default kernels", names)
    runtimes = result["runtimes"] = {}
    out, refusal = _default_litert(tflite, parsed, xq)
    runtimes["default"] = {"available": out is not None, "reason": refusal}
    if out is None:
        checks["litert_default_kernels"] = _check(False, True, False, reason=refusal)
        return reference, reference_runner.name, xq
    quantized = [(o, r) for o, r, d in zip(out, reference, reference_runner.outputs_details)
                 if o.dtype.kind in "iu" and d.scale]  # int32 outputs (ids) are not requantized
    if quantized:
        lsb = max(int(np.abs(o.astype(np.int64) - r.astype(np.int64)).max()) for o, r in quantized)
        runtimes["default_vs_reference_max_lsb"] = lsb
        if not real_data:  # no classes to agree on: the raw difference is the check
            checks["default_vs_reference_lsb"] = _check(lsb, th.max_lsb_default,
                                                        lsb <= th.max_lsb_default)
    agree, measure = _runtime_agreement(out, reference, parsed, task, xq)
    runtimes["default_vs_reference_top1"], runtimes["runtime_measure"] = agree, measure
    if real_data:
        checks["default_vs_reference_top1"] = _check(agree, th.default_vs_reference_top1,
                                                     agree >= th.default_vs_reference_top1,
                                                     measure=measure)
    return out, "litert-default", xq


def verify(tflite, parsed, profile, x, *, float_outputs=None, labels=None, thresholds=None,
           inputs="", real_data=True, lsb_model=None, decompression_bytes=0, micro_runner=None,
           op_micro=None, task=None, input_names=None):
    """Every gate for ``tflite`` on ``profile``'s runtime, on samples ``x``.

    ``x``: float samples (quantized here) or samples in the model's input type: an array
    for a one-input model, else a list in input order or a dict keyed by ``input_names``.
    ``float_outputs``: the float model's outputs on ``x`` (an array, or a list / dict with
    one per output; adds the agreement gates). ``task``: the task contract (name or Task)
    whose measure judges agreement; default classification for a one-output model.
    ``profile``: the board, or None for LiteRT on this host (no budget).
    ``real_data``: False for seeded random inputs (no top-1 gates on them).
    ``lsb_model``: bytes the per-op gate runs on instead (the uncompressed model of a
    LUT-compressed one). ``micro_runner`` / ``op_micro``: replace how TFLite Micro is
    run end to end / per op (negative controls). Returns a dict with ``checks``,
    ``passed``, ``failures`` (one line per failed check) and ``notes`` (facts that fail
    nothing, such as LiteRT's default kernels refusing a model meant for TFLite Micro).
    ``latency_estimate`` is ``{"estimate_ms": None, "reason": ...}`` when the board has no
    clock or its core no cycle model; a ``max_estimated_ms`` bound then fails with it.
    Raises an EdgezooError when a runtime the checks need refuses the model.
    """
    from edgezoo.edge.budget import check_budget
    from edgezoo.edge.latency_model import estimate_latency
    from edgezoo.edge.macs import total_macs
    from edgezoo.edge.profiles import ProfileError

    from edgezoo.converters.tflite_model import dequantize_output
    from edgezoo.zoo.data.arrays import num_samples
    from edgezoo.zoo.tasks import CLASSIFICATION, get_task

    th = thresholds or DEFAULT_THRESHOLDS
    if task is None and len(parsed.outputs) > 1:
        raise EdgezooError(f"the model has {len(parsed.outputs)} outputs: name its task "
                           "(classification, detection, causal_lm, encoder) to verify it")
    task = CLASSIFICATION if task is None else get_task(task)
    n = num_samples(x if not isinstance(x, dict) else list(x.values()))
    result = {"target": None if profile is None else profile.name,
              "runtime": "litert" if profile is None else profile.runtime,
              "task": task.name, "thresholds": th.as_dict(), "inputs": inputs, "samples": int(n),
              "notes": [], "tensors": {
                  "inputs": [_tensor_row(d) for d in parsed.inputs],
                  "outputs": [_tensor_row(d) for d in parsed.outputs]}}
    checks = {}
    if profile is not None and profile.micro:
        out, runtime, xq = _micro_checks(tflite, parsed, x, result, checks, th, lsb_model,
                                         micro_runner, op_micro, real_data, task, input_names)
    else:
        out, runtime, xq = _litert_checks(tflite, parsed, x, result, checks, th, input_names,
                                          real_data, task)
    details = [parsed.tensors[j] for j in parsed.readout_tensors()]
    converted = [dequantize_output(o, d) for o, d in zip(out, details)]
    if float_outputs is not None:
        floats = _as_list(float_outputs)
        if len(floats) != len(converted):
            raise EdgezooError(f"{len(floats)} float output array(s) for a model with "
                               f"{len(converted)} outputs")
        reasons = uninformative_reasons(floats, th, task)
        measured = task.measure(floats, converted, xq.arrays)
        result["agreement"] = {"measure": measured["measure"], "value": measured["value"],
                               "checks": measured["checks"], "details": measured["details"],
                               "samples": int(n), "runtime": runtime, "inputs": inputs,
                               "informative": not reasons, "reasons": reasons}
        result["output_errors"] = tensor_errors(floats, converted, details)
        for gate, value in measured["checks"].items():
            limit = getattr(th, gate)
            checks["agreement_top1" if gate == "top1_agreement" else f"agreement_{gate}"] = _check(
                value, limit, value >= limit)
        checks["agreement_informative"] = _check(not reasons, True, not reasons, reasons=reasons)
    if labels is not None and task.name == "classification" and np.all(np.asarray(labels) >= 0):
        labels = np.asarray(labels)
        result["accuracy"] = {f"converted_{runtime}": float((top1(out[0]) == labels).mean())}
        if float_outputs is not None:
            result["accuracy"]["float"] = float((top1(_as_list(float_outputs)[0]) == labels).mean())
    result["macs"] = total_macs(parsed)
    if profile is not None:  # no board named: LiteRT on this host, nothing to budget
        budget = check_budget(profile, len(tflite), result.get("arena_bytes"),
                              0 if profile.micro else decompression_bytes)
        result.update({"fits": budget["fits"], "budget": budget})
        checks["fits"] = _check(budget["fits"], True, budget["fits"])
        try:  # on the board, from MACs and per-core costs: an estimate, labelled as one
            estimate = estimate_latency(parsed, profile, tflite)
        except ProfileError as exc:  # no clock or no cycle model: say so, and fail a bound on it
            reason = str(exc)
            result["latency_estimate"] = {"estimate_ms": None, "reason": reason}
            if th.max_estimated_ms is not None:
                checks["latency_estimate"] = _check(None, th.max_estimated_ms, False, reason=reason)
        else:
            result["latency_estimate"] = estimate.as_dict()
            if th.max_estimated_ms is not None:
                checks["latency_estimate"] = _check(estimate.ms, th.max_estimated_ms,
                                                    estimate.ms <= th.max_estimated_ms)
    result["checks"] = checks
    result["passed"] = all(c["passed"] for c in checks.values())
    result["failures"] = failure_lines(result)
    return result


def _tensor_row(d):
    """A named input or output tensor as reports list it (its int8 quantization included)."""
    return {"name": d.name, "dtype": d.dtype.lower(), "shape": list(d.shape),
            "scale": d.scale, "zero_point": d.zero_point}


AGREEMENT_WORDS = {  # failure lines of the task measures: what the number is a share of
    "agreement_query_class_agreement": "on each query's class for",
    "agreement_box_iou": "on box IoU (mean over the object queries):",
    "agreement_next_token_top1": "on the next token for",
    "agreement_hidden_cosine": "on hidden states (cosine, unmasked tokens):",
    "agreement_pooled_cosine": "on the pooled vector (cosine):",
}


def _measured(check, samples):
    """'top-1 for 97.3 % of 500 samples', or a detector's measure by its name."""
    measure = check.get("measure", "top-1")
    if measure == "top-1":
        return f"top-1 for {100 * check['value']:.1f} % of {samples} samples"
    return f"{measure} ({100 * check['value']:.1f} % on {samples} samples)"


def failure_lines(result):
    """One plain line per failed check, naming the gate and the numbers."""
    checks, lines = result.get("checks", {}), []
    n = result.get("samples")
    for name, c in checks.items():
        if c["passed"]:
            continue
        if name == "micro_vs_reference_per_op":
            f = c.get("first_failure") or {}
            lines.append(f"TFLite Micro differs from LiteRT's reference kernels at op {f.get('index')} "
                         f"({f.get('op')}, layer {f.get('layer')!r}, tensor {f.get('tensor')!r}) by "
                         f"{f.get('max_lsb')} LSB on identical inputs (allowed: {f.get('tolerance')})")
        elif name == "default_vs_micro_top1":
            lines.append(f"LiteRT's default kernels agree with TFLite Micro on {_measured(c, n)} "
                         f"(needed: {100 * c['limit']:.1f} %)")
        elif name == "default_vs_reference_top1":
            lines.append(f"LiteRT's default kernels agree with its reference kernels on "
                         f"{_measured(c, n)} (needed: {100 * c['limit']:.1f} %)")
        elif name == "default_vs_reference_lsb":
            lines.append(f"LiteRT's default kernels differ from its reference kernels by up to "
                         f"{c['value']} LSB (allowed: {c['limit']}) on {n} inputs")
        elif name == "agreement_top1":
            lines.append(f"the converted model agrees with the float model on top-1 for "
                         f"{100 * c['value']:.1f} % of {n} samples (needed: {100 * c['limit']:.1f} %)")
        elif name in AGREEMENT_WORDS:
            lines.append(f"the converted model agrees with the float model {AGREEMENT_WORDS[name]} "
                         f"{100 * c['value']:.1f} % of {n} samples (needed: {100 * c['limit']:.1f} %)")
        elif name == "agreement_informative":
            lines.append("agreement is uninformative: " + "; ".join(c["reasons"]))
        elif name == "fits":
            budget = result["budget"]
            for part in ("flash", "ram"):
                b = budget[part]
                if not b["fits"]:
                    lines.append(f"does not fit {budget['target']}'s "
                                 f"{'RAM' if part == 'ram' else part}: {b['used_bytes']:,} of "
                                 f"{b['capacity_bytes']:,} bytes")
        elif name == "latency_estimate" and c["value"] is None:
            lines.append(f"no latency estimate on {result['target']} to hold to {c['limit']} ms: "
                         f"{c['reason']}")
        elif name == "litert_default_kernels":
            lines.append(DEFAULT_UNAVAILABLE.format(reason=c["reason"]) +
                         f", but {result['target'] or 'this host'} runs the default ones")
        elif name == "latency_estimate":
            lines.append(f"estimated latency {c['value']:.1f} ms on {result['target']} exceeds "
                         f"{c['limit']} ms (an estimate from MACs, not a measurement)")
        else:
            lines.append(f"{name}: {c['value']} (limit {c['limit']})")
    return lines
