"""Noisy vs noiseless training, compared on small tasks where noisy simulation is affordable.

Trains the same model with and without a depolarizing channel (NoisyPQC, sampled
trajectories) on the generated separable task (4 qubits) and on digits 3 vs 6 at 3x3
(10 qubits); writes bench/results/quantum_noise.json and the BENCHMARKS.md row.

    .venv/bin/python bench/quantum_noise.py [--noise depolarize:0.01] [--seeds 0 1 2]
"""
import argparse
import json
import sys
import time
from pathlib import Path

import edgezoo  # noqa: F401  (Keras 2 before TensorFlow)
from edgezoo.base import files
from edgezoo.quantum.tasks import get_task
from edgezoo.quantum.training import mean_std, train_task

sys.path.insert(0, str(Path(__file__).parent))
from report import RESULTS  # noqa: E402

CASES = {"separable": dict(epochs=20), "digits": dict(epochs=5, size=(3, 3))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--noise", default="depolarize:0.01")
    p.add_argument("--trajectories", type=int, default=50)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = p.parse_args(argv)
    result = {"noise": args.noise, "trajectories": args.trajectories, "seeds": args.seeds, "tasks": {}}
    for name, case in CASES.items():
        rows = {}
        for label, noise in (("noiseless", None), ("noisy", args.noise)):
            accs, seconds = [], 0.0
            for seed in args.seeds:
                kwargs = {"size": case["size"]} if "size" in case else {}
                task = get_task(name, seed=seed, **kwargs)
                start = time.perf_counter()
                _, r = train_task(task, epochs=case["epochs"], seed=seed, noise=noise,
                                  repetitions=args.trajectories if noise else None, baseline=False)
                seconds += time.perf_counter() - start
                accs.append(r["val_accuracy"])
            mean, std = mean_std(accs)
            rows[label] = {"val_accuracy_mean": mean, "val_accuracy_std": std,
                           "seconds_per_epoch": seconds / (len(args.seeds) * case["epochs"]),
                           "qubits": r["qubits"]}
            print(f"{name} {label}: {mean:.3f} ± {std:.3f}", flush=True)
        result["tasks"][name] = {"epochs": case["epochs"], **rows}
    files.write_text(RESULTS / "quantum_noise.json", json.dumps(result, indent=2))
    import quantum_report

    quantum_report.main()


if __name__ == "__main__":
    main()
