"""Importing edgezoo selects Keras 2, and refuses clearly when Keras 3 was already chosen."""
import os
import subprocess
import sys


def _run(code):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300)


def test_edgezoo_first_gives_keras2():
    proc = _run("import edgezoo.zoo, tensorflow as tf, tf_keras; "
                "print(tf.keras.__name__, tf.keras.Model is tf_keras.Model)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["tf_keras.api._v2.keras", "True"]


def test_tensorflow_first_without_touching_keras_is_fine():
    proc = _run("import tensorflow as tf; import edgezoo; print(tf.keras.__name__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "tf_keras.api._v2.keras"


def test_keras3_already_resolved_is_a_clear_error():
    proc = _run("import tensorflow as tf; tf.keras.layers; import edgezoo")
    assert proc.returncode == 1
    assert "ImportError: edgezoo needs the Keras 2 API" in proc.stderr
    assert "TF_USE_LEGACY_KERAS=1" in proc.stderr
