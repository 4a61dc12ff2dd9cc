"""Knowledge distillation (Hinton et al., arXiv 1503.02531): a student learns a teacher's
softened outputs, so it can recover accuracy after pruning or clustering without labels."""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from edgezoo.converters.finetune import FinetuneData, finetune, outputs_probabilities
from edgezoo.base.errors import RecipeError


class SoftTargetLoss(keras.losses.Loss):
    """T² · KL(softmax(teacher / T) ‖ softmax(student / T)); targets are teacher logits."""

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


def teacher_logits(teacher, x, batch_size=256):
    """The teacher's outputs as logits (log-probabilities when it ends in a softmax)."""
    out = teacher.predict(np.asarray(x, np.float32), batch_size=batch_size, verbose=0)
    return np.log(np.maximum(out, 1e-12)) if outputs_probabilities(teacher) else out


def check_teacher(student, teacher):
    """A teacher must take the student's input and produce its output shape."""
    if tuple(teacher.input_shape[1:]) != tuple(student.input_shape[1:]):
        raise RecipeError(f"teacher {teacher.name!r} takes input {tuple(teacher.input_shape[1:])} "
                          f"but the student takes {tuple(student.input_shape[1:])}; distill from a "
                          "teacher built for the same input shape")
    if tuple(teacher.output_shape[1:]) != tuple(student.output_shape[1:]):
        raise RecipeError(f"teacher {teacher.name!r} outputs {tuple(teacher.output_shape[1:])} but "
                          f"the student outputs {tuple(student.output_shape[1:])}; the teacher must "
                          "predict the same classes")


def distill(student, teacher, x, *, temperature=4.0, epochs=5, batch_size=32, learning_rate=1e-4,
            seed=0, callbacks=(), progress=False):
    """Train ``student`` in place on ``teacher``'s soft targets over inputs ``x`` (no labels)."""
    check_teacher(student, teacher)
    targets = teacher_logits(teacher, x)
    loss = SoftTargetLoss(temperature, student_probabilities=outputs_probabilities(student))
    return finetune(student, FinetuneData(x, targets), epochs=epochs, batch_size=batch_size,
                    learning_rate=learning_rate, seed=seed, loss=loss, callbacks=callbacks,
                    progress=progress, desc="distill")
