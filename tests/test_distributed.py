"""`edgezoo train` through tf.distribute, on two logical CPU devices configured before TF starts."""
import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("strategy, replicas", [
    pytest.param("mirrored", 2, marks=pytest.mark.slow),  # about 40 s
    pytest.param("multiworker", 1, marks=pytest.mark.slow)])  # about 40 s
def test_train_with_a_strategy(tmp_path, strategy, replicas):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}  # multiworker: one local worker
    proc = subprocess.run(
        [sys.executable, "-m", "edgezoo.cli", "train", "vit_micro", "--epochs", "3",
         "--strategy", strategy, "--cpu-devices", "2", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"with the {strategy} strategy on {replicas} replica(s)" in proc.stdout
    assert (tmp_path / "vit_micro.keras").stat().st_size > 100_000
    accuracy = float(proc.stdout.split("val accuracy ")[1].rstrip(")\n"))
    assert accuracy > 0.5  # three epochs from scratch learn something (chance is 0.1)
