"""Mutation check: each mutation below breaks one promise of edgezoo's checks; the tests named for
it must then fail. Applies one mutation at a time to the working tree, runs only its tests, and
restores the file whatever happens. Exit code 1 if any mutation survives.

    make mutation-check        (about a minute on 2 cores; not part of the default suite)
"""
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# (name, file, original text, mutated text, tests that must fail)
MUTATIONS = [
    ("TFLite Micro compared with itself (per-op gate)", "edge/op_compare.py",
     "_difference(np.asarray(micro_out), ref_out)",
     "_difference(np.asarray(micro_out), np.asarray(micro_out))",
     ["tests/test_verify.py::test_a_runner_shifted_by_k_lsb_is_reported_as_k"]),
    ("pytest-plugin gates offset by 100", "edge/pytest_plugin.py",
     "limits = DEFAULT_THRESHOLDS.replace(**thresholds)",
     "limits = DEFAULT_THRESHOLDS.replace(**thresholds); limits = limits.replace("
     "top1_agreement=limits.top1_agreement - 100, max_lsb_default=limits.max_lsb_default + 100)",
     ["tests/test_pytest_plugin.py::test_the_agreement_gate_fails_a_model_that_disagrees",
      "tests/test_pytest_plugin.py::test_a_litert_board_compares_litert_kernels"]),
    ("sparsity counts int8 weights of +-1 as zero", "converters/tflite_weights.py",
     "return float(np.mean(self.values == zp))",
     "return float(np.mean(np.abs(self.values.astype(np.int64) - zp) <= 1))",
     ["tests/test_tflite_measurements.py"]),
    ("TFLite Micro tensor-type check disabled", "edge/runners/micro.py",
     "if t in MICRO_UNSUPPORTED_TYPES)", "if t in ())",
     ["tests/test_tflite_measurements.py"]),
    ("attention scale d^-1 instead of d^-1/2", "zoo/layers/attention.py",
     "tf.cast(q.shape[-1], q.dtype) ** -0.5", "tf.cast(q.shape[-1], q.dtype) ** -1.0",
     ["tests/test_attention_reference.py"]),
]


def run(name, file, original, mutated, tests):
    path = ROOT / file
    text = path.read_text()
    if text.count(original) != 1:
        return "STALE", f"the text to mutate occurs {text.count(original)} times in {file}"
    start = time.perf_counter()
    try:
        path.write_text(text.replace(original, mutated))
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                               *tests], cwd=ROOT, capture_output=True, text=True)
    finally:
        path.write_text(text)
    summary = (proc.stdout.strip().splitlines() or ["?"])[-1]
    verdict = "killed" if proc.returncode == 1 else "SURVIVED" if proc.returncode == 0 else "ERROR"
    return verdict, f"{summary} ({time.perf_counter() - start:.0f} s)"


def main():
    results = []
    for name, file, original, mutated, tests in MUTATIONS:
        verdict, detail = run(name, file, original, mutated, tests)
        results.append(verdict)
        print(f"{verdict:9s} {name}: {detail}", flush=True)
    killed = results.count("killed")
    print(f"{killed} passed, {len(results) - killed} failed")  # each mutation killed = one pass
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
