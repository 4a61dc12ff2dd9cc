"""Which Dense layers ship per-tensor on a TFLite Micro board: as many as the agreement gate
allows, because each per-channel layer keeps its multipliers and shifts (8 B a channel) in the
arena.

Every FULLY_CONNECTED layer starts per-tensor (the smallest arena). The model is run in TFLite
Micro on the data's validation split (never the test split the verification path judges);
while the task's agreement checks fail, the layer whose weights per-tensor scales hurt most
(relative squared error against its per-channel weights) goes back to per-channel. Each step's
agreement and arena are in the report.
"""
import numpy as np

MAX_VALIDATION = 512


def _scales(data):
    """{tensor name: its quantization scales}."""
    from edgezoo.converters.flatbuffer_io import read_model_t

    found = {}
    for t in read_model_t(data).subgraphs[0].tensors:
        name = t.name.decode() if isinstance(t.name, bytes) else t.name
        if t.quantization is not None and t.quantization.scale is not None:
            found[name] = np.asarray(t.quantization.scale, np.float64)
    return found


def per_tensor_error(per_channel, per_tensor):
    """{layer: squared error of its per-tensor weights relative to its per-channel ones}."""
    from edgezoo.converters.dense_splice import fully_connected_layers

    fine_scales, coarse_scales = _scales(per_channel), _scales(per_tensor)
    coarse_weights = fully_connected_layers(per_tensor)
    errors = {}
    for layer, w in fully_connected_layers(per_channel).items():
        fine = w.values.astype(np.float64) * fine_scales[w.name].reshape(-1, 1)
        c = coarse_weights[layer]
        coarse = c.values.astype(np.float64) * coarse_scales[c.name].reshape(-1, 1)
        errors[layer] = float(np.sum((coarse - fine) ** 2) / max(np.sum(fine ** 2), 1e-30))
    return errors


def _measure(data, x, floats, task, names):
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.runners.micro import MicroRunner

    from edgezoo.cpu_form import runner_agreement

    runner = MicroRunner(data, read_tflite(data))
    return runner_agreement(runner, x, floats, task, names), runner.arena_bytes


def choose_dense_layers(compressed, model, data, task, thresholds, names=None):
    """Splice ``compressed.dense_candidates`` (per-channel and per-tensor conversions) into the
    model that ships; adds ``report["dense_form"]`` (each layer's form, every step measured)."""
    from edgezoo.converters.dense_splice import splice_dense
    from edgezoo.converters.tflite_weights import weights_report
    from edgezoo.zoo.data.arrays import num_samples, take

    per_channel = compressed.dense_candidates["per_channel"]
    per_tensor = compressed.dense_candidates["per_tensor"]
    errors = per_tensor_error(per_channel, per_tensor)
    order = sorted(errors, key=lambda layer: -errors[layer])  # most hurt by per-tensor first
    val = getattr(data, "val", None)
    chosen_per_tensor, steps = list(order), []
    if val is None or not num_samples(val.x):
        chosen_per_tensor, rule = [], "no validation data: every layer per-channel (the finer form)"
    else:
        x = take(val.x, slice(0, MAX_VALIDATION))
        floats = model.predict(x, batch_size=256, verbose=0)
        floats = floats if isinstance(floats, list) else [floats]
        rule = "as many layers per-tensor as the agreement thresholds allow"
        while True:
            spliced = splice_dense(per_channel, per_tensor, chosen_per_tensor)
            result, arena = _measure(spliced, x, floats, task, names)
            passed = all(v >= getattr(thresholds, gate) for gate, v in result["checks"].items())
            steps.append({"per_channel": [l for l in order if l not in chosen_per_tensor],
                          "agreement": float(result["value"]), "arena_bytes": arena,
                          "passed": passed})
            if passed or not chosen_per_tensor:
                break
            chosen_per_tensor = chosen_per_tensor[1:]
        if not steps[-1]["passed"]:
            rule = "no choice meets the agreement thresholds: every layer per-channel (the closest)"
        rule += f"; measured in TFLite Micro on the validation split ({num_samples(x)} samples)"
    compressed.tflite = compressed.uncompressed_tflite = splice_dense(per_channel, per_tensor,
                                                                      chosen_per_tensor)
    report = compressed.report
    report["dense_form"] = {"form": "fc_per_layer", "rule": rule,
                            "per_tensor": sorted(chosen_per_tensor),
                            "per_channel": sorted(set(order) - set(chosen_per_tensor)),
                            "per_tensor_weight_error": errors, "steps": steps}
    report["tflite_bytes"] = report["uncompressed_tflite_bytes"] = len(compressed.tflite)
    report["weights"] = weights_report(compressed.tflite)
    compressed.dense_candidates = {}
