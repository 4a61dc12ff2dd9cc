"""Which form of an int8 model ships to a LiteRT (CPU) board: measured here, not assumed.

Every row of ``converters.cpu_forms.CPU_FORMS`` is converted, timed in LiteRT's default kernels
(XNNPACK, one thread, batch 1, interpreters built without preserving tensors, rounds
interleaved in this one process) and compared with the float model on the data's validation
split (never its test split, which the verification path judges). The fastest form whose
agreement meets the thresholds ships; a form within ``TIE_MARGIN`` of it that comes earlier in
the table wins the tie, so timing noise does not flip the choice. Host timings rank the forms
(XNNPACK runs the same kernel families on the board's Arm cores); they are not board figures.
"""
import numpy as np

from edgezoo.base.errors import RecipeError

ROUNDS = 3
TIME_PER_ROUND_S = 0.2  # invokes per round: enough for this, between MIN_RUNS and MAX_RUNS
MIN_RUNS, MAX_RUNS = 20, 200
MAX_VALIDATION = 512


def measure_latency(candidates, rounds=ROUNDS, runs=None):
    """{form: {"ms": [median per round], "median_ms", "partitions", "bytes"}}, rounds interleaved;
    ``runs`` invokes per round (default: about TIME_PER_ROUND_S of them, within MIN/MAX_RUNS)."""
    from edgezoo.edge.latency import median_ms
    from edgezoo.edge.op_latency import median_invoke_ms, seeded_interpreter, xnnpack_partitions

    interpreters, failed = {}, {}
    for form, data in candidates.items():
        try:
            interpreters[form] = seeded_interpreter(data)
        except RuntimeError as exc:  # LiteRT's default kernels cannot prepare this form
            failed[form] = {"error": f"LiteRT's default kernels cannot prepare it: {exc}",
                            "ms": [], "median_ms": None, "partitions": None,
                            "bytes": len(data)}
    counts = {}
    for form, interpreter in interpreters.items():
        one = median_ms(interpreter.invoke, runs=3, warmup=2) / 1000.0
        counts[form] = runs or int(np.clip(TIME_PER_ROUND_S / max(one, 1e-6), MIN_RUNS, MAX_RUNS))
    out = {form: {"ms": [], "partitions": xnnpack_partitions(candidates[form]),
                  "bytes": len(candidates[form]), "runs_per_round": counts[form]}
           for form in interpreters}
    for _ in range(rounds):
        for form, interpreter in interpreters.items():
            out[form]["ms"].append(median_invoke_ms(interpreter, counts[form]))
    for row in out.values():
        row["median_ms"] = float(np.median(row["ms"]))
    return {form: out.get(form) or failed[form] for form in candidates}


def measure_agreement(candidates, x, float_outputs, task, names=None):
    """{form: the task's measure of its LiteRT (default kernels) outputs against the float ones}."""
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.runners.litert import IsolatedLiteRTRunner

    floats = float_outputs if isinstance(float_outputs, list) else [float_outputs]
    out = {}
    for form, data in candidates.items():
        if data is None:  # a form the runtime could not prepare: nothing to compare
            continue
        out[form] = runner_agreement(IsolatedLiteRTRunner(data, read_tflite(data), "default"),
                                     x, floats, task, names)
    return out


def runner_agreement(runner, x, floats, task, names=None):
    """The task's measure of ``runner``'s outputs on ``x`` against the float outputs (a list)."""
    converted = runner.run_all_float(x, names)
    return task.measure(floats, converted, runner.prepare_batch(x, names).arrays)


