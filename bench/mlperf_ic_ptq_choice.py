"""Benchmark: which post-training clustering recipe for the MLPerf Tiny IC model, chosen on the
validation split only. Every candidate is converted for four calibration sets — the pipeline's
own (the first 512 patches of `natural_patches`' calibration band) and three draws of 512 of the
4,600 calibration-band grid patches (seeds 10-12: not the draws the test tables use) — and run in
TFLite Micro on the validation patches; among those within the size limits (≤ 0.6x the official
file's flash, RAM ≤ 1.15x its arena) the one whose lowest validation agreement is highest is
`recipes/mlperf_ic_ptq.json`, judged on the test split in the converters-mlperf and ptq-options
tables. Writes a table into BENCHMARKS.md.

    .venv/bin/python bench/mlperf_ic_ptq_choice.py [--report-only]
"""
import argparse
import json
import sys
from pathlib import Path

import edgezoo  # noqa: F401  (Keras 2 mode before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).parent))
from report import RESULTS as RESULTS_DIR, write_section  # noqa: E402
from converters_mlperf import MLPERF, TARGET, official_row  # noqa: E402

RESULTS = RESULTS_DIR / "mlperf_ic_ptq_choice.json"
FLASH_LIMIT, ARENA_LIMIT = 0.6, 1.15  # of the official file's, as the issue asks
MIDDLE = ("conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4", "conv2d_5", "conv2d_6", "conv2d_8")
# layer allocations: 16 values per channel, the largest layers at 8 to fit the flash limit; the
# first convolution (27 weights a channel) and the classifier stay int8 (their LUT tables cost
# more than they save: 56,960 B with them int8 against 56,992 B clustered)
ALLOCATIONS = {
    "rest 16, conv2d_7 8": {**dict.fromkeys(MIDDLE, 16), "conv2d_7": 8},
    "rest 16, conv2d_4 and conv2d_6 8":
        {**dict.fromkeys(MIDDLE, 16), "conv2d_7": 16, "conv2d_4": 8, "conv2d_6": 8},
}
DRAWS = ("pipeline", 10, 11, 12)  # calibration sets: the pipeline's, then grid draws by seed
BASE = {"ranges": "percentile", "calibration_samples": 512, "quantize": "int8", "seed": 0}


def candidates():
    """{name: recipe keys}: GPTQ with two dampenings, with and without bias correction, per
    allocation; and the k-means fit alone (what GPTQ adds)."""
    rows = {}
    for name, cluster in ALLOCATIONS.items():
        for damping in (0.01, 0.1):
            for bias in (True, False):
                rows[f"gptq {damping}{', bias corrected' if bias else ''}: {name}"] = {
                    **BASE, "cluster": cluster, "cluster_fit": "gptq", "gptq_damping": damping,
                    "bias_correction": bias}
        rows[f"k-means, bias corrected: {name}"] = {**BASE, "cluster": cluster,
                                                   "cluster_fit": "calibration",
                                                   "bias_correction": True}
    return rows


def calibration(draw):
    import numpy as np
    from edgezoo.zoo.data import load_natural_patch_grid, load_natural_patches

    if draw == "pipeline":
        return load_natural_patches((32, 32, 3)).train.x[:512]
    grid = load_natural_patch_grid((32, 32, 3)).train.x
    return grid[np.random.default_rng(draw).choice(len(grid), 512, replace=False)]


def run(name, keys, model, val, float_top1):
    from edgezoo.converters.compress import compress
    from edgezoo.converters.recipe import Recipe
    from edgezoo.converters.tflite_model import read_tflite
    from edgezoo.edge.runners.micro import MicroRunner
    from edgezoo.edge.verification import top1

    row = {"candidate": name, "keys": keys, "val_agreement": {}, "val_samples": len(val)}
    for draw in DRAWS:
        result = compress(model, Recipe(target=TARGET, **keys), calibration=calibration(draw),
                          micro=True)
        runner = MicroRunner(result.tflite, read_tflite(result.tflite))
        row["val_agreement"][str(draw)] = float((top1(runner.run(val)) == float_top1).mean())
        row["tflite_bytes"], row["arena_bytes"] = len(result.tflite), runner.arena_bytes
        print(name, draw, row["val_agreement"][str(draw)], flush=True)
    row["val_min"] = min(row["val_agreement"].values())
    return row


