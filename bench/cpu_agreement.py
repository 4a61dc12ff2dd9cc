"""Benchmark: the int8 form edgezoo ships for `rpi4`, on every zoo micro variant trained on
digits over three seeds: which form the chooser picked (on the validation split) and its top-1
agreement with the float model on the test split in LiteRT's default kernels (XNNPACK);
writes a table into BENCHMARKS.md.

    .venv/bin/python bench/cpu_agreement.py [MODEL ...]   (default: every *_micro model)
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

import edgezoo  # noqa: F401  (Keras 2 mode before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).parent))
from micro_digits import DEFAULT, SEEDS, SETTINGS  # noqa: E402
from report import RESULTS as RESULTS_DIR, write_section  # noqa: E402

RESULTS = RESULTS_DIR / "cpu_agreement.json"
TARGET = "rpi4"
GOAL = 0.99


def run(name, seed):
    from edgezoo.convert import convert_model
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.profiles import get_profile
    from edgezoo.edge.runners.litert import IsolatedLiteRTRunner
    from edgezoo.edge.verification import top1
    from edgezoo.zoo import create_model, registry_contract
    from edgezoo.zoo.data.sources import load_for_model
    from edgezoo.zoo.training import deterministic, fit_classifier

    deterministic(seed)
    model = create_model(name)
    data = load_for_model("digits", model.input_shape[1:], registry_contract(name))
    fit_classifier(model, data, seed=seed, progress=False, **SETTINGS.get(name, DEFAULT))
    from edgezoo.base.errors import RecipeError

    try:
        compressed, parsed = convert_model(model, "int8", get_profile(TARGET), data.train.x[:300],
                                           data=data)
    except RecipeError as exc:  # recorded, not hidden: the table shows it
        return {"seed": seed, "error": str(exc)}
    test = data.test.x
    runner = IsolatedLiteRTRunner(compressed.tflite, read_tflite(compressed.tflite), "default")
    ours = top1(runner.run_all_float(test)[0])
    reference = top1(model.predict(test, batch_size=256, verbose=0))
    form = compressed.report["cpu_form"]
    return {"seed": seed, "chosen": form["chosen"], "test_agreement": float((ours == reference).mean()),
            "val_agreement": form["candidates"][form["chosen"]].get("agreement"),
            "test_samples": len(test)}


def table(results):
    lines = ["| model | seeds | form shipped | test agreement mean ± sd (min) | "
             f"≥ {GOAL:.0%} every seed |", "|---|---|---|---|---|"]
    for name, runs in sorted(results.items()):
        failed = [r for r in runs if "error" in r]
        if failed:
            lines.append(f"| {name} | {len(runs)} | — | seeds {', '.join(str(r['seed']) for r in failed)}"
                         f" refused: {failed[0]['error'][:160]}… | NO |")
            continue
        a = np.array([r["test_agreement"] for r in runs])
        forms = ", ".join(f"{form} (seed{'s' * (len(seeds) > 1)} {', '.join(seeds)})"
                          for form, seeds in sorted(_seeds_by_form(runs).items()))
        lines.append(f"| {name} | {len(runs)} | {forms} | {a.mean():.4f} ± "
                     f"{a.std(ddof=1) if len(a) > 1 else 0:.4f} ({a.min():.4f}) | "
                     f"{'yes' if a.min() >= GOAL else 'NO'} |")
    return "\n".join(lines) + "\n"


def _seeds_by_form(runs):
    by_form = {}
    for r in runs:
        by_form.setdefault(r["chosen"], []).append(str(r["seed"]))
    return by_form


def main(argv=None):
    from edgezoo.zoo.registry import list_models

    micro = [m for m in list_models(task="classification") if m.endswith("_micro")]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", choices=[[], *micro], default=[])
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    from edgezoo.base import files

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in [] if args.report_only else (args.models or micro):
        results[name] = []
        for seed in SEEDS:
            results[name].append(run(name, seed))
            print(json.dumps({"model": name, **results[name][-1]}), flush=True)
            files.write_text(RESULTS, json.dumps(results, indent=1) + "\n")
    write_section("cpu-agreement", "## The rpi4 int8 form on trained models\n\n"
                  "`bench/cpu_agreement.py`: each micro variant trained on digits (the settings of "
                  "`bench/micro_digits.py`), seeds 0, 1, 2, converted for `rpi4`: the chooser "
                  "(`edgezoo/cpu_form.py`) times every int8 form and compares it with the float "
                  "model on the validation split; the shipped form's top-1 agreement with the "
                  "float model is measured here on the digits test split (LiteRT default kernels, "
                  "XNNPACK), which nothing chose on. `float` ships where no int8 form was faster "
                  "than the float model (within the chooser's tie margin).\n\n" + table(results) + "\n")


if __name__ == "__main__":
    main()
