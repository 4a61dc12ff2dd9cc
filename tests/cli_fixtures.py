"""Small files for the CLI's tests: a tiny classifier that converts in seconds and its data."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRACEBACK = "Traceback (most recent call last)"


def tiny_classifier(folder, seed=0):
    """(model.keras recording inputs in [0, 1], data.npz with x and labels y): 8x8x1 -> 3 classes,
    trained a few steps so its outputs are not degenerate."""
    import tf_keras as keras

    from edgezoo.zoo.data.contract import InputContract, record_in_keras_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (200, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) * 3 > x[:, 4:].mean(axis=(1, 2, 3)) * 3).astype(np.int64)
    y += (x[:, :, :4].mean(axis=(1, 2, 3)) > 0.5).astype(np.int64)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(3)], name="tiny")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=3, verbose=0)
    path = folder / "tiny.keras"
    model.save(path)
    record_in_keras_file(path, InputContract(0.0, 1.0, "tests"))
    np.savez(folder / "data.npz", x=x, y=y)
    return path, folder / "data.npz"


def edgezoo(*args, cwd=None):
    """Run ``python -m edgezoo.cli ARGS`` to the end: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "edgezoo.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


def edgezoo_process(*args, env=None):
    """Start ``python -m edgezoo.cli ARGS`` as its own process (as a user's shell would)."""
    return subprocess.Popen([sys.executable, "-m", "edgezoo.cli", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def set_files(out):
    """{name: bytes} of the output set ``out`` shows now."""
    out = Path(out)
    if not out.exists():
        return {}
    return {p.name: p.read_bytes() if p.is_file() else "<folder>" for p in sorted(out.iterdir())}