def validation():
    """(float model, validation patches, the float model's top-1 on them)."""
    from edgezoo.convert import load_keras_model
    from edgezoo.edge.verification import top1
    from edgezoo.zoo.data import load_natural_patches

    model = load_keras_model(MLPERF / "pretrainedResnet.h5")
    val = load_natural_patches((32, 32, 3)).val.x
    return model, val, top1(model.predict(val, verbose=0))


def official_validation_agreement(val, float_top1):
    """The official int8 file's TFLite Micro agreement on the validation patches (context)."""
    from edgezoo.edge.loader import load_tflite
    from edgezoo.edge.runners.micro import MicroRunner
    from edgezoo.edge.verification import top1

    data, parsed = load_tflite(MLPERF / "pretrainedResnet_quant.tflite")
    return float((top1(MicroRunner(data, parsed).run(val)) == float_top1).mean())


def choose(rows, official):
    """The candidate whose lowest validation agreement is highest, among those within both
    limits."""
    fits = [r for r in rows if r["tflite_bytes"] <= FLASH_LIMIT * official["tflite_bytes"]
            and r["arena_bytes"] <= ARENA_LIMIT * official["arena_bytes"]]
    return max(fits, key=lambda r: r["val_min"]) if fits else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    from edgezoo.base import files

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    official = official_row()
    model, val, float_top1 = validation()
    if not args.report_only:
        results = {}
        for name, keys in candidates().items():
            results[name] = run(name, keys, model, val, float_top1)
            files.write_text(RESULTS, json.dumps(results, indent=1) + "\n")
    rows = [results[n] for n in candidates() if n in results]
    chosen = choose(rows, official)
    draws = " | ".join(f"val. {d}" for d in DRAWS)
    body = (f"| candidate (post-training clusters, percentile ranges) | .tflite | × official | "
            f"arena | × official | {draws} | lowest |\n|---|---|---|---|---|"
            + "---|" * (len(DRAWS) + 1) + "\n")
    for r in rows:
        mark = " **(chosen)**" if r is chosen else ""
        values = " | ".join(f"{r['val_agreement'][str(d)]:.3f}" for d in DRAWS)
        body += (f"| {r['candidate']}{mark} | {r['tflite_bytes']:,} B | "
                 f"{r['tflite_bytes'] / official['tflite_bytes']:.3f} | {r['arena_bytes']:,} B | "
                 f"{r['arena_bytes'] / official['arena_bytes']:.3f} | {values} | "
                 f"{r['val_min']:.3f} |\n")
    write_section("mlperf-ic-ptq-choice", "## Choosing the post-training clustering recipe (validation "
                  "split)\n\n`bench/mlperf_ic_ptq_choice.py`: each candidate converted for "
                  f"`{TARGET}` with four calibration sets (`pipeline`: the first 512 patches of "
                  "`natural_patches`' calibration band, as `edgezoo convert --calib natural_patches` "
                  "takes them; 10-12: seeded draws of 512 calibration-band grid patches, not the "
                  "draws the test tables use) and run in TFLite Micro on the "
                  f"{rows[0]['val_samples']:,} validation patches (never the test split). The first "
                  "convolution and the classifier stay int8 (their LUT tables cost more than they "
                  "save). Chosen: the highest lowest-agreement within 0.6x the official flash and "
                  "1.15x its arena; it is `recipes/mlperf_ic_ptq.json`. `gptq D`: K values assigned "
                  "with GPTQ's error compensation (dampening D) and refitted by least squares "
                  "(`converters/ptq_gptq.py`); `k-means`: the input-weighted k-means alone. The "
                  "official int8 file agrees "
                  f"{official_validation_agreement(val, float_top1):.3f} on the same validation patches. "
                  "Candor: the candidate list was written after the test agreement of four earlier "
                  "candidates (seed 0) had been seen while developing the fit; the choice among "
                  "these ten is made on validation alone.\n\n"
                  + body + "\n")

if __name__ == "__main__":
    main()
