"""Benchmark: each post-training quantization option against the stock converter, on the MLPerf
Tiny IC model and two zoo micro variants trained on digits; agreement with the float model in
TFLite Micro on each data set's test split, three seeds; writes a table into BENCHMARKS.md.

A seed draws the calibration samples (512 of the IC model's 4,600 calibration-band grid patches;
300 of digits' train split) and, for the zoo models, trains the model from scratch.

    .venv/bin/python bench/ptq_options.py [MODEL ...]   (default: every model below)
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import edgezoo  # noqa: F401  (Keras 2 mode before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).parent))
from micro_digits import DEFAULT, SETTINGS  # noqa: E402
from report import RESULTS as RESULTS_DIR, ROOT, write_section  # noqa: E402

RESULTS = RESULTS_DIR / "ptq_options.json"
MLPERF = ROOT.parent / "shared" / "reference-models" / "mlperf-tiny"
SEEDS = (0, 1, 2)
OPTIONS = {  # row -> recipe keys over int8 for the model's board
    "stock (min/max ranges)": {},
    "percentile ranges": {"ranges": "percentile"},
    "mse ranges": {"ranges": "mse"},
    "bias correction": {"bias_correction": True},
    "adaround": {"adaround": True},
    "percentile + adaround + bias correction": {"ranges": "percentile", "adaround": True,
                                                "bias_correction": True},
    # post-training clustering (LUT-compressed on TFLite Micro): 16 values per channel fitted on
    # the calibration inputs, by k-means alone or with GPTQ's error compensation
    "16 clusters, k-means (+ percentile, bias correction)": {
        "cluster": 16, "cluster_fit": "calibration", "ranges": "percentile", "bias_correction": True},
    "16 clusters, GPTQ (+ percentile, bias correction)": {
        "cluster": 16, "cluster_fit": "gptq", "ranges": "percentile", "bias_correction": True},
}
MODELS = {"mlperf_ic": "stm32l4r5", "resnest_micro": "nrf52840", "vit_micro": "nrf52840"}
# rows one model has (its layer names): the IC model's post-training cluster recipe, chosen on the
# validation split with the first 512 calibration-band patches (bench/mlperf_ic_ptq_choice.py),
# here over three other calibration draws
IC_PTQ = "recipes/mlperf_ic_ptq.json (per-layer GPTQ clusters, chosen on validation)"
MODEL_OPTIONS = {"mlperf_ic": {IC_PTQ: "mlperf_ic_ptq.json"}}


def options_for(name):
    """{row: recipe keys} of the rows ``name`` is measured on."""
    own = {}
    for row, file in MODEL_OPTIONS.get(name, {}).items():
        keys = json.loads((ROOT / "recipes" / file).read_text())
        own[row] = {k: v for k, v in keys.items() if k not in ("target", "seed", "calibration_samples")}
    return {**OPTIONS, **own}


def setup(name, seed):
    """(float model, calibration samples, held-out inputs, held-out labels or None)."""
    rng = np.random.default_rng(seed)
    if name == "mlperf_ic":
        from edgezoo.convert import load_keras_model
        from edgezoo.zoo.data import load_natural_patch_grid, load_natural_patches

        grid = load_natural_patch_grid((32, 32, 3)).train.x
        test = load_natural_patches((32, 32, 3)).test
        model = load_keras_model(MLPERF / "pretrainedResnet.h5")
        return model, grid[rng.choice(len(grid), 512, replace=False)], test.x, None
    from edgezoo.zoo import create_model, registry_contract
    from edgezoo.zoo.data.sources import load_for_model
    from edgezoo.zoo.training import deterministic, fit_classifier

    deterministic(seed)
    model = create_model(name)
    data = load_for_model("digits", model.input_shape[1:], registry_contract(name))
    settings = SETTINGS.get(name, DEFAULT)
    fit_classifier(model, data, seed=seed, progress=False, **settings)
    calibration = data.train.x[rng.choice(len(data.train.x), 300, replace=False)]
    return model, calibration, data.test.x, data.test.y


def measure(model, calibration, x, y, target, options):
    """One conversion: bytes, arena and TFLite Micro agreement (and accuracy) on ``x``."""
    from edgezoo.converters.compress import compress
    from edgezoo.converters.recipe import Recipe
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.runners.micro import MicroRunner
    from edgezoo.edge.verification import top1

    start = time.perf_counter()
    recipe = Recipe(target=target, calibration_samples=len(calibration), **options)
    result = compress(model, recipe, calibration=calibration, micro=True)
    wall = time.perf_counter() - start
    runner = MicroRunner(result.tflite, read_tflite(result.tflite))
    ours = top1(runner.run(x))
    reference = top1(model.predict(x, batch_size=256, verbose=0))
    row = {"agreement": float((ours == reference).mean()), "tflite_bytes": len(result.tflite),
           "arena_bytes": runner.arena_bytes, "convert_s": round(wall, 1)}
    if y is not None:
        row["accuracy"] = float((ours == np.asarray(y)).mean())
        row["float_accuracy"] = float((reference == np.asarray(y)).mean())
    return row


def official(x_reference_model):
    """The official int8 file's agreement on the IC test split (seed-independent)."""
    from edgezoo.edge.loader import load_tflite
    from edgezoo.edge.runners.micro import MicroRunner
    from edgezoo.edge.verification import top1

    model, x = x_reference_model
    data, parsed = load_tflite(MLPERF / "pretrainedResnet_quant.tflite")
    runner = MicroRunner(data, parsed)
    agreement = float((top1(runner.run(x)) == top1(model.predict(x, verbose=0))).mean())
    return {"agreement": agreement, "tflite_bytes": len(data), "arena_bytes": runner.arena_bytes}


