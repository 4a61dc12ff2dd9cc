"""``edgezoo test``: a .tflite checked for a board, beside its Keras model when one is given."""
import numpy as np

MIN_DEFAULT_VS_MICRO_TOP1 = 0.99
MIN_INT8_VS_FLOAT_TOP1 = 0.98


def _inputs(model, data, samples, seed):
    """Float samples (and labels) for ``model``: a data set's test split, a .npy/.npz file, or
    seeded random values that the input quantization represents exactly."""
    from pathlib import Path

    from edgezoo.errors import DataError
    from edgezoo.zoo.data import DATASETS, load_dataset

    details = model.inputs[0]
    shape = tuple(details.shape[1:])
    if data in DATASETS:
        split = load_dataset(data, shape).test
        return split.x, split.y, f"{data} test split ({len(split)} samples)"
    if data is not None:
        path = Path(data)
        try:
            loaded = np.load(path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"cannot read test data {data!r}: use a data set name "
                            f"({', '.join(DATASETS)}) or a .npy/.npz file ({exc})") from None
        x, y = (loaded["x"], loaded["y"] if "y" in loaded else None) if path.suffix == ".npz" else (loaded, None)
        if tuple(x.shape[1:]) != shape:
            raise DataError(f"test data {path} has shape {x.shape}; the model takes (N, {', '.join(map(str, shape))})")
        return x.astype(np.float32), y, f"{path.name} ({len(x)} samples)"
    rng = np.random.default_rng(seed)
    if details.dtype in ("INT8", "INT16", "UINT8"):
        info = np.iinfo(np.dtype(details.dtype.lower()))
        q = rng.integers(info.min, info.max + 1, (samples, *shape))
        x = ((q - details.zero_point) * details.scale).astype(np.float32)
    else:
        x = rng.standard_normal((samples, *shape)).astype(np.float32)
    return x, None, f"{samples} seeded random inputs"


def _check(value, limit, at_least=True):
    return {"value": value, "limit": limit,
            "passed": bool(value >= limit if at_least else value <= limit)}


def test_tflite(path, target, samples=32, seed=0, profiles=None, keras_model=None, data=None):
    """Verify, list ops, measure the arena, check the budget, compare runtimes (and the Keras
    model, if given) on ``data`` or seeded inputs. ``report["checks"]`` says what passed."""
    from edgezoo.edge.budget import check_budget
    from edgezoo.edge.compare import compare_runtimes, lut_compressed, top1
    from edgezoo.edge.latency import litert_latency_ms
    from edgezoo.edge.latency_model import estimate_latency
    from edgezoo.edge.loader import load_tflite
    from edgezoo.edge.macs import total_macs
    from edgezoo.edge.profiles import ProfileError, get_profile
    from edgezoo.edge.runners.litert import LiteRTRunner
    from edgezoo.edge.runners.micro import MicroRunner, check_micro_ops

    profile = get_profile(target, extra=profiles)
    tflite, model = load_tflite(path)
    keras = None
    if keras_model is not None:
        from edgezoo.convert import load_keras_model

        keras = load_keras_model(keras_model)
    x, labels, source = _inputs(model, data, samples, seed)
    report = {"model": str(path), "tflite_bytes": len(tflite), "ops": model.op_names,
              "op_types": model.op_types(), "target": profile.name, "inputs": source}
    checks = report["checks"] = {}
    float_outputs = keras.predict(x, batch_size=256, verbose=0) if keras is not None else None
    lut = lut_compressed(model)
    if profile.micro:
        check_micro_ops(model)
        runner = MicroRunner(tflite, model)
        runtimes, _ = compare_runtimes(tflite, model, x, labels=labels, float_outputs=float_outputs,
                                       micro_runner=runner)
        report["arena_bytes"] = runner.arena_bytes
        report["arena_breakdown"] = runner.arena_breakdown
        report["runtimes"] = runtimes
        if lut:
            report["note"] = runtimes["litert"]
        else:
            checks["micro_vs_reference_lsb"] = _check(runtimes["micro_vs_reference_max_lsb"], 1,
                                                      False)
            if data is not None:  # top-1 of random inputs is a coin toss between near-equal logits
                checks["default_vs_micro_top1"] = _check(runtimes["default_vs_micro_top1"],
                                                         MIN_DEFAULT_VS_MICRO_TOP1)
        if float_outputs is not None:
            report["agreement"] = runtimes["micro_vs_float_top1"]
            if data is not None:
                checks["int8_vs_float_top1"] = _check(report["agreement"], MIN_INT8_VS_FLOAT_TOP1)
        if "accuracy" in runtimes:
            report["accuracy"] = runtimes.pop("accuracy")
    elif float_outputs is not None and not lut:
        outputs = LiteRTRunner(tflite, model, "default").run_float(x)
        report["agreement"] = float((top1(outputs) == top1(float_outputs)).mean())
    budget = check_budget(profile, len(tflite), report.get("arena_bytes"))
    report.update({"fits": budget["fits"], "budget": budget})
    checks["fits"] = {"value": budget["fits"], "limit": True, "passed": budget["fits"]}
    key = "litert_int8" if model.inputs[0].dtype == "INT8" else "litert"
    report["latency_ms"] = ({} if lut else
                            {key: litert_latency_ms(LiteRTRunner(tflite, model, "default"), x[:1])})
    if keras is not None:
        from edgezoo.edge.latency import keras_latency_ms

        report["latency_ms"]["keras"] = keras_latency_ms(keras, x[:1])
    report["macs"] = total_macs(model)
    try:  # on the board, from MACs and per-core costs: labelled an estimate, beside the measurement
        estimate = estimate_latency(model, profile, tflite)
    except ProfileError as exc:  # a custom profile whose core has no constants
        report["latency_estimate"] = {"error": str(exc)}
    else:
        report["latency_ms"]["estimate"] = estimate.ms
        report["latency_estimate"] = estimate.as_dict()
    report["passed"] = all(c["passed"] for c in checks.values())
    return report
