"""Hinge labels and accuracy, expectation BCE, and the parameter-matched classical baseline."""
import numpy as np
import pytest
import tensorflow as tf

from edgezoo.quantum.baseline import baseline_hidden_units, classical_baseline, trainable_params
from edgezoo.quantum.errors import LabelError, QuantumConfigError
from edgezoo.quantum.losses import expectation_accuracy, expectation_bce, hinge_accuracy, hinge_labels
from edgezoo.quantum.training import compile_classifier


def test_hinge_labels_map_two_classes_to_plus_minus_one():
    np.testing.assert_array_equal(hinge_labels([3, 6, 6, 3]), [-1, 1, 1, -1])
    np.testing.assert_array_equal(hinge_labels([3, 6, 6, 3], positive=3), [1, -1, -1, 1])
    np.testing.assert_array_equal(hinge_labels([0, 1]), [-1, 1])
    with pytest.raises(LabelError, match=r"hinge loss needs two classes, got 3 \(\[0, 1, 2\]\).*one-vs-rest"):
        hinge_labels([0, 1, 2])
    with pytest.raises(LabelError, match="positive class 5 is not one of the labels"):
        hinge_labels([0, 1], positive=5)


def test_hinge_accuracy_is_sign_agreement():
    y = tf.constant([1.0, -1.0, 1.0, -1.0])
    pred = tf.constant([[0.2], [-0.9], [-0.1], [0.3]])
    assert float(tf.reduce_mean(hinge_accuracy(y, pred))) == 0.5
    assert float(tf.reduce_mean(hinge_accuracy(y, -pred))) == 0.5
    assert float(tf.reduce_mean(hinge_accuracy(y, y))) == 1.0


def test_hinge_accuracy_in_keras_weights_every_sample():
    import tf_keras as keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Lambda(lambda x: x)])
    compile_classifier(model, "hinge")
    x = np.array([[1.0]] * 3 + [[-1.0]] * 2, np.float32)  # batches of 4 and 1
    y = np.array([1, 1, -1, -1, 1], np.float32)
    result = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert result["hinge_accuracy"] == pytest.approx(3 / 5)  # not the mean of batch means (3/4 + 0)/2
    assert result["loss"] == pytest.approx(np.mean(np.maximum(0, 1 - y * x[:, 0])))


def test_expectation_bce_and_accuracy():
    y = tf.constant([1.0, 0.0])
    z = tf.constant([[0.6], [-0.2]])  # p = 0.8 and 0.4
    expected = -(np.log(0.8) + np.log(0.6)) / 2
    assert float(tf.reduce_mean(expectation_bce(y, z))) == pytest.approx(expected, rel=1e-5)
    assert float(tf.reduce_mean(expectation_accuracy(y, z))) == 1.0
    with pytest.raises(QuantumConfigError, match="unknown loss 'mse'"):
        compile_classifier(None, "mse")


@pytest.mark.parametrize("n_features, n_params", [(16, 32), (4, 9), (16, 200), (3, 2)])
def test_baseline_matches_the_parameter_count(n_features, n_params):
    model = classical_baseline(n_features, n_params, seed=0)
    got = trainable_params(model)
    h = baseline_hidden_units(n_features, n_params)
    linear = n_features + 1
    assert abs(got - n_params) <= max(n_features + 2, abs(linear - n_params))
    assert got == (h * (n_features + 2) + 1 if h else linear)


def test_baseline_of_digits_size():
    # the 17-qubit readout QNN has 32 parameters; the baseline on 16 binary pixels: Dense(2) -> Dense(1)
    model = classical_baseline(16, 32)
    assert [l.units for l in model.layers[1:]] == [2, 1] and trainable_params(model) == 37
    assert model.layers[-1].activation.__name__ == "tanh"
    with pytest.raises(QuantumConfigError, match="n_features ≥ 1 and n_params ≥ 1"):
        classical_baseline(0, 10)
