"""The main job: train vit_micro on digits, convert to int8 for nrf52840, prove it on both runtimes."""
import time

DEFAULTS = {"model": "vit_micro", "target": "nrf52840", "epochs": 60, "seed": 0,
            "learning_rate": 3e-3, "batch_size": 64, "shift": 1}


def train_and_verify(model_name, target="nrf52840", *, epochs, seed=0, learning_rate=3e-3,
                     batch_size=64, shift=1, calibration=300, progress=True, thresholds=None):
    """Train a zoo model on digits, convert it to int8 for ``target`` and verify it there.

    Returns (trained Keras model, .tflite bytes, report dict, timings dict). The
    train split trains and calibrates, the validation split picks the best epoch,
    and accuracy and agreement are measured on the whole test split alone.
    """
    from edgezoo.convert import convert_model, verify_conversion
    from edgezoo.converters.quantize import check_quantization, convert
    from edgezoo.converters.recipe import Recipe
    from edgezoo.edge.latency import keras_latency_ms, litert_latency_ms
    from edgezoo.edge.latency_model import estimate_latency
    from edgezoo.edge.profiles import get_profile, load_profiles
    from edgezoo.edge.runners.litert import LiteRTRunner
    from edgezoo.base.provenance import provenance
    from edgezoo.zoo import create_model, registry_contract
    from edgezoo.zoo.data.sources import load_for_model
    from edgezoo.zoo.training import deterministic, fit_classifier

    start = time.perf_counter()
    profile = get_profile(target)
    check_quantization("int8", micro=profile.micro)
    # The same seed must give the same model, report and .tflite on every run of a machine.
    determinism = deterministic(seed)
    model = create_model(model_name)
    contract = registry_contract(model_name)
    data = load_for_model("digits", model.input_shape[1:], contract)
    training = {"epochs": epochs, "seed": seed, "learning_rate": learning_rate,
                "batch_size": batch_size, "shift": shift, "optimizer": "AdamW"}
    fit_classifier(model, data, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                   seed=seed, progress=progress, shift=shift)
    train_s = time.perf_counter() - start

    recipe = Recipe(seed=seed, calibration_samples=calibration)
    compressed, parsed = convert_model(model, "int8", profile, data.train.x[:calibration],
                                       recipe=recipe)
    report = compressed.report
    report["input_contract"] = contract.as_dict()
    test = data.test
    verify_conversion(compressed, parsed, profile, test.x,
                      float_outputs=model.predict(test.x, batch_size=256, verbose=0),
                      labels=test.y, thresholds=thresholds,
                      inputs=f"digits test split ({len(test)} samples)")
    tflite = compressed.tflite
    float_tflite = convert(model, "none")
    report["float_tflite_bytes"] = len(float_tflite)
    float_runner, report["litert_float_kernels"] = float_litert_runner(float_tflite)
    report["latency_estimate_ms"] = {name: estimate_latency(parsed, board, tflite).ms
                                     for name, board in load_profiles().items()}
    report["data"] = {"name": "digits", "source": data.source, "train": len(data.train),
                      "val": len(data.val), "test": len(data.test),
                      "calibration_samples": min(calibration, len(data.train)),
                      "evaluated_on": "test"}
    recipe_info = {**report.pop("recipe"), "calibration": "digits train split",
                   "training": training}
    report["provenance"] = {**provenance(seed, recipe_info), "determinism": determinism}
    timings = {
        "latency_ms": {
            "keras": keras_latency_ms(model, test.x[:1]),
            "litert_float": (litert_latency_ms(float_runner, test.x[:1])
                             if float_runner is not None else None),
            "litert_int8": litert_latency_ms(LiteRTRunner(tflite, parsed, "default"), test.x[:1]),
        },
        "train_time_s": round(train_s, 3),
        "wall_time_s": round(time.perf_counter() - start, 3),
    }
    return model, tflite, report, timings


def float_litert_runner(float_tflite):
    """(runner, kernels) for the float .tflite: XNNPACK, else builtin kernels (XNNPACK refuses
    some float attention graphs), else reference ones; (None, error) when LiteRT refuses all."""
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.runners.litert import LiteRTRunner

    errors = []
    for kernels in ("default", "builtin", "reference"):
        try:
            runner = LiteRTRunner(float_tflite, read_tflite(float_tflite), kernels)
            return runner, runner.name
        except RuntimeError as exc:
            errors.append(f"{kernels}: {str(exc).splitlines()[0]}")
    return None, "LiteRT refused the float model: " + "; ".join(errors)


def run_demo(out_dir="artifacts/demo", model_name=DEFAULTS["model"], target=DEFAULTS["target"],
             epochs=DEFAULTS["epochs"], seed=DEFAULTS["seed"], progress=True):
    """Train, convert, verify and report; returns (report, timings), both also written to
    ``out_dir`` (report.json is the same for the same seed; timings.json holds wall times)."""
    from edgezoo.convert import write_outputs
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.base.output_set import output_set
    from edgezoo.zoo import registry_contract
    from edgezoo.zoo.data.contract import record_in_keras_file

    with output_set(out_dir) as folder:  # locked and checked before training
        model, tflite, report, timings = train_and_verify(
            model_name, target, epochs=epochs, seed=seed, learning_rate=DEFAULTS["learning_rate"],
            batch_size=DEFAULTS["batch_size"], shift=DEFAULTS["shift"], progress=progress)
        model.save(folder / "model.keras")
        record_in_keras_file(folder / "model.keras", registry_contract(model_name))
        write_outputs(folder, tflite, report, read_tflite(tflite), timings)
    return report, timings
