"""Keras losses the task contracts train with: labels, or a teacher's outputs (distillation)."""
import tensorflow as tf
import tf_keras as keras


def outputs_probabilities(model, index=0):
    """True when output ``index`` comes from a softmax (probabilities, not logits)."""
    layer = model.get_layer(model.output_names[index]) if model.output_names else model.layers[-1]
    if layer.__class__.__name__ == "Softmax":
        return True
    return getattr(getattr(layer, "activation", None), "__name__", "") == "softmax"


@keras.saving.register_keras_serializable(package="edgezoo")
class SoftTargetLoss(keras.losses.Loss):
    """T² · KL(softmax(teacher / T) ‖ softmax(student / T)) over the last axis (Hinton et al.,
    arXiv 1503.02531); targets are teacher logits. Per sample, query or token alike."""

    def __init__(self, temperature=4.0, student_probabilities=False, name="soft_target", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = float(temperature)
        self.student_probabilities = bool(student_probabilities)

    def call(self, teacher_logits, student_outputs):
        t = self.temperature
        student_logits = (tf.math.log(tf.maximum(student_outputs, 1e-12))
                          if self.student_probabilities else student_outputs)
        p = tf.nn.softmax(teacher_logits / t)
        log_q = tf.nn.log_softmax(student_logits / t)
        return t * t * tf.reduce_sum(p * (tf.math.log(tf.maximum(p, 1e-12)) - log_q), axis=-1)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature,
                "student_probabilities": self.student_probabilities}


@keras.saving.register_keras_serializable(package="edgezoo")
class SigmoidSoftTargetLoss(keras.losses.Loss):
    """Per-class sigmoid distillation: binary cross-entropy against the teacher's sigmoid
    (for detectors that score each class on its own, without a no-object class)."""

    def call(self, teacher_logits, student_logits):
        p = tf.sigmoid(teacher_logits)
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(p, student_logits), axis=-1)


@keras.saving.register_keras_serializable(package="edgezoo")
class NextTokenLoss(keras.losses.Loss):
    """Causal language modelling: logits at position t predict token t + 1 (labels are the
    input ids themselves, shifted here; the last position has no target)."""

    def call(self, token_ids, logits):
        targets = tf.cast(token_ids[:, 1:], tf.int32)
        return keras.losses.sparse_categorical_crossentropy(targets, logits[:, :-1],
                                                            from_logits=True)


def sparse_classification(model, index=0):
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=not outputs_probabilities(model, index))
