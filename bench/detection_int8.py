"""Benchmark: the detectors trained by ``bench/detection_training.py`` converted to full int8
for stm32h743 (calibrated on the shapes train split), run in TFLite Micro on the 500 test
images, and scored by the same pycocotools evaluation as the float Keras model; with flash,
arena, float islands and the verification path's per-op gate from the conversion report.

    .venv/bin/python bench/detection_int8.py [--seeds 0 1 2]
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

import edgezoo  # noqa: F401  (Keras 2 mode before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).parent))
from detection_training import ARTIFACTS, MODELS  # noqa: E402
from report import RESULTS as RESULTS_DIR, write_section  # noqa: E402

RESULTS = RESULTS_DIR / "detection_int8.json"
TARGET = "stm32h743"
POINTS = 0.02  # int8 mAP@0.5 within 2 points of float


def run(path):
    from edgezoo.convert import convert_pipeline
    from edgezoo.detect import evaluate

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "int8"
        # the shapes images' range (runs saved before save_detector recorded it in the file)
        report = convert_pipeline(path, out, "int8", TARGET, calib="shapes", input_range=(0, 1))
        keras = evaluate(path, runtime="keras")
        micro = evaluate(out / "model.tflite", runtime="tflite-micro")
    per_op = report["checks"].get("micro_vs_reference_per_op", {})
    return {"keras_map": keras["mAP"], "keras_map50": keras["mAP50"],
            "micro_map": micro["mAP"], "micro_map50": micro["mAP50"], "images": micro["images"],
            "flash": report["budget"]["flash"]["used_bytes"],
            "arena": report["budget"]["ram"]["used_bytes"], "fits": report["budget"]["fits"],
            "passed": report["passed"], "per_op_gate": per_op.get("passed"),
            "float_islands": report.get("float_islands", []),
            "failed_checks": {k: {"value": c["value"], "limit": c["limit"]}
                              for k, c in report["checks"].items() if not c["passed"]}}


def _short(value):
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def table(results):
    lines = ["| model | seed | Keras mAP@0.5 | TFLite Micro int8 mAP@0.5 | difference | within 2 "
             "points | Keras / int8 mAP | flash B | arena B | fits stm32h743 | per-op gate | "
             "float islands | report's failed checks (value, limit) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, r in sorted(results.items()):
        name, seed = key.rsplit("_seed", 1)
        diff = r["micro_map50"] - r["keras_map50"]
        islands = ", ".join(f"{i['op']} x{i['count']}" for i in r["float_islands"]) or "none"
        failed = "; ".join(f"{k} ({_short(c['value'])}, {_short(c['limit'])})"
                           for k, c in r.get("failed_checks", {}).items()) or (
            "none" if "failed_checks" in r else "not recorded")
        lines.append(f"| {name} | {seed} | {r['keras_map50']:.3f} | {r['micro_map50']:.3f} | "
                     f"{diff:+.3f} | {'yes' if abs(diff) <= POINTS else 'NO'} | "
                     f"{r['keras_map']:.3f} / {r['micro_map']:.3f} | {r['flash']:,} | "
                     f"{r['arena']:,} | {'yes' if r['fits'] else 'NO'} | "
                     f"{'pass' if r['per_op_gate'] else 'FAIL'} | {islands} | {failed} |")
    diffs = np.array([r["micro_map50"] - r["keras_map50"] for r in results.values()])
    summary = (f"\nint8 minus float mAP@0.5 over {len(diffs)} runs: mean {diffs.mean():+.3f}, "
               f"largest gap {np.abs(diffs).max():.3f}.\n") if len(diffs) else ""
    return "\n".join(lines) + "\n" + summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    from edgezoo.base import files

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in [] if args.report_only else MODELS:
        for seed in args.seeds:
            path = ARTIFACTS / f"{name}_seed{seed}.keras"
            if not path.exists():
                print(f"{path} is missing: run bench/detection_training.py first", flush=True)
                continue
            results[f"{name}_seed{seed}"] = run(path)
            print(json.dumps({"model": name, "seed": seed, **results[f"{name}_seed{seed}"]}),
                  flush=True)
            files.write_text(RESULTS, json.dumps(results, indent=1) + "\n")
    write_section("detection-int8", "## Trained detectors in int8 on TFLite Micro\n\n"
                  "`bench/detection_int8.py`: each model trained by `bench/detection_training.py` "
                  f"converted to full int8 for {TARGET} (calibrated on the shapes train split), run "
                  "in TFLite Micro's reference kernels on the 500 test images and scored with "
                  "pycocotools as the float Keras model is; flash, arena and the per-op gate "
                  "(TFLite Micro against LiteRT's reference kernels) from the conversion report. "
                  "Float islands are ops TFLite Micro runs in float because it has no int8 "
                  "kernel.\n\n" + table(results) + "\n")


if __name__ == "__main__":
    main()
