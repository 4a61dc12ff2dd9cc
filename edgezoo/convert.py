"""Convert-then-verify pipeline: Keras model -> TFLite, checked on the target's runtime.

Everything that can be refused is refused before the long work starts
(unknown target or model, a quantization the target cannot run, missing or
unusable calibration data, data the model's input contract cannot take, an
unusable ``--out``); outputs are written at the end. Agreement is measured on
the data's test split, which nothing calibrates, fine-tunes or chooses on.
"""
import time
from pathlib import Path

from edgezoo.base.errors import DataError, RecipeError

CALIBRATION_HELP = (
    "int8 quantization sets every tensor's range from representative data: a few hundred "
    "inputs like the ones the model meets, in its own input range. Pass --calib with a data "
    "set (digits, natural_patches, natural_patch_grid) or a .npy/.npz file of such inputs")


def load_keras_model(source, input_shape=None, num_classes=None, seed=0, trust_model_code=False):
    """A registry name (a fresh model, initialized from ``seed``), a .keras/.h5 file, a Keras
    SavedModel folder or a checkpoint (a hub folder or .safetensors file, ``edgezoo.port``). A
    file is refused, before Keras reads it, if loading or running it would run its own code or
    touch files (``edgezoo.edge.safe_load``); ``trust_model_code`` lets the file's code (Lambda
    layers, custom objects, ...) run, for files the user trusts; never the default. A checkpoint,
    or a .keras file ported from one, comes with ``model.preprocessing`` and
    ``model.checkpoint_source`` (``edgezoo.zoo.record``)."""
    import tf_keras as keras

    import edgezoo.converters  # noqa: F401  (registers micro_gelu for rewritten models)
    from edgezoo import zoo
    from edgezoo.edge.safe_load import load_model_file
    from edgezoo.port import is_checkpoint, load_checkpoint
    from edgezoo.zoo.record import restore

    path = Path(str(source))
    if is_checkpoint(path):
        return load_checkpoint(path)
    if path.suffix in (".keras", ".h5") or path.exists():
        return restore(load_model_file(path, trust_model_code=trust_model_code), path)
    keras.utils.set_random_seed(seed)
    return zoo.create_model(str(source), num_classes=num_classes, input_shape=input_shape)


def model_contract(source, input_range=None):
    """The input contract: the user's --input-range, else what the file, checkpoint
    preprocessing or registry records."""
    from edgezoo.port import checkpoint_contract, is_checkpoint
    from edgezoo.zoo import read_preprocessing, registry_contract
    from edgezoo.zoo.data.contract import read_from_keras_file, user_contract

    given = user_contract(input_range)
    if given is not None:
        return given
    path = Path(str(source))
    if is_checkpoint(path):
        return checkpoint_contract(read_preprocessing(path))
    if path.suffix in (".keras", ".h5") or path.exists():
        return read_from_keras_file(path)
    return registry_contract(str(source))


def prepare_conversion(source, quantize="int8", target=None, calib=None, input_shape=None,
                       recipe=None, seed=0, input_range=None, trust_model_code=False):
    """Every check that needs no conversion, in order: (model, profile, data set or None, contract)."""
    from edgezoo.converters.quantize import check_quantization
    from edgezoo.edge.profiles import get_profile
    from edgezoo.zoo.data.sources import load_for_model

    profile = get_profile(target) if target else None
    check_quantization(quantize, micro=bool(profile and profile.micro))
    if recipe is not None:
        recipe.check_target(bool(profile and profile.micro))
    model = load_keras_model(source, input_shape=input_shape, seed=seed,
                             trust_model_code=trust_model_code)
    if quantize in ("int8", "int16x8") and calib is None:
        raise RecipeError(f"--quantize {quantize} needs calibration data. {CALIBRATION_HELP}")
    contract = model_contract(source, input_range)
    data = None if calib is None else load_for_model(calib, model.input_shape[1:], contract,
                                                     num_classes=_classes(model))
    if data is not None and quantize in ("int8", "int16x8") and not len(data.train):
        raise DataError(f"{calib} has no calibration samples")
    return model, profile, data, contract


def _classes(model):
    """Classes of a classifier's single output, or None (labels are then not range-checked)."""
    shape = model.output_shape
    return shape[-1] if isinstance(shape, tuple) and len(shape) == 2 and shape[-1] else None


