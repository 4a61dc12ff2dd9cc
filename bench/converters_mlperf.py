"""Benchmark: compression recipes on the real MLPerf Tiny IC model (ResNet-8) against its official
int8 file — size, TFLite Micro arena, and top-1 agreement with the float Keras model on the test
split of the natural-image patches (2,400 patches, three scales, a band of each photograph that
calibration and validation never touch); writes a table into BENCHMARKS.md and a size/agreement plot.

    .venv/bin/python bench/converters_mlperf.py [RECIPE ...]   (default: every recipe below)
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import edgezoo  # noqa: F401  (Keras 2 mode before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).parent))
from report import RESULTS as RESULTS_DIR, ROOT, write_section  # noqa: E402

RESULTS = RESULTS_DIR / "converters_mlperf.json"
PLOT = RESULTS_DIR / "converters_mlperf.png"
MLPERF = ROOT.parent / "shared" / "reference-models" / "mlperf-tiny"
TARGET = "stm32l4r5"

# name -> recipe keys over the defaults (distillation from the float model: the patches have no labels)
DISTILLED = {"distill": "self", "finetune_epochs": 8, "learning_rate": 5e-4, "lr_schedule": "cosine",
             "calibration_samples": 512}
# recipes/mlperf_ic_ptq.json: post-training clusters, chosen on the validation split by
# bench/mlperf_ic_ptq_choice.py (GPTQ-compensated); its k-means-only twin shows what GPTQ adds
PTQ = "post-training clusters (recipes/mlperf_ic_ptq.json)"
PTQ_KMEANS = "post-training clusters, k-means only (mlperf_ic_ptq.json, cluster_fit calibration)"
BEST = "best (recipes/mlperf_ic_best.json)"
RECIPES = {
    "int8": {"calibration_samples": 512},
    "cluster 16": {**DISTILLED, "cluster": 16},
    "cluster 8": {**DISTILLED, "cluster": 8},
    BEST: {},
    f"{BEST}, seed 1": {"seed": 1},  # the same recipe from other seeds: how much the margin moves
    f"{BEST}, seed 2": {"seed": 2},
    # the same recipe with activation ranges chosen by percentile (converters/ptq_ranges.py)
    f"{BEST} + percentile ranges": {"ranges": "percentile"},
    f"{BEST} + percentile ranges, seed 1": {"ranges": "percentile", "seed": 1},
    f"{BEST} + percentile ranges, seed 2": {"ranges": "percentile", "seed": 2},
    **{f"{PTQ}{'' if s == 0 else f', seed {s}'}": {"seed": s} for s in (0, 1, 2)},
    **{f"{PTQ_KMEANS}{'' if s == 0 else f', seed {s}'}": {"cluster_fit": "calibration",
                                                  "gptq_damping": 0.01, "seed": s}
       for s in (0, 1, 2)},
}


def recipe_for(name):
    from edgezoo.converters.recipe import Recipe

    for prefix, file in ((BEST, "mlperf_ic_best.json"), (PTQ, "mlperf_ic_ptq.json"),
                         (PTQ_KMEANS, "mlperf_ic_ptq.json")):
        if name.startswith(prefix):
            return Recipe.from_file(ROOT / "recipes" / file).replace(**RECIPES[name])
    return Recipe(target=TARGET, **RECIPES[name])


def official_row():
    from edgezoo.convert import load_keras_model
    from edgezoo.edge.verification import top1
    from edgezoo.edge.loader import load_tflite
    from edgezoo.edge.runners.micro import MicroRunner
    from edgezoo.zoo.data import load_natural_patches

    held_out = load_natural_patches((32, 32, 3)).test.x
    float_top1 = top1(load_keras_model(MLPERF / "pretrainedResnet.h5").predict(held_out, verbose=0))
    data, parsed = load_tflite(MLPERF / "pretrainedResnet_quant.tflite")
    runner = MicroRunner(data, parsed)
    agreement = float((top1(runner.run(held_out)) == float_top1).mean())
    return {"recipe": "official int8 file", "tflite_bytes": len(data), "arena_bytes": runner.arena_bytes,
            "agreement": agreement, "agreement_samples": len(held_out),
            "steps": ["(MLPerf Tiny reference)"], "decompression_bytes": 0, "wall_s": None}


def run_recipe(name):
    from edgezoo.convert import convert_pipeline

    recipe = recipe_for(name)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:  # the output set is written below it
        calib = "natural_patch_grid" if recipe.trains else "natural_patches"
        report = convert_pipeline(MLPERF / "pretrainedResnet.h5", Path(tmp) / "out",
                                  recipe.quantize, TARGET,
                                  calib=calib, recipe=recipe, progress=sys.stderr.isatty(),
                                  input_range="0,255")
    decoded = report["budget"]["ram"].get("decompression_in_arena_bytes", 0)
    return {"recipe": name, "tflite_bytes": report["tflite_bytes"], "arena_bytes": report["arena_bytes"],
            "agreement": report["agreement"]["value"], "steps": report["provenance"]["recipe"]["steps"],
            "decompression_bytes": decoded, "wall_s": round(time.perf_counter() - start, 1)}


def table(rows, official):
    head = ("| recipe | steps | .tflite | × official | arena (incl. decoded weights) | × official | "
            "agreement | wall s |\n|---|---|---|---|---|---|---|---|\n")
    body = ""
    for r in rows:
        decoded = f" ({r['decompression_bytes']:,} B decoded)" if r["decompression_bytes"] else ""
        body += (f"| {r['recipe']} | {', '.join(r['steps'])} | {r['tflite_bytes']:,} B | "
                 f"{r['tflite_bytes'] / official['tflite_bytes']:.2f} | {r['arena_bytes']:,} B"
                 f"{decoded} | "
                 f"{r['arena_bytes'] / official['arena_bytes']:.2f} | {r['agreement']:.3f} | "
                 f"{r['wall_s'] if r['wall_s'] is not None else '—'} |\n")
    return head + body


def plot(rows, official):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.scatter(r["tflite_bytes"] / 1024, r["agreement"],
                   marker="*" if r is official else "o", s=120 if r is official else 40)
        ax.annotate(r["recipe"], (r["tflite_bytes"] / 1024, r["agreement"]), fontsize=7)
    ax.axvline(0.6 * official["tflite_bytes"] / 1024, ls="--", c="gray", label="0.6 × official size")
    ax.axhline(official["agreement"], ls=":", c="gray", label="official agreement")
    ax.set_xlabel(".tflite size (KiB)")
    ax.set_ylabel(f"top-1 agreement with float ({official['agreement_samples']:,} test patches)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    from edgezoo.base import files

    with files.atomic_path(PLOT) as tmp:
        fig.savefig(tmp, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="*", choices=[[], *RECIPES], default=[])
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the table and plot from bench/results without converting")
    args = parser.parse_args(argv)
    from edgezoo.base import files

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["official int8 file"] = official_row()
    for name in [] if args.report_only else (args.recipes or list(RECIPES)):
        results[name] = run_recipe(name)
        print(json.dumps(results[name]), flush=True)
        files.write_text(RESULTS, json.dumps(results, indent=1) + "\n")
    official = results["official int8 file"]
    rows = [official] + [results[n] for n in RECIPES if n in results]
    write_section("converters-mlperf", "## Compression recipes on the MLPerf Tiny IC model\n\n"
                  "`bench/converters_mlperf.py`: `pretrainedResnet.h5` (78,666 parameters) converted by "
                  f"`edgezoo.convert.convert_pipeline` for `{TARGET}`; agreement = TFLite Micro top-1 vs "
                  f"the float Keras model on the {official['agreement_samples']:,} test patches of "
                  "`natural_patches` (scikit-learn's two sample photographs cut into vertical bands: "
                  "calibration columns 0–207, validation 224–351, test 368–639; square crops of 32, 48 "
                  "and 64 px resized to 32x32). Training steps distil from the float model on the "
                  "calibration-band patch grid (no labels exist). The arena of a LUT-compressed "
                  "model holds its decoded weights (TFLite Micro plans DECODE outputs there). "
                  "Distillation: 8 epochs, cosine learning rate from 5e-4, T = 4. The three seeds of "
                  "the best recipe show how far agreement moves with the seed alone (0.69–0.81 "
                  "on this test split): differences of a few points between rows are within that "
                  "spread. No recipe below 0.6x the official size reaches the official file's "
                  "agreement on every seed yet: the post-training clusters of "
                  "`recipes/mlperf_ic_ptq.json` (no training; chosen on the validation split, "
                  "`bench/mlperf_ic_ptq_choice.py`) come nearest, where the seed only starts the "
                  "k-means. ""Plot: `bench/results/converters_mlperf.png`.\n\n" + table(rows, official) + "\n")
    plot(rows, official)


if __name__ == "__main__":
    main()