def stats(values):
    values = np.asarray(values, float)
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)), "min": float(values.min())}


def table(results):
    lines = ["| model | option | agreement mean ± sd (min) | int8 accuracy | .tflite | arena | "
             "convert s |", "|---|---|---|---|---|---|---|"]
    for name in MODELS:
        if name not in results:
            continue
        entry = results[name]
        if "official" in entry:
            o = entry["official"]
            lines.append(f"| {name} | official int8 file | {o['agreement']:.4f} (every seed) | — | "
                         f"{o['tflite_bytes']:,} B | {o['arena_bytes']:,} B | — |")
        for option in options_for(name):
            runs = entry["options"].get(option)
            if not runs:
                continue
            a = stats([r["agreement"] for r in runs])
            acc = (f"{stats([r['accuracy'] for r in runs])['mean']:.4f}" if "accuracy" in runs[0]
                   else "—")
            lines.append(f"| {name} | {option} | {a['mean']:.4f} ± {a['sd']:.4f} ({a['min']:.4f}) | "
                         f"{acc} | {runs[0]['tflite_bytes']:,} B | {runs[0]['arena_bytes']:,} B | "
                         f"{np.mean([r['convert_s'] for r in runs]):.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", choices=[[], *MODELS], default=[])
    every = [*OPTIONS, *(row for rows in MODEL_OPTIONS.values() for row in rows)]
    parser.add_argument("--options", nargs="+", choices=every, default=every,
                        help="measure only these rows (the others keep their stored results)")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    from edgezoo.base import files

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in [] if args.report_only else (args.models or list(MODELS)):
        entry = results.get(name, {"options": {}})
        chosen = {o: k for o, k in options_for(name).items() if o in args.options}
        entry["options"].update({option: [] for option in chosen})
        for seed in SEEDS:
            model, calibration, x, y = setup(name, seed)
            if name == "mlperf_ic" and "official" not in entry:
                entry["official"] = official((model, x))
            for option, keys in chosen.items():
                row = measure(model, calibration, x, y, MODELS[name], keys)
                row["seed"] = seed
                entry["options"][option].append(row)
                print(json.dumps({"model": name, "option": option, **row}), flush=True)
            results[name] = entry
            files.write_text(RESULTS, json.dumps(results, indent=1) + "\n")
    write_section("ptq-options", "## Post-training quantization options\n\n"
                  "`bench/ptq_options.py`: full int8 for a TFLite Micro board, each option of "
                  "`converters/ptq_ranges.py` and `converters/ptq_weights.py` against the stock "
                  "converter. Agreement = TFLite Micro top-1 vs the float Keras model on the test "
                  "split (IC: the 2,400 natural-image test patches; zoo models: the digits test "
                  "split), over seeds 0, 1, 2; a seed draws the calibration samples (IC: 512 of "
                  "the 4,600 calibration-band grid patches; digits: 300 of the train split) and "
                  "trains the zoo models from scratch. Nothing was chosen on the test split: the "
                  "options' settings (99.99 % percentile, 400 AdaRound iterations, lambda 0.01) "
                  "are the literature's defaults, fixed before this run (GPTQ: dampening 0.01, "
                  "largest Hessian diagonal first, one least-squares refit).\n\n" + table(results)
                  + "\n")


if __name__ == "__main__":
    main()
