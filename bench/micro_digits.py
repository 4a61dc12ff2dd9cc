"""Benchmark: every zoo micro variant trained on digits, int8 for nrf52840, run on LiteRT and
TFLite Micro; writes the table into BENCHMARKS.md and a size/accuracy plot.

    .venv/bin/python bench/micro_digits.py [MODEL ...]   (default: every *_micro model)
"""
import argparse
import json
import sys
from pathlib import Path

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


def row(report):
    acc, rt = report["accuracy"], report["runtimes"]
    return {
        "model": report["model"], "params": report["params"],
        "float_acc": acc["float"], "int8_litert_acc": acc["int8_litert"],
        "int8_micro_acc": acc["int8_micro"], "agreement": report["agreement"],
        "micro_vs_ref_lsb": rt["micro_vs_reference_max_lsb"],
        "xnnpack_vs_micro_top1": rt["default_vs_micro_top1"],
        "tflite_bytes": report["tflite_bytes"], "arena_bytes": report["arena_bytes"],
        "fits": report["fits"], "train_s": round(report["train_time_s"], 1),
        "float_tflite_bytes": report["float_tflite_bytes"], "macs": report["macs"],
        "latency_keras_ms": round(report["latency_ms"]["keras"], 3),
        "latency_litert_float_ms": (None if report["latency_ms"]["litert_float"] is None
                                    else round(report["latency_ms"]["litert_float"], 3)),
        "litert_float_kernels": report["litert_float_kernels"],
        "latency_litert_int8_ms": round(report["latency_ms"]["litert_int8"], 3),
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


def table(rows):
    head = ("| model | params | float acc | int8 LiteRT | int8 TFLite Micro | agreement | "
            "Micro vs ref (LSB) | .tflite | arena | fits nrf52840 | train s |\n"
            "|---|---|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['model']} | {r['params']:,} | {r['float_acc']:.4f} | {r['int8_litert_acc']:.4f} | "
        f"{r['int8_micro_acc']:.4f} | {r['agreement']:.4f} | {r['micro_vs_ref_lsb']} | "
        f"{r['tflite_bytes']:,} B | {r['arena_bytes']:,} B | {r['fits']} | {r['train_s']} |\n"
        for r in sorted(rows, key=lambda r: r["model"]))
    return head + body


def plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.scatter(r["tflite_bytes"] / 1024, r["int8_micro_acc"])
        ax.annotate(r["model"], (r["tflite_bytes"] / 1024, r["int8_micro_acc"]), fontsize=8)
    from edgezoo.edge.profiles import load_profiles

    for i, p in enumerate(b for b in load_profiles().values() if b.micro):
        budget = (p.flash_bytes - p.flash_reserve_bytes) / 1024
        if budget <= 4096:
            ax.axvline(budget, ls="--", c=f"C{i + 3}", label=f"{p.name} flash budget")
    ax.set_xlabel(".tflite size (KiB)")
    ax.set_ylabel("int8 accuracy on TFLite Micro (digits test)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    from edgezoo import files

    with files.atomic_path(PLOT) as tmp:
        fig.savefig(tmp, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the table and plot from bench/results without training")
    args = parser.parse_args(argv)
    from edgezoo.demo import train_and_verify
    from edgezoo.zoo import list_models

    names = [] if args.report_only else (args.models
                                         or [n for n in list_models() if n.endswith("_micro")])
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in names:
        _, _, report = train_and_verify(name, **SETTINGS.get(name, DEFAULT),
                                        progress=sys.stderr.isatty())
        results[name] = row(report)
        print(json.dumps(results[name]))
        from edgezoo import files

        files.write_text(RESULTS, json.dumps(results, indent=1) + "\n")
    rows = list(results.values())
    write_section("micro-digits", "## Micro variants on digits (int8, nrf52840)\n\n"
                  "Trained by `bench/micro_digits.py` (seed 0), accuracy on the whole digits test split "
                  "(360 images); agreement = TFLite Micro int8 top-1 vs the float model. Every "
                  "variant converts under the default int8 recipe and runs on LiteRT and TFLite "
                  "Micro. Plot: `bench/results/micro_digits.png`. Training is seeded with "
                  "deterministic ops, yet repeated runs of the attention models on this loaded "
                  "2-core machine still differ (perceiver_io_micro: float 0.964 / agreement 0.986 "
                  "in one run, 0.981 / 1.000 in the next); each row is the model's latest run.\n\n"
                  + table(rows) + "\n"
                  "Speed: measured on this machine (batch 1, LiteRT on 1 thread, XNNPACK) and "
                  "estimated on each board from MACs and per-core constants "
                  "(`edge/core_costs.json`; estimates, not measurements). \"—\": LiteRT refused the "
                  "float .tflite with every kernel set (`litert_float_kernels` in "
                  "`bench/results/micro_digits.json` has its error); the int8 model is unaffected.\n\n"
                  + speed_table(rows) + "\n")
    plot(rows)


if __name__ == "__main__":
    main()
