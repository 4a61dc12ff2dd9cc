"""The main job: train vit_micro on digits, convert to int8 for nrf52840, prove it on both runtimes."""
import time
from pathlib import Path

DEFAULTS = {"model": "vit_micro", "target": "nrf52840", "epochs": 60, "seed": 0,
            "learning_rate": 3e-3, "batch_size": 64, "shift": 1}


def train_and_verify(model_name, target="nrf52840", *, epochs, seed=0, learning_rate=3e-3,
                     batch_size=64, shift=1, calibration=300, progress=True):
    """Train a zoo model on digits, convert it to int8 for ``target`` and verify it there.

    Returns (trained Keras model, .tflite bytes, report dict). Accuracy and
    agreement are measured on the whole digits test split; the test split
    chooses nothing (the best epoch is picked on the validation split).
    """
    from edgezoo.convert import convert_model
    from edgezoo.converters.quantize import check_quantization
    from edgezoo.edge.compare import compare_runtimes
    from edgezoo.edge.latency import keras_latency_ms, litert_latency_ms
    from edgezoo.converters.quantize import convert
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.latency_model import estimate_latency
    from edgezoo.edge.macs import total_macs
    from edgezoo.edge.profiles import get_profile, load_profiles
    from edgezoo.edge.runners.litert import LiteRTRunner
    from edgezoo.edge.runners.micro import MicroRunner
    from edgezoo.provenance import provenance
    from edgezoo.zoo import create_model
    from edgezoo.zoo.data import load_dataset
    from edgezoo.zoo.training import fit_classifier

    import tensorflow as tf

    start = time.perf_counter()
    profile = get_profile(target)
    check_quantization("int8", micro=profile.micro)
    # The same seed must give the same model, report and .tflite on every run of a machine.
    tf.config.experimental.enable_op_determinism()
    model = create_model(model_name)
    data = load_dataset("digits", model.input_shape[1:])
    training = {"epochs": epochs, "seed": seed, "learning_rate": learning_rate,
                "batch_size": batch_size, "shift": shift, "optimizer": "AdamW"}
    fit_classifier(model, data, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                   seed=seed, progress=progress, shift=shift)
    train_s = time.perf_counter() - start
    float_outputs = model.predict(data.test.x, batch_size=256, verbose=0)

    tflite, parsed, report = convert_model(model, "int8", profile, data.train.x[:calibration])
    runner = MicroRunner(tflite, parsed)
    runtimes, _ = compare_runtimes(tflite, parsed, data.test.x, labels=data.test.y,
                                   float_outputs=float_outputs, micro_runner=runner)
    report["accuracy"] = runtimes.pop("accuracy")
    report["agreement"] = runtimes.pop("micro_vs_float_top1")
    report["runtimes"] = runtimes
    float_tflite = convert(model, "none")
    report["float_tflite_bytes"] = len(float_tflite)
    float_runner, report["litert_float_kernels"] = float_litert_runner(float_tflite)
    report["latency_ms"] = {
        "keras": keras_latency_ms(model, data.test.x[:1]),
        "litert_float": (litert_latency_ms(float_runner, data.test.x[:1])
                         if float_runner is not None else None),
        "litert_int8": litert_latency_ms(LiteRTRunner(tflite, parsed, "default"), data.test.x[:1]),
        "estimate": estimate_latency(parsed, profile, tflite).ms,
    }
    report["macs"] = total_macs(parsed)
    report["latency_estimate_ms"] = {name: estimate_latency(parsed, board, tflite).ms
                                     for name, board in load_profiles().items()}
    report["data"] = {"name": "digits", "train": len(data.train), "val": len(data.val),
                      "test": len(data.test), "evaluated_on": "test"}
    recipe = {**report.pop("recipe"), "calibration": "digits train split", "training": training}
    report["provenance"] = provenance(seed, recipe)
    report["train_time_s"] = train_s
    report["wall_time_s"] = time.perf_counter() - start
    return model, tflite, report


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
    """Train, convert, verify and report; returns the report dict (also written to ``out_dir``)."""
    from edgezoo import files
    from edgezoo.convert import write_outputs

    model, tflite, report = train_and_verify(
        model_name, target, epochs=epochs, seed=seed, learning_rate=DEFAULTS["learning_rate"],
        batch_size=DEFAULTS["batch_size"], shift=DEFAULTS["shift"], progress=progress)
    out_dir = Path(out_dir)
    with files.atomic_path(out_dir / "model.keras") as tmp:
        model.save(tmp)
    write_outputs(out_dir, tflite, report)
    return report
