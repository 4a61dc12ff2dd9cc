"""Convert-then-verify pipeline: Keras model -> TFLite, checked on the target's runtime.

Everything that can be refused is refused before the long work starts
(unknown target or model, a quantization the target cannot run, calibration
data of the wrong shape); outputs are written atomically at the end.
"""
import time
from pathlib import Path

import numpy as np

from edgezoo.errors import DataError, ModelFileError


def load_keras_model(source, input_shape=None, num_classes=None):
    """A registry name (fresh model) or a .keras/.h5 file (trained model)."""
    import tf_keras as keras

    import edgezoo.converters  # noqa: F401  (registers micro_gelu for rewritten models)
    from edgezoo import zoo

    path = Path(str(source))
    if path.suffix in (".keras", ".h5") or path.exists():
        if not path.is_file():
            raise ModelFileError(f"{path}: no such model file")
        try:
            return keras.models.load_model(path, compile=False)
        except Exception as exc:  # noqa: BLE001  (any loader failure means an unusable file)
            raise ModelFileError(f"{path} is not a loadable Keras model: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    return zoo.create_model(str(source), num_classes=num_classes, input_shape=input_shape)


def calibration_samples(calib, input_shape, limit=300):
    """Representative float samples for ``input_shape``: ``digits`` or a .npy file."""
    from edgezoo.zoo.data import DATASETS, load_dataset

    input_shape = tuple(int(s) for s in input_shape)
    if calib in DATASETS:
        return load_dataset(calib, input_shape).train.x[:limit]
    path = Path(str(calib))
    if not path.is_file():
        raise DataError(f"calibration data {calib!r} is neither a data set "
                        f"({', '.join(DATASETS)}) nor a .npy file")
    try:
        samples = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read calibration file {path}: {exc}") from None
    if samples.ndim != len(input_shape) + 1 or tuple(samples.shape[1:]) != input_shape:
        raise DataError(f"calibration data {path} has shape {samples.shape}; the model takes "
                        f"(N, {', '.join(map(str, input_shape))})")
    return samples[:limit].astype(np.float32)


def prepare_conversion(source, quantize="int8", target=None, calib="digits", input_shape=None):
    """Every check that needs no conversion, in order; returns what convert_model needs."""
    from edgezoo.converters.quantize import check_quantization
    from edgezoo.edge.profiles import get_profile

    profile = get_profile(target) if target else None
    check_quantization(quantize, micro=bool(profile and profile.micro))
    model = load_keras_model(source, input_shape=input_shape)
    samples = None
    if quantize in ("int8", "int16x8"):
        samples = calibration_samples(calib, model.input_shape[1:])
    return model, profile, samples


def convert_model(model, quantize, profile, samples):
    """Convert ``model`` (micro rewrites first for a TFLite Micro target) and check it there.

    Returns (tflite bytes, parsed model, report dict).
    """
    from edgezoo.converters.gelu import MAX_DEVIATION, gelu_input_range, max_deviation
    from edgezoo.converters.quantize import convert
    from edgezoo.converters.rewrites import apply_micro_rewrites
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.budget import check_budget
    from edgezoo.edge.runners.micro import MicroRunner, check_micro_ops

    micro = bool(profile and profile.micro)
    recipe = {"quantize": quantize, "calibration_samples": 0 if samples is None else len(samples),
              "signature": "static batch 1", "rewrites": []}
    report = {"model": model.name, "params": int(model.count_params()), "quantize": quantize}
    converted_model = model
    if micro:
        gelu_range = gelu_input_range(model, samples) if samples is not None else None
        converted_model, recipe["rewrites"] = apply_micro_rewrites(model)
        if "gelu" in recipe["rewrites"]:
            lo, hi = gelu_range or (-12.0, 12.0)
            deviation = max_deviation(lo, hi)
            if deviation > MAX_DEVIATION:
                raise AssertionError(f"GELU rewrite deviates {deviation:.2e} > {MAX_DEVIATION}")
            report["gelu_rewrite"] = {"calibration_range": [lo, hi], "max_abs_deviation": deviation}
    data = convert(converted_model, quantize, samples, micro=micro)
    parsed = read_tflite(data)
    report.update({"tflite_bytes": len(data), "ops": parsed.op_names, "op_types": parsed.op_types()})
    if micro:
        check_micro_ops(parsed)  # names any op (GELU, ...) or type TFLite Micro lacks, by layer
        runner = MicroRunner(data, parsed)
        report["arena_bytes"] = runner.measure_arena()
        report["arena_breakdown"] = runner.arena_breakdown
    if profile is not None:
        budget = check_budget(profile, len(data), report.get("arena_bytes"))
        report.update({"target": profile.name, "fits": budget["fits"], "budget": budget})
    report["recipe"] = recipe
    return data, parsed, report


def write_outputs(out_dir, data, report, parsed=None):
    """model.tflite, report.json, report.md (and model_data.h/.cc for firmware when the
    arena is known), each written atomically."""
    from edgezoo import files
    from edgezoo.converters.c_export import render_header, render_source
    from edgezoo.edge.report import write_reports

    out_dir = Path(out_dir)
    files.write_bytes(out_dir / "model.tflite", data)
    if parsed is not None and report.get("arena_bytes"):
        files.write_text(out_dir / "model_data.h", render_header(parsed, report["arena_bytes"]))
        files.write_text(out_dir / "model_data.cc", render_source(data))
    write_reports(out_dir, report)


def convert_pipeline(source, out_dir, quantize="int8", target=None, calib="digits",
                     input_shape=None, seed=0):
    """``edgezoo convert``: prepare, convert, verify on the target, write outputs."""
    from edgezoo.provenance import provenance

    start = time.perf_counter()
    model, profile, samples = prepare_conversion(source, quantize, target, calib, input_shape)
    data, parsed, report = convert_model(model, quantize, profile, samples)
    report["provenance"] = provenance(seed, {**report.pop("recipe"), "calibration": str(calib)})
    report["wall_time_s"] = time.perf_counter() - start
    write_outputs(out_dir, data, report, parsed)
    return report
