"""Writes the quantum section of BENCHMARKS.md from bench/results/quantum_*.json."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from report import RESULTS, write_section  # noqa: E402


def _load(name):
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main():
    lines = ["## Quantum classifiers (TensorFlow Quantum, simulated on the CPU)", "",
             "Validation accuracy over seeds 0, 1, 2 (`bench/quantum_digits.py`, "
             "`bench/quantum_qcnn.py`); noise columns evaluate the noiselessly trained circuit "
             "under a depolarizing channel on every qubit after every moment (NoisyPQC, 100 repetitions). No quantum advantage is claimed.", "",
             "| task | qubits | params | epochs | val acc (mean ± sd) | target | s / epoch | "
             "classical baseline (params) | under noise |", "|---|---|---|---|---|---|---|---|---|"]
    for name in ("quantum_digits", "quantum_qcnn"):
        result = _load(name)
        if result is None:
            continue
        runs = result["runs"]
        per_epoch = sum(r["train_seconds"] for r in runs) / sum(r["epochs"] for r in runs)
        base = runs[0].get("baseline")
        baseline = (f"{result['baseline_mean']:.3f} ± {result['baseline_std']:.3f} ({base['params']})"
                    if base else "— (inputs are quantum states)")
        noise = runs[0].get("under_noise") or (
            {"depolarize:0.01": runs[0]["noisy_val_accuracy"]} if "noisy_val_accuracy" in runs[0] else {})
        noise_text = ", ".join(f"{k}: {v:.3f}" for k, v in noise.items()) or "—"
        lines.append(f"| {result['task']} | {runs[0]['qubits']} | {runs[0]['params']} | "
                     f"{result['epochs']} | {result['val_accuracy_mean']:.3f} ± "
                     f"{result['val_accuracy_std']:.3f} | ≥ {result['target']} | {per_epoch:.1f} | "
                     f"{baseline} | {noise_text} (seed 0) |")
    noise = _load("quantum_noise")
    if noise is not None:
        lines += ["", f"Noisy vs noiseless **training** (`bench/quantum_noise.py`, {noise['noise']}, "
                  f"{noise['trajectories']} trajectories, seeds {', '.join(map(str, noise['seeds']))}). "
                  "Digits at 3×3 keeps few validation images and is unstable across seeds at 5 "
                  "epochs, hence its spread; noise costs accuracy little at p = 0.01 but multiplies "
                  "training time by the trajectories.", "",
                  "| task | qubits | epochs | noiseless val acc | noisy val acc | s / epoch noiseless / noisy |",
                  "|---|---|---|---|---|---|"]
        for task, row in noise["tasks"].items():
            a, b = row["noiseless"], row["noisy"]
            lines.append(f"| {task} | {a['qubits']} | {row['epochs']} | {a['val_accuracy_mean']:.3f} ± "
                         f"{a['val_accuracy_std']:.3f} | {b['val_accuracy_mean']:.3f} ± "
                         f"{b['val_accuracy_std']:.3f} | {a['seconds_per_epoch']:.1f} / "
                         f"{b['seconds_per_epoch']:.1f} |")
    write_section("quantum", "\n".join(lines) + "\n\n")


if __name__ == "__main__":
    main()