def convert_model(model, quantize, profile, samples, *, recipe=None, data=None, teacher=None,
                  progress=False, task=None, thresholds=None):
    """Compress and convert ``model`` (micro rewrites first for a TFLite Micro target; for a
    LiteRT board's int8, the form measured fastest at agreement on ``data``'s validation split,
    ``edgezoo.cpu_form``). Returns (CompressedModel, parsed model)."""
    from edgezoo.converters.compress import compress
    from edgezoo.converters.recipe import Recipe
    from edgezoo.converters.tflite_model import read_tflite

    micro = bool(profile and profile.micro)
    recipe = (recipe or Recipe()).replace(quantize=quantize,
                                          target=profile.name if profile else None)
    compressed = compress(model, recipe, data, calibration=samples, teacher=teacher, micro=micro,
                          progress=progress, task=task)
    if compressed.dense_candidates:
        from edgezoo.cli.stages import stage
        from edgezoo.dense_choice import choose_dense_layers
        from edgezoo.edge.verification import DEFAULT_THRESHOLDS
        from edgezoo.zoo.tasks import get_task

        stage("choosing each Dense layer's form in TFLite Micro on the validation split")
        choose_dense_layers(compressed, model, data, get_task(compressed.report["task"]),
                            thresholds or DEFAULT_THRESHOLDS, names=model.input_names)
    if micro and "micro_compression" in compressed.report["steps"]:
        from edgezoo.cli.stages import stage
        from edgezoo.lut_fit import fit_lut_to_board

        stage(f"measuring the LUT-compressed arena against {profile.name}'s RAM")
        fit_lut_to_board(compressed, profile)
        compressed.report["tflite_bytes"] = len(compressed.tflite)
    if compressed.candidates:
        from edgezoo.cli.stages import stage
        from edgezoo.cpu_form import choose_cpu_form
        from edgezoo.edge.verification import DEFAULT_THRESHOLDS
        from edgezoo.zoo.tasks import get_task

        board = profile.name if profile else "LiteRT"
        stage(f"timing the int8 forms ({', '.join(compressed.candidates)}) for {board}")
        choose_cpu_form(compressed, model, data, get_task(compressed.report["task"]),
                        thresholds or DEFAULT_THRESHOLDS, recipe.max_latency_ms,
                        names=model.input_names)
    parsed = read_tflite(compressed.tflite)
    compressed.report.update({"ops": parsed.op_names, "op_types": parsed.op_types(),
                              "float_islands": parsed.float_islands()})
    return compressed, parsed


def verify_conversion(compressed, parsed, profile, x, *, float_outputs=None, labels=None,
                      thresholds=None, inputs="", real_data=True, input_names=None):
    """The verification path on held-out samples ``x`` for a freshly converted model (the
    uncompressed bytes feed the per-op gate of a LUT-compressed one); merged into the report."""
    from edgezoo.edge.verification import verify

    report = compressed.report
    decoded = (report.get("steps", {}).get("micro_compression") or {}).get("decompression_bytes")
    result = verify(compressed.tflite, parsed, profile, x, float_outputs=float_outputs,
                    labels=labels, thresholds=thresholds, inputs=inputs, real_data=real_data,
                    lsb_model=compressed.uncompressed_tflite if decoded is not None else None,
                    decompression_bytes=decoded or 0, task=report.get("task"),
                    input_names=input_names)
    if decoded:  # TFLite Micro plans DECODE outputs in its arena: reported, not added again
        result["budget"]["ram"]["decompression_in_arena_bytes"] = decoded
    report.update(result)
    return result


