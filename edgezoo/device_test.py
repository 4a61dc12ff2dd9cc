"""``edgezoo test``: what a .tflite needs on a board, checked without its Keras model."""
import numpy as np


def test_tflite(path, target, samples=32, seed=0, profiles=None):
    """Verify, list ops, measure the arena, check the budget, compare runtimes on seeded inputs."""
    from edgezoo.edge.budget import check_budget
    from edgezoo.edge.compare import compare_runtimes
    from edgezoo.edge.latency import litert_latency_ms
    from edgezoo.edge.latency_model import estimate_latency
    from edgezoo.edge.loader import load_tflite
    from edgezoo.edge.macs import total_macs
    from edgezoo.edge.profiles import ProfileError, get_profile
    from edgezoo.edge.runners.litert import LiteRTRunner
    from edgezoo.edge.runners.micro import MicroRunner, check_micro_ops

    profile = get_profile(target, extra=profiles)
    data, model = load_tflite(path)
    report = {"model": str(path), "tflite_bytes": len(data), "ops": model.op_names,
              "op_types": model.op_types(), "target": profile.name}
    details = model.inputs[0]
    rng = np.random.default_rng(seed)
    if details.dtype in ("INT8", "INT16", "UINT8"):
        info = np.iinfo(np.dtype(details.dtype.lower()))
        x = rng.integers(info.min, info.max + 1, (samples, *details.shape[1:])).astype(info.dtype)
    else:
        x = rng.standard_normal((samples, *details.shape[1:])).astype(np.float32)
    if profile.micro:
        check_micro_ops(model)
        runner = MicroRunner(data, model)
        runtimes, _ = compare_runtimes(data, model, x, micro_runner=runner)
        runtimes["inputs"] = f"{samples} seeded random inputs"
        report["arena_bytes"] = runner.arena_bytes
        report["arena_breakdown"] = runner.arena_breakdown
        report["runtimes"] = runtimes
    budget = check_budget(profile, len(data), report.get("arena_bytes"))
    report.update({"fits": budget["fits"], "budget": budget})
    key = "litert_int8" if details.dtype == "INT8" else "litert"
    report["latency_ms"] = {key: litert_latency_ms(LiteRTRunner(data, model, "default"), x[:1])}
    report["macs"] = total_macs(model)
    try:  # on the board, from MACs and per-core costs: labelled an estimate, beside the measurement
        estimate = estimate_latency(model, profile, data)
    except ProfileError as exc:  # a custom profile whose core has no constants
        report["latency_estimate"] = {"error": str(exc)}
    else:
        report["latency_ms"]["estimate"] = estimate.ms
        report["latency_estimate"] = estimate.as_dict()
    return report
