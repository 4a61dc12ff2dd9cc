"""Benchmark: float against int8 on a CPU in LiteRT (XNNPACK, one thread, batch 1).

For every zoo micro variant (and, with --paper, vit_ti16 and resnest50): the float .tflite,
the stock full-int8 conversion and int8 with the opt-in LayerNorm rewrite for XNNPACK
(``xnnpack_layernorm``), each with its XNNPACK partition count and median invoke time over three interleaved
rounds in this one process, the interpreter built without preserving tensors. Host
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

import edgezoo  # noqa: F401  (Keras 2 mode before TensorFlow loads)

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


def forms(name):
    """{form: .tflite bytes} for one model: float, stock int8, int8 with the opt-in LayerNorm rewrite."""
    import tf_keras as keras

    from edgezoo.converters.compress import compress
    from edgezoo.converters.quantize import convert
    from edgezoo.converters.recipe import Recipe
    from edgezoo.zoo import create_model

    keras.utils.set_random_seed(0)
    model = create_model(name)
    calibration = np.random.default_rng(0).uniform(0, 1, (32, *model.input_shape[1:]))
    calibration = calibration.astype(np.float32)
    rewritten = compress(model, Recipe(target="rpi4", xnnpack_layernorm=True),
                       calibration=calibration).tflite
    return {"float": convert(model, "none"), "int8 (stock)": convert(model, "int8", calibration),
            "int8 + xnnpack_layernorm": rewritten}


def measure(tflites, runs, rounds=3):
    """{form: {"ms": [median per round], "partitions": n}}, rounds interleaved across forms."""
    from edgezoo.edge.op_latency import median_invoke_ms, seeded_interpreter, xnnpack_partitions

    interpreters = {form: seeded_interpreter(data) for form, data in tflites.items()}
    out = {form: {"ms": [], "partitions": xnnpack_partitions(data)} for form, data in tflites.items()}
    for _ in range(rounds):
        for form, interpreter in interpreters.items():
            out[form]["ms"].append(median_invoke_ms(interpreter, runs))
    return out


def table(results, cpu):
    lines = [f"Host CPU: {cpu}; LiteRT default kernels (XNNPACK), one thread, batch 1; median of "
             f"{results['runs']} invokes per round, three interleaved rounds (ms: median of the "
             "rounds, [min, max]); partitions: XNNPACK delegate nodes. Untrained weights.", "",
             "| model | float ms (partitions) | stock int8 ms (partitions) | "
             "int8 + xnnpack_layernorm ms (partitions) | int8 / float |", "|---|---|---|---|---|"]
    for name, row in results["models"].items():
        def cell(form):
            ms = row[form]["ms"]
            return f"{np.median(ms):.3f} [{min(ms):.3f}, {max(ms):.3f}] ({row[form]['partitions']})"
        ratio = np.median(row["int8 + xnnpack_layernorm"]["ms"]) / np.median(row["float"]["ms"])
        lines.append(f"| `{name}` | {cell('float')} | {cell('int8 (stock)')} | "
                     f"{cell('int8 + xnnpack_layernorm')} | {ratio:.2f}× |")
    lines += ["", "With `xnnpack_layernorm` (opt-in: it cost a trained ViT agreement, 0.997 -> "
              "0.986) LayerNorm is rewritten for XNNPACK "
              "(`converters/cpu_layernorm.py`: int8 MEAN, SUB, MUL; a float SQRT/DIV island). "
              "Still split: int8 BATCH_MATMUL, SOFTMAX and GELU, which XNNPACK does not run "
              "(issue #12, open).", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--paper", action="store_true", help="also vit_ti16 and resnest50")
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args(argv)
    names = args.models or list(MICRO) + (list(PAPER) if args.paper else [])
    results = {"runs": args.runs, "cpu": cpu_name(), "models": {}}
    for name in names:
        print(f"{name}: converting and timing", file=sys.stderr)
        runs = args.runs if name not in PAPER else max(20, args.runs // 10)
        results["models"][name] = measure(forms(name), runs)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    write_section("cpu-latency", "## int8 against float on a CPU (LiteRT, XNNPACK)\n\n"
                  + table(results, results["cpu"]))


if __name__ == "__main__":
    main()
