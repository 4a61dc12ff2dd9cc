"""Benchmark: float against int8 on a CPU in LiteRT (XNNPACK, one thread, batch 1).

For every zoo micro variant (and, with --paper, vit_ti16 and resnest50): the float .tflite,
the stock full-int8 conversion and the form edgezoo ships for rpi4, each with its XNNPACK
partition count and median invoke time over three interleaved rounds in this one process, the interpreter built without preserving tensors. Host
figures (the CPU is named in the table), not a Raspberry Pi 4. Untrained weights: latency
does not depend on their values (no sparsity here).

    .venv/bin/python bench/cpu_latency.py [--paper] [--runs N] [MODEL ...]
"""
import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np

from edgezoo.cpu_form import measure_latency  # (Keras 2 mode before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).parent))
from report import RESULTS as RESULTS_DIR, write_section  # noqa: E402

RESULTS = RESULTS_DIR / "cpu_latency.json"
MICRO = ("vit_micro", "resnest_micro", "cswin_micro", "perceiver_micro", "perceiver_io_micro")
PAPER = ("vit_ti16", "resnest50")


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


SHIPPED = "rpi4 form"


def forms(name):
    """({form: .tflite bytes}, shipped form's name): float, stock int8 and the form edgezoo ships
    for rpi4 (``edgezoo.cpu_form``: every int8 form timed, the fastest kept; untrained weights,
    so chosen on latency alone). Float and stock int8 are the chooser's own candidates."""
    import tf_keras as keras

    from edgezoo.converters.compress import compress
    from edgezoo.converters.recipe import Recipe
    from edgezoo.cpu_form import choose_cpu_form
    from edgezoo.edge.verification import DEFAULT_THRESHOLDS
    from edgezoo.zoo import create_model
    from edgezoo.zoo.tasks import get_task

    keras.utils.set_random_seed(0)
    model = create_model(name)
    calibration = np.random.default_rng(0).uniform(0, 1, (32, *model.input_shape[1:]))
    calibration = calibration.astype(np.float32)
    shipped = compress(model, Recipe(target="rpi4"), calibration=calibration)
    candidates = dict(shipped.candidates)
    chosen = choose_cpu_form(shipped, model, None, get_task(shipped.report["task"]),
                             DEFAULT_THRESHOLDS)
    return {"float": candidates["float"], "int8 (stock)": candidates["full_int8"],
            SHIPPED: shipped.tflite}, chosen


def table(results, cpu):
    lines = [f"Host CPU: {cpu}; LiteRT default kernels (XNNPACK), one thread, batch 1; median of "
             f"{results['runs']} invokes per round ({max(20, results['runs'] // 10)} at paper "
             "sizes), three interleaved rounds (ms: median of the rounds, [min, max]); "
             "partitions: XNNPACK delegate nodes. Untrained weights. The rpi4 form is the one "
             "`edgezoo convert --target rpi4` ships (`edgezoo/cpu_form.py`: each int8 form "
             "timed, the fastest that agrees kept); 'same round' is the shipped form's time over "
             "float's in the same round, the largest of the three ('never slower': below 1 in "
             "every round); 'worst round / float' is the shipped form's slowest round over "
             "float's fastest, the stricter reading.", "",
             "| model | float ms (partitions) | stock int8 ms (partitions) | "
             "rpi4 form | rpi4 form ms (partitions) | rpi4 / float | same round, largest | "
             "never slower | worst round / float |",
             "|---|---|---|---|---|---|---|---|---|"]
    order = list(MICRO + PAPER)
    rows = sorted(results["models"].items(),
                  key=lambda item: order.index(item[0]) if item[0] in order else len(order))
    for name, row in rows:
        def cell(form):
            ms = row[form]["ms"]
            return f"{np.median(ms):.3f} [{min(ms):.3f}, {max(ms):.3f}] ({row[form]['partitions']})"
        ratio = np.median(row[SHIPPED]["ms"]) / np.median(row["float"]["ms"])
        worst = max(row[SHIPPED]["ms"]) / min(row["float"]["ms"])
        same = max(s / f for s, f in zip(row[SHIPPED]["ms"], row["float"]["ms"]))
        lines.append(f"| `{name}` | {cell('float')} | {cell('int8 (stock)')} | "
                     f"{row['shipped_form']} | {cell(SHIPPED)} | {ratio:.2f}× | "
                     f"{same:.2f}× | {'yes' if same < 1 else 'NO'} | {worst:.2f}× |")
    lines += ["", "dynamic_int8 keeps int8 weights and quantizes each GEMM's activations at run "
              "time (XNNPACK's qd8 kernels); LayerNorm, softmax, GELU and the attention matmuls "
              "stay float, so the graph keeps the float graph's partitions. Full int8 splits "
              "XNNPACK around int8 SQUARED_DIFFERENCE/RSQRT, BATCH_MATMUL, SOFTMAX and GELU, "
              "which it does not run. Agreement is measured where the form is chosen (the "
              "validation split) and judged by the verification path (the test split); on a "
              "digits-trained ViT (`tests/test_port.py`) dynamic_int8 agrees 0.997 with the "
              "float model.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--paper", action="store_true", help="also vit_ti16 and resnest50")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    names = args.models or list(MICRO) + (list(PAPER) if args.paper else [])
    results = {"runs": args.runs, "cpu": cpu_name(), "models": {}}
    if RESULTS.exists():  # rows not measured now stay as they were (same runs and CPU only)
        before = json.loads(RESULTS.read_text())
        if (before.get("runs"), before.get("cpu")) == (results["runs"], results["cpu"]):
            results["models"] = {k: v for k, v in before["models"].items() if k not in names}
    for name in names:
        print(f"{name}: converting and timing", file=sys.stderr)
        runs = args.runs if name not in PAPER else max(20, args.runs // 10)
        tflites, shipped = forms(name)
        results["models"][name] = {**measure_latency(tflites, runs=runs), "shipped_form": shipped}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    write_section("cpu-latency", "## int8 against float on a CPU (LiteRT, XNNPACK)\n\n"
                  + table(results, results["cpu"]))


if __name__ == "__main__":
    main()
