"""Convert-then-verify pipeline: Keras model -> TFLite, checked on the target's runtime.

Everything that can be refused is refused before the long work starts
(unknown target or model, a quantization the target cannot run, calibration
data of the wrong shape); outputs are written atomically at the end.
"""
import time
from pathlib import Path

import numpy as np

from edgezoo.errors import DataError, ModelFileError


def load_keras_model(source, input_shape=None, num_classes=None, seed=0):
    """A registry name (a fresh model, initialized from ``seed``) or a .keras/.h5 file."""
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
    keras.utils.set_random_seed(seed)
    return zoo.create_model(str(source), num_classes=num_classes, input_shape=input_shape)


def calibration_samples(calib, input_shape, limit=300):
    """Representative float samples for ``input_shape``: a data set's train split or a .npy file."""
    return load_data(calib, input_shape).train.x[:limit]


def load_data(name_or_file, input_shape):
    """A data set by name (its train split fine-tunes, its test split measures agreement) or a
    .npy (inputs) / .npz (``x`` and optional ``y``) file; returns a zoo ``Dataset``."""
    from edgezoo.zoo.data import DATASETS, Dataset, Split, load_dataset

    input_shape = tuple(int(s) for s in input_shape)
    if name_or_file in DATASETS:
        return load_dataset(name_or_file, input_shape)
    path = Path(str(name_or_file))
    if not path.is_file():
        raise DataError(f"data {name_or_file!r} is neither a data set ({', '.join(DATASETS)}) "
                        "nor a .npy/.npz file")
    try:
        loaded = np.load(path, allow_pickle=False)
        x, y = (loaded["x"], loaded["y"] if "y" in loaded else None) if path.suffix == ".npz" \
            else (loaded, None)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read data file {path}: {exc}") from None
    if x.ndim != len(input_shape) + 1 or tuple(x.shape[1:]) != input_shape:
        raise DataError(f"data {path} has shape {x.shape}; the model takes "
                        f"(N, {', '.join(map(str, input_shape))})")
    y = np.full(len(x), -1, np.int64) if y is None else np.asarray(y, np.int64)
    split = Split(x.astype(np.float32), y)
    return Dataset(path.stem, split, split, split, num_classes=int(y.max()) + 1 if y.max() >= 0 else 0)


def prepare_conversion(source, quantize="int8", target=None, calib="digits", input_shape=None,
                       recipe=None, seed=0):
    """Every check that needs no conversion, in order; returns what convert_model needs."""
    from edgezoo.converters.quantize import check_quantization
    from edgezoo.edge.profiles import get_profile

    profile = get_profile(target) if target else None
    check_quantization(quantize, micro=bool(profile and profile.micro))
    if recipe is not None:
        recipe.check_target(bool(profile and profile.micro))
    model = load_keras_model(source, input_shape=input_shape, seed=seed)
    samples = None
    if quantize in ("int8", "int16x8") and calib is not None:
        samples = calibration_samples(calib, model.input_shape[1:])
    return model, profile, samples


def verify_on_target(tflite, report, profile):
    """Op check and arena in TFLite Micro for a microcontroller, then the board's budget."""
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.budget import check_budget
    from edgezoo.edge.runners.micro import MicroRunner, check_micro_ops

    parsed = read_tflite(tflite)
    report.update({"ops": parsed.op_names, "op_types": parsed.op_types()})
    micro = bool(profile and profile.micro)
    if micro:
        check_micro_ops(parsed)  # names any op (GELU, ...) or type TFLite Micro lacks, by layer
        runner = MicroRunner(tflite, parsed)
        report["arena_bytes"] = runner.measure_arena()
        report["arena_breakdown"] = runner.arena_breakdown
    if profile is not None:
        # TFLite Micro plans DECODE outputs in its arena: the measured arena already holds the
        # decompressed weights, so they are reported, not added a second time.
        decoded = (report.get("steps", {}).get("micro_compression") or {}).get("decompression_bytes")
        budget = check_budget(profile, len(tflite), report.get("arena_bytes"),
                              0 if micro else decoded or 0)
        if decoded:
            budget["ram"]["decompression_in_arena_bytes"] = decoded
        report.update({"target": profile.name, "fits": budget["fits"], "budget": budget})
    return parsed