def choose(latency, agreement, thresholds, max_latency_ms=None):
    """(form, rule): the fastest form that meets the agreement thresholds (and the latency
    budget); ties within TIE_MARGIN go to the earlier row. RecipeError when no form meets both."""
    from edgezoo.converters.cpu_forms import CPU_FORMS, TIE_MARGIN

    def agrees(form):
        if agreement is None:
            return True
        return all(v >= getattr(thresholds, gate) for gate, v in agreement[form]["checks"].items())

    order = [f for f in CPU_FORMS if f in latency and "error" not in latency[f]]
    if not order:
        raise RecipeError("LiteRT's default kernels cannot prepare any form of this model: "
                          + "; ".join(f"{f}: {row['error']}" for f, row in latency.items()))
    eligible = [f for f in order if agrees(f)]
    if max_latency_ms is not None:
        eligible = [f for f in eligible if latency[f]["median_ms"] <= max_latency_ms]
        if not eligible:
            rows = ", ".join(
                f"{f} {latency[f]['median_ms']:.3f} ms"
                + ("" if agreement is None else f" (agreement {agreement[f]['value']:.4f})")
                for f in order)
            raise RecipeError(f"max_latency_ms {max_latency_ms:g}: no form of this model meets it "
                              f"with the agreement thresholds: {rows}. Raise the budget, or "
                              "compress the model further (prune, smaller variant)")
    if not eligible:  # none agrees well enough: ship the closest; the verification path fails it
        best = max(order, key=lambda f: agreement[f]["value"])
        return best, "no form meets the agreement thresholds: the closest to the float model"
    fastest = min(latency[f]["median_ms"] for f in eligible)
    chosen = next(f for f in eligible if latency[f]["median_ms"] <= fastest * (1 + TIE_MARGIN))
    rule = (f"the fastest form meeting the agreement thresholds (ties within "
            f"{TIE_MARGIN:.0%} go to the earlier of {', '.join(order)})")
    return chosen, rule + ("" if max_latency_ms is None else
                           f" and max_latency_ms {max_latency_ms:g}")


def choose_cpu_form(compressed, model, data, task, thresholds, max_latency_ms=None, names=None):
    """Measure ``compressed.candidates`` and ship the chosen one: replaces the bytes and adds
    ``report["cpu_form"]`` (every form's latency, partitions, bytes and agreement)."""
    from edgezoo.converters.tflite_weights import weights_report
    from edgezoo.zoo.data.arrays import num_samples, take

    candidates = compressed.candidates
    latency = measure_latency(candidates)
    val = getattr(data, "val", None)
    if val is not None and num_samples(val.x):
        x = take(val.x, slice(0, MAX_VALIDATION))
        floats = model.predict(x, batch_size=256, verbose=0)
        runnable = {f: (None if "error" in latency[f] else data) for f, data in candidates.items()}
        agreement = measure_agreement(runnable, x, floats if isinstance(floats, list)
                                      else [floats], task, names)
        chosen_on = f"{getattr(data, 'name', 'data')} validation split ({num_samples(x)} samples)"
    else:
        agreement, chosen_on = None, "latency alone: no validation data to measure agreement on"
    chosen, rule = choose(latency, agreement, thresholds, max_latency_ms)
    rows = {f: {**latency[f], **({} if agreement is None or f not in agreement else
                                 {"agreement": float(agreement[f]["value"]),
                                  "measure": agreement[f]["measure"]})} for f in candidates}
    compressed.tflite = compressed.uncompressed_tflite = candidates[chosen]
    report = compressed.report
    report["cpu_form"] = {"chosen": chosen, "rule": rule, "chosen_on": chosen_on,
                          "timing": f"LiteRT default kernels (XNNPACK) on this host, one thread, "
                                    f"batch 1, {ROUNDS} interleaved rounds",
                          "candidates": rows}
    report["tflite_bytes"] = report["uncompressed_tflite_bytes"] = len(compressed.tflite)
    report["weights"] = weights_report(compressed.tflite)
    from edgezoo.converters.cpu_forms import CPU_FORMS

    report["quantize_shipped"] = CPU_FORMS[chosen].quantize  # "quantize" is what was asked for
    compressed.candidates = {}
    return chosen
