"""edgezoo: paper models in Keras 2, compressed and proven to run on edge devices.

Importing any part of edgezoo selects the Keras 2 API (``tf_keras``) for
TensorFlow before TensorFlow resolves ``tf.keras``: TFMOT and TensorFlow
Quantum reject Keras 3 models.
"""
import os
import sys

__version__ = "0.1.0"


def _select_keras2():
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return
    keras = vars(tf).get("keras")
    if keras is None:
        return
    if type(keras).__name__ == "KerasLazyLoader":  # not resolved yet, or resolved in place
        state = vars(keras)
        keras3 = state.get("_tfll_initialized") and state.get("_tfll_keras_version") != "tf_keras"
    else:  # resolved and replaced by the module it routed to
        keras3 = not vars(keras).get("__name__", "").startswith("tf_keras")
    if keras3:
        raise ImportError(
            "edgezoo needs the Keras 2 API, but TensorFlow was imported and tf.keras was "
            "already resolved to Keras 3. Set TF_USE_LEGACY_KERAS=1 in the environment, "
            "or import edgezoo before TensorFlow."
        )


_select_keras2()
