"""Losses and metrics for expectation-valued outputs in [-1, 1].

Hinge loss wants labels in {-1, +1} (TFQ's MNIST study); ``hinge_accuracy`` counts sign
agreement. ``expectation_bce`` reads ⟨Z⟩ as p = (1 + ⟨Z⟩)/2 for labels in {0, 1}.
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from edgezoo.quantum.errors import LabelError


def hinge_labels(y, positive=None):
    """Labels of two classes as float ±1 (``positive`` → +1; default: the larger class value)."""
    y = np.asarray(y).reshape(-1)
    classes = np.unique(y)
    if len(classes) > 2 or len(classes) == 0:
        raise LabelError(f"hinge loss needs two classes, got {len(classes)} ({classes[:10].tolist()}); "
                         "train one-vs-rest, or use a Dense head with a softmax loss")
    if positive is None:
        positive = classes.max()
    if positive not in classes and len(classes) == 2:
        raise LabelError(f"positive class {positive!r} is not one of the labels {classes.tolist()}")
    return np.where(y == positive, 1.0, -1.0).astype(np.float32)


@keras.utils.register_keras_serializable(package="edgezoo.quantum")
def hinge_accuracy(y_true, y_pred):
    """1 where the prediction has the label's sign (labels ±1), per sample; Keras averages it."""
    y_true = tf.reshape(tf.cast(y_true, tf.float32) > 0.0, [-1])
    y_pred = tf.reshape(tf.cast(y_pred, tf.float32) > 0.0, [-1])
    return tf.cast(y_true == y_pred, tf.float32)


@keras.utils.register_keras_serializable(package="edgezoo.quantum")
def expectation_bce(y_true, y_pred):
    """Binary cross-entropy of labels in {0, 1} against p = (1 + ⟨Z⟩) / 2."""
    p = tf.clip_by_value((1.0 + tf.cast(y_pred, tf.float32)) / 2.0, 1e-6, 1 - 1e-6)
    y = tf.reshape(tf.cast(y_true, tf.float32), tf.shape(p))
    return -tf.reduce_mean(y * tf.math.log(p) + (1 - y) * tf.math.log(1 - p), axis=-1)


@keras.utils.register_keras_serializable(package="edgezoo.quantum")
def expectation_accuracy(y_true, y_pred):
    """1 where ⟨Z⟩ > 0 agrees with a label in {0, 1}, per sample."""
    y = tf.reshape(tf.cast(y_true, tf.float32) > 0.5, [-1])
    return tf.cast(y == tf.reshape(y_pred > 0.0, [-1]), tf.float32)