def convert_pipeline(source, out_dir, quantize="int8", target=None, calib=None, input_shape=None,
                     seed=0, recipe=None, teacher=None, progress=False, input_range=None,
                     thresholds=None, trust_model_code=False, task=None):
    """``edgezoo convert``: prepare, compress, convert, verify on the target, write outputs.

    ``calib`` names the data: its train split calibrates and fine-tunes, its test split
    measures agreement with the float model (never calibrated or chosen on).
    ``task``: the model's task contract (default ``zoo.tasks.task_of``: the registry's, or
    classification for a one-output classifier). Returns the report (``report["passed"]``
    says whether every check held).
    """
    from edgezoo.converters.recipe import Recipe
    from edgezoo.base.provenance import provenance

    from edgezoo.base.output_set import output_set
    from edgezoo.cli.stages import stage

    start = time.perf_counter()
    recipe = (recipe or Recipe(seed=seed)).replace(quantize=quantize, target=target)
    with output_set(out_dir) as folder:  # locked and checked now; shown only when complete
        stage(f"loading {source}")
        model, profile, dataset, contract = prepare_conversion(
            source, quantize, target, calib, input_shape, recipe, seed=recipe.seed,
            input_range=input_range, trust_model_code=trust_model_code)
        if recipe.distill and teacher is None and recipe.distill != "self":
            stage(f"loading the teacher {recipe.distill}")
            teacher = load_keras_model(recipe.distill, trust_model_code=trust_model_code)
        stage(f"compressing and converting ({', '.join(recipe.steps())})")
        compressed, parsed = convert_model(model, quantize, profile, None, recipe=recipe,
                                           data=dataset, teacher=teacher, progress=progress,
                                           task=task, thresholds=thresholds)
        report = compressed.report
        report["model"] = Path(str(source)).name if Path(str(source)).suffix else str(source)
        report["input_contract"] = None if contract is None else contract.as_dict()
        if getattr(model, "checkpoint_source", None):  # a checkpoint, or a file ported from one
            report.update(preprocessing=model.preprocessing, checkpoint=model.checkpoint_source)
        where = f"on {profile.name} ({profile.runtime})" if profile else "in LiteRT"
        if dataset is not None:
            report["data"] = {"name": dataset.name, "source": dataset.source,
                              "calibration_samples": report["recipe"]["calibration_samples"],
                              "train": len(dataset.train), "val": len(dataset.val),
                              "test": len(dataset.test), "evaluated_on": "test"}
        if dataset is not None and len(dataset.test):
            test = dataset.test
            micro = "per-op gate, arena, " if profile and profile.micro else ""
            stage(f"verifying {where}: {micro}agreement on {len(test)} test samples")
            verify_conversion(compressed, parsed, profile, test.x,
                              float_outputs=model.predict(test.x, batch_size=256, verbose=0),
                              labels=test.y, thresholds=thresholds,
                              inputs=f"{dataset.name} test split ({len(test)} samples)")
            agreement = report["agreement"]["value"]
            if (report["task"] == "classification" and len(model.inputs) == 1
                    and agreement < report["thresholds"]["top1_agreement"] and quantize == "int8"
                    and report.get("cpu_form", {}).get("chosen", "full_int8") == "full_int8"):
                from edgezoo.converters.debugger import quantization_error_summary

                stage("agreement below the threshold: per-layer quantization error")
                report["quantization_debugger"] = quantization_error_summary(
                    model, dataset.train.x, micro=bool(profile and profile.micro))
        else:  # no held-out data: the board checks alone, on seeded random inputs
            from edgezoo.edge.verification import random_inputs

            stage(f"verifying {where} on 32 seeded random inputs (no data given)")
            x = random_inputs(list(parsed.inputs), 32, recipe.seed)
            verify_conversion(compressed, parsed, profile, x[0] if len(x) == 1 else x,
                              thresholds=thresholds, inputs="32 seeded random inputs",
                              real_data=False)
        if profile is not None and not profile.micro:  # a CPU board: where its time goes
            from edgezoo.edge.op_latency import op_breakdown, xnnpack_partitions

            stage("timing each op in LiteRT's default kernels")
            breakdown = op_breakdown(compressed.tflite, parsed)
            report["latency_breakdown"] = {"xnnpack_partitions": xnnpack_partitions(
                compressed.tflite), "by_op_ms": breakdown["by_op"],
                "total_ms": breakdown["total_ms"], "note": breakdown["note"]}
        report["provenance"] = provenance(recipe.seed, {
            **report.pop("recipe"), "calibration": None if calib is None else str(calib)})
        timings = {"wall_time_s": round(time.perf_counter() - start, 3)}
        stage(f"writing {out_dir}")
        write_outputs(folder, compressed.tflite, report, parsed, timings)
    return report


def write_outputs(out_dir, data, report, parsed=None, timings=None):
    """model.tflite, model_data.h/.cc (the C array for firmware) when the model is parsed,
    report.png (per-layer weight size and error), report.json and report.md (identical for
    identical inputs and seed), timings.json (wall times, which are not). ``out_dir`` is an
    output set's staging folder (``edgezoo.base.output_set``): it is shown whole or not at all."""
    import json

    from edgezoo.converters.c_export import render_header, render_source
    from edgezoo.edge.plots import write_report_plot
    from edgezoo.edge.report import write_reports

    out_dir = Path(out_dir)
    (out_dir / "model.tflite").write_bytes(data)
    if parsed is not None:
        (out_dir / "model_data.h").write_text(render_header(parsed, report.get("arena")))
        (out_dir / "model_data.cc").write_text(render_source(data))
    write_report_plot(out_dir / "report.png", report, data)
    report["plot"] = "report.png"
    write_reports(out_dir, report)
    if timings is not None:
        (out_dir / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
