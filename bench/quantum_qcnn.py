"""Benchmark: QCNN on cluster-state excitations (8 qubits, TFQ's QCNN tutorial), over seeds.

Target: mean validation accuracy ≥ 0.9. Noisy vs noiseless: the trained circuit evaluated under
depolarizing noise at several strengths, and (``--noisy-train``) a model trained under noise.

    .venv/bin/python bench/quantum_qcnn.py --epochs 20 --seeds 0 1 2

Measured on the 2-core development machine: 0.979 ± 0.019 over seeds 0-2 in 188 s; the seed-0
model under depolarize 0.001 / 0.01 / 0.03 scores 0.92 / 0.50 / 0.42. ``--noisy-train`` (parameter
shift through NoisyPQC, 63 shared symbols) ran out of memory (> 20 GB) at batch size 16.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import edgezoo  # noqa: F401  (Keras 2 before TensorFlow)
from edgezoo.base import files
from edgezoo.quantum.tasks import get_task
from edgezoo.quantum.training import evaluate_under_noise, mean_std, train_task

TARGET = 0.9


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--qubits", type=int, default=8)
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--noise-levels", type=float, nargs="*", default=[0.001, 0.01, 0.03])
    p.add_argument("--trajectories", type=int, default=50)
    p.add_argument("--noisy-train", action="store_true", help="also train one model under depolarize:0.01")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "quantum_qcnn.json"))
    args = p.parse_args(argv)

    runs, start = [], time.perf_counter()
    for seed in args.seeds:
        task = get_task("cluster", n_qubits=args.qubits, n_samples=args.samples, seed=seed)
        model, report = train_task(task, epochs=args.epochs, batch_size=args.batch_size, seed=seed)
        if seed == args.seeds[0]:
            report["under_noise"] = {}
            for p_ in args.noise_levels:
                report["under_noise"][f"depolarize:{p_}"] = evaluate_under_noise(
                    model, task, f"depolarize:{p_}", args.trajectories)
        runs.append(report)
        print(f"seed {seed}: {report['val_accuracy']:.4f} ({report['params']} params, "
              f"{report['train_seconds']:.0f} s)" + (f"  under noise: {report['under_noise']}"
                                                     if "under_noise" in report else ""), flush=True)
    mean, std = mean_std([r["val_accuracy"] for r in runs])
    result = {"task": runs[0]["description"], "epochs": args.epochs, "seeds": args.seeds,
              "val_accuracy_mean": mean, "val_accuracy_std": std, "target": TARGET, "passed": mean >= TARGET,
              "runs": runs}
    if args.noisy_train:
        task = get_task("cluster", n_qubits=args.qubits, n_samples=args.samples, seed=0)
        _, r = train_task(task, epochs=args.epochs, batch_size=args.batch_size, seed=0,
                          noise="depolarize:0.01", repetitions=args.trajectories)
        result["trained_under_noise"] = {"noise": "depolarize:0.01", "val_accuracy": r["val_accuracy"],
                                         "train_seconds": r["train_seconds"]}
        print(f"trained under depolarize:0.01: {r['val_accuracy']:.4f} ({r['train_seconds']:.0f} s)", flush=True)
    result["wall_seconds"] = round(time.perf_counter() - start, 1)
    files.write_text(Path(args.out), json.dumps(result, indent=2))
    import quantum_report

    quantum_report.main()
    print(f"mean val accuracy {mean:.4f} ± {std:.4f} (target ≥ {TARGET}); {result['wall_seconds']:.0f} s; "
          f"wrote {args.out}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