def convert_model(model, quantize, profile, samples, *, recipe=None, data=None, teacher=None,
                  progress=False):
    """Compress and convert ``model`` (micro rewrites first for a TFLite Micro target), then check
    it on the target. Returns (tflite bytes, parsed model, report dict)."""
    from edgezoo.converters.compress import compress
    from edgezoo.converters.recipe import Recipe

    micro = bool(profile and profile.micro)
    recipe = (recipe or Recipe()).replace(quantize=quantize,
                                          target=profile.name if profile else None)
    compressed = compress(model, recipe, data, calibration=samples, teacher=teacher, micro=micro,
                          progress=progress)
    report = compressed.report
    parsed = verify_on_target(compressed.tflite, report, profile)
    return compressed.tflite, parsed, report


def measure_agreement(tflite, parsed, float_model, split, profile, report):
    """Top-1 agreement (and accuracy, with labels) of the converted model with the float one on a
    held-out split, in the target's runtime; the quantization debugger's summary when poor."""
    from edgezoo.edge.compare import top1
    from edgezoo.edge.runners.litert import LiteRTRunner
    from edgezoo.edge.runners.micro import MicroRunner

    runner = (MicroRunner(tflite, parsed) if profile is not None and profile.micro
              else LiteRTRunner(tflite, parsed, "default"))
    ours = runner.run(split.x)
    theirs = float_model.predict(split.x, batch_size=256, verbose=0)
    report["agreement"] = float((top1(ours) == top1(theirs)).mean())
    report["agreement_runtime"] = runner.name
    report["agreement_samples"] = int(len(split.x))
    if np.all(split.y >= 0):
        report["accuracy"] = {"float": float((top1(theirs) == split.y).mean()),
                              f"converted_{runner.name}": float((top1(ours) == split.y).mean())}
    return report["agreement"]


POOR_AGREEMENT = 0.98  # below it the report carries the quantization debugger's per-layer errors


def convert_pipeline(source, out_dir, quantize="int8", target=None, calib="digits",
                     input_shape=None, seed=0, recipe=None, teacher=None, progress=False):
    """``edgezoo convert``: prepare, compress, convert, verify on the target, write outputs.

    ``calib`` names the data: a data set's train split calibrates and fine-tunes,
    its held-out split measures agreement with the float model.
    """
    from edgezoo.converters.recipe import Recipe
    from edgezoo.provenance import provenance

    start = time.perf_counter()
    recipe = (recipe or Recipe(seed=seed)).replace(quantize=quantize, target=target)
    model, profile, _ = prepare_conversion(source, quantize, target, None, input_shape, recipe,
                                           seed=recipe.seed)
    dataset = load_data(calib, model.input_shape[1:])  # its train split calibrates
    if recipe.distill and teacher is None and recipe.distill != "self":
        teacher = load_keras_model(recipe.distill)
    data, parsed, report = convert_model(model, quantize, profile, None, recipe=recipe,
                                         data=dataset, teacher=teacher, progress=progress)
    held_out = dataset.test if dataset.test is not dataset.train else None
    if held_out is not None and len(held_out):
        agreement = measure_agreement(data, parsed, model, held_out, profile, report)
        if agreement < POOR_AGREEMENT and quantize == "int8":
            from edgezoo.converters.debugger import quantization_error_summary

            report["quantization_debugger"] = quantization_error_summary(
                model, dataset.train.x, micro=bool(profile and profile.micro))
    report["provenance"] = provenance(recipe.seed, {**report.pop("recipe"), "calibration": str(calib)})
    report["wall_time_s"] = time.perf_counter() - start
    write_outputs(out_dir, data, report, parsed)
    return report


def write_outputs(out_dir, data, report, parsed=None):
    """model.tflite, model_data.h/.cc (the C array for firmware) when the model is parsed, and
    report.json, report.md; each written atomically."""
    from edgezoo import files
    from edgezoo.converters.c_export import render_header, render_source
    from edgezoo.edge.report import write_reports

    out_dir = Path(out_dir)
    files.write_bytes(out_dir / "model.tflite", data)
    if parsed is not None:
        files.write_text(out_dir / "model_data.h", render_header(parsed, report.get("arena_bytes")))
        files.write_text(out_dir / "model_data.cc", render_source(data))
    write_reports(out_dir, report)
