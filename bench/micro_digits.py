"""Benchmark: every zoo micro variant trained on digits, int8 for nrf52840, run on LiteRT and
TFLite Micro; writes the table into BENCHMARKS.md and a size/accuracy plot.

    .venv/bin/python bench/micro_digits.py [MODEL ...]   (default: every *_micro model)
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np

import edgezoo  # noqa: F401  (Keras 2 mode before TensorFlow loads)

sys.path.insert(0, str(Path(__file__).parent))
from report import RESULTS as RESULTS_DIR, write_section  # noqa: E402

RESULTS = RESULTS_DIR / "micro_digits.json"
PLOT = RESULTS_DIR / "micro_digits.png"

# Training settings per model (chosen on the validation split, never on test).
SETTINGS = {
    "vit_micro": dict(epochs=60, learning_rate=3e-3, batch_size=64, shift=1),
    "resnest_micro": dict(epochs=30, learning_rate=2e-3, batch_size=32, shift=0),
    "cswin_micro": dict(epochs=30, learning_rate=2e-3, batch_size=32, shift=2),
    "perceiver_micro": dict(epochs=40, learning_rate=2e-3, batch_size=32, shift=1),
    "perceiver_io_micro": dict(epochs=40, learning_rate=2e-3, batch_size=32, shift=1),
}
DEFAULT = dict(epochs=40, learning_rate=2e-3, batch_size=64, shift=1)


SEEDS = (0, 1, 2)


def run_one(report, timings):
    """The numbers of one seed's run (accuracy and agreement on the digits test split)."""
    acc = report["accuracy"]
    return {"seed": report["provenance"]["seed"], "float_acc": acc["float"],
            "int8_micro_acc": acc["converted_tflite-micro"],
            "agreement": report["agreement"]["value"], "passed": report["passed"],
            "per_op_passed": report["checks"]["micro_vs_reference_per_op"]["passed"],
            "micro_vs_ref_lsb_end_to_end": report["runtimes"]["micro_vs_reference_max_lsb_end_to_end"],
            "xnnpack_vs_micro_top1": report["runtimes"]["default_vs_micro_top1"],
            "train_s": timings["train_time_s"]}


def row(runs, report, timings):
    """One table row: mean, sd and min over the seeds' runs; sizes and speed from the first."""
    def stats(key):
        values = np.array([r[key] for r in runs], float)
        return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1
                else 0.0, "min": float(values.min())}

    return {
        "model": report["model"], "params": report["params"], "seeds": [r["seed"] for r in runs],
        "runs": runs, "float_acc": stats("float_acc"), "int8_micro_acc": stats("int8_micro_acc"),
        "agreement": stats("agreement"), "all_passed": all(r["passed"] for r in runs),
        "per_op_passed": all(r["per_op_passed"] for r in runs),
        "tflite_bytes": report["tflite_bytes"], "arena_bytes": report["arena_bytes"],
        "arena_minimum_bytes": report["arena"]["minimum_bytes"],
        "fits": report["fits"], "train_s": stats("train_s"),
        "float_tflite_bytes": report["float_tflite_bytes"], "macs": report["macs"],
        "latency_keras_ms": round(timings["latency_ms"]["keras"], 3),
        "latency_litert_float_ms": (None if timings["latency_ms"]["litert_float"] is None
                                    else round(timings["latency_ms"]["litert_float"], 3)),
        "litert_float_kernels": report["litert_float_kernels"],
        "latency_litert_int8_ms": round(timings["latency_ms"]["litert_int8"], 3),
        "estimate_ms": {k: round(v, 1) for k, v in report["latency_estimate_ms"].items()},
        "training": report["provenance"]["recipe"]["training"],
    }


def _ms(value):
    return "— (see note)" if value is None else value


def speed_table(rows):
    boards = sorted({b for r in rows for b in r.get("estimate_ms", {})})
    head = ("| model | MACs | float .tflite | int8 .tflite | Keras float ms | LiteRT float ms | "
            "LiteRT int8 ms | " + " | ".join(f"est. {b} ms" for b in boards) + " |\n"
            + "|---" * (7 + len(boards)) + "|\n")
    body = ""
    for r in sorted(rows, key=lambda r: r["model"]):
        if "macs" not in r:
            continue
        est = " | ".join(f"{r['estimate_ms'][b]:,.1f}" for b in boards)
        body += (f"| {r['model']} | {r['macs']:,} | {r['float_tflite_bytes']:,} B | {r['tflite_bytes']:,} B | "
                 f"{r['latency_keras_ms']} | {_ms(r['latency_litert_float_ms'])} | {r['latency_litert_int8_ms']} | "
                 f"{est} |\n")
    return head + body


def _ms_sd(stat):
    return f"{stat['mean']:.4f} ± {stat['sd']:.4f} (min {stat['min']:.4f})"


