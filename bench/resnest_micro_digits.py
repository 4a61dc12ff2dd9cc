"""Train resnest_micro on the bundled digits (seeded), quantize it to int8 for an nRF52840,
and report float and int8 accuracy on the whole test split, on LiteRT and TFLite Micro.

    .venv/bin/python bench/resnest_micro_digits.py [--epochs 30] [--seed 0] [--json out.json]
"""
import argparse
import json
import sys
import time

import numpy as np

import edgezoo  # noqa: F401  (Keras 2 mode before TensorFlow loads)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration", type=int, default=300, help="train images for int8 ranges")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)

    from edgezoo.convert import convert_model
    from edgezoo.edge import compare_runtimes, get_profile
    from edgezoo.zoo import create_model
    from edgezoo.zoo.data import load_dataset
    from edgezoo.zoo.training import fit_classifier

    model = create_model("resnest_micro")
    data = load_dataset("digits", model.input_shape[1:])
    start = time.perf_counter()
    fit_classifier(model, data, epochs=args.epochs, batch_size=args.batch_size,
                   learning_rate=args.learning_rate, seed=args.seed, progress=sys.stderr.isatty())
    train_s = time.perf_counter() - start

    test = data.test
    float_out = model.predict(test.x, verbose=0)
    tflite, parsed, report = convert_model(model, "int8", get_profile("nrf52840"),
                                           data.train.x[:args.calibration])
    runtimes, _ = compare_runtimes(tflite, parsed, test.x, labels=test.y, float_outputs=float_out)
    acc = runtimes["accuracy"]
    result = {
        "model": model.name,
        "params": int(model.count_params()),
        "input_shape": list(model.input_shape[1:]),
        "epochs": args.epochs,
        "seed": args.seed,
        "train_seconds": round(train_s, 1),
        "test_samples": len(test),
        "float_test_accuracy": acc["float"],
        "int8_litert_accuracy": acc["int8_litert"],
        "int8_micro_accuracy": acc["int8_micro"],
        "int8_micro_vs_float_top1": runtimes["micro_vs_float_top1"],
        "litert_vs_micro_top1": runtimes["default_vs_micro_top1"],
        "micro_vs_reference_max_lsb": runtimes["micro_vs_reference_max_lsb"],
        "tflite_bytes": report["tflite_bytes"],
        "arena_bytes": report["arena_bytes"],
        "fits_nrf52840": report["fits"],
        "ops": report["ops"],
    }
    for key, value in result.items():
        print(f"{key:28s} {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