def table(rows):
    head = ("| model | params | seeds | float acc | int8 TFLite Micro acc | agreement | per-op gate | "
            ".tflite | arena (recorded / minimum) | fits nrf52840 | train s |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['model']} | {r['params']:,} | {len(r['seeds'])} | {_ms_sd(r['float_acc'])} | "
        f"{_ms_sd(r['int8_micro_acc'])} | {_ms_sd(r['agreement'])} | "
        f"{'pass' if r['per_op_passed'] else 'FAIL'} | {r['tflite_bytes']:,} B | "
        f"{r['arena_bytes']:,} / {r['arena_minimum_bytes']:,} B | {r['fits']} | "
        f"{r['train_s']['mean']:.0f} |\n"
        for r in sorted(rows, key=lambda r: r["model"]) if "seeds" in r)
    return head + body


def legacy_table(rows):
    """Rows of the former one-seed runs (before the verification path), kept until re-run."""
    if not rows:
        return ""
    head = ("\nNot yet re-run over three seeds (one run each, seed 0, end-to-end LSB gate, recorded "
            "arena only; measured before this benchmark's current form):\n\n"
            "| model | params | float acc | int8 TFLite Micro acc | agreement | Micro vs ref (LSB, end "
            "to end) | .tflite | arena (recorded) |\n|---|---|---|---|---|---|---|---|\n")
    return head + "".join(
        f"| {r['model']} | {r['params']:,} | {r['float_acc']:.4f} | {r['int8_micro_acc']:.4f} | "
        f"{r['agreement']:.4f} | {r['micro_vs_ref_lsb']} | {r['tflite_bytes']:,} B | "
        f"{r['arena_bytes']:,} B |\n" for r in sorted(rows, key=lambda r: r["model"]))


def plot(rows, legacy=()):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        acc = r["int8_micro_acc"]
        ax.errorbar(r["tflite_bytes"] / 1024, acc["mean"], yerr=acc["sd"], fmt="o", capsize=3)
        ax.annotate(r["model"], (r["tflite_bytes"] / 1024, acc["mean"]), fontsize=8)
    for r in legacy:  # not yet re-run over three seeds: hollow, labelled
        ax.scatter(r["tflite_bytes"] / 1024, r["int8_micro_acc"], facecolors="none", edgecolors="k")
        ax.annotate(f"{r['model']} (1 seed, not re-run)", (r["tflite_bytes"] / 1024,
                                                           r["int8_micro_acc"]), fontsize=7)
    from edgezoo.edge.profiles import load_profiles

    for i, p in enumerate(b for b in load_profiles().values() if b.micro):
        budget = (p.flash_bytes - p.flash_reserve_bytes) / 1024
        if budget <= 4096:
            ax.axvline(budget, ls="--", c=f"C{i + 3}", label=f"{p.name} flash budget")
    ax.set_xlabel(".tflite size (KiB)")
    ax.set_ylabel("int8 accuracy on TFLite Micro (digits test)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    from edgezoo.base import files

    with files.atomic_path(PLOT) as tmp:
        fig.savefig(tmp, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the table and plot from bench/results without training")
    args = parser.parse_args(argv)
    from edgezoo.demo import train_and_verify
    from edgezoo.zoo import list_models

    names = [] if args.report_only else (args.models
                                         or [n for n in list_models(task="classification") if n.endswith("_micro")])
    for name in names:
        runs = []
        for seed in args.seeds:  # each seed trains from scratch with deterministic ops
            _, _, report, timings = train_and_verify(name, **SETTINGS.get(name, DEFAULT), seed=seed,
                                                     progress=sys.stderr.isatty())
            runs.append(run_one(report, timings))
            if seed == args.seeds[0]:  # sizes and speed columns come from the first seed
                first = report, timings
        from edgezoo.base import files

        # re-read before writing: two runs (one thread each) can fill the file side by side
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results[name] = row(runs, *first)
        print(json.dumps(results[name]))
        files.write_text(RESULTS, json.dumps(results, indent=1) + "\n")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    rows = [r for r in results.values() if "seeds" in r]
    legacy = [r for r in results.values() if "seeds" not in r]
    write_section("micro-digits", "## Micro variants on digits (int8, nrf52840)\n\n"
                  "Trained by `bench/micro_digits.py` from seeds 0, 1 and 2 (op determinism, one "
                  "intra-op and one inter-op thread: a seed gives the same report on every run), "
                  "mean ± sd (min) over the seeds, measured on the whole digits test split (360 "
                  "images), which nothing trains, calibrates or chooses on; agreement = TFLite "
                  "Micro int8 top-1 vs the float model; per-op gate: TFLite Micro vs LiteRT's "
                  "reference kernels op by op (`edgezoo.edge.op_compare`) on every seed; arena: "
                  "TFLite Micro's recorded total and the bisected smallest arena that runs. "
                  "Plot: `bench/results/micro_digits.png`.\n\n"
                  + table(rows) + legacy_table(legacy) + "\n"
                  "Speed: measured on this machine (batch 1, LiteRT on 1 thread, XNNPACK) and "
                  "estimated on each board from MACs and per-core constants "
                  "(`edge/core_costs.json`; estimates, not measurements). \"—\": LiteRT refused the "
                  "float .tflite with every kernel set (`litert_float_kernels` in "
                  "`bench/results/micro_digits.json` has its error); the int8 model is unaffected.\n\n"
                  + speed_table(rows + legacy) + "\n")
    plot(rows, legacy)


if __name__ == "__main__":
    main()
