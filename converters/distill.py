"""Knowledge distillation (Hinton et al., arXiv 1503.02531): a student learns a teacher's
softened outputs, so it can recover accuracy after pruning or clustering without labels."""
import numpy as np

from edgezoo.base.errors import RecipeError
from edgezoo.converters.finetune import FinetuneData, finetune, outputs_probabilities
from edgezoo.zoo.tasks.losses import SoftTargetLoss  # noqa: F401  (the loss lives with the tasks)


def teacher_logits(teacher, x, batch_size=256):
    """The teacher's outputs as logits (log-probabilities when it ends in a softmax)."""
    from edgezoo.zoo.data.arrays import input_list

    xs = [a if a.dtype.kind in "iub" else a.astype(np.float32) for a in input_list(x)]
    out = teacher.predict(xs if len(xs) > 1 else xs[0], batch_size=batch_size, verbose=0)
    return np.log(np.maximum(out, 1e-12)) if outputs_probabilities(teacher) else out


def teacher_outputs(teacher, x, batch_size=256):
    """The teacher's outputs to distil from: logits for a one-output model (log-probabilities
    when it ends in a softmax), else the list of its outputs as they are."""
    if len(teacher.outputs) == 1:
        return teacher_logits(teacher, x, batch_size)
    from edgezoo.zoo.data.arrays import input_list

    xs = input_list(x)
    return [np.asarray(o) for o in teacher.predict(xs if len(xs) > 1 else xs[0],
                                                    batch_size=batch_size, verbose=0)]


def _shapes(tensors):
    shapes = [tuple(t.shape[1:]) for t in tensors]
    return shapes[0] if len(shapes) == 1 else shapes


def check_teacher(student, teacher):
    """A teacher must take the student's inputs and produce its outputs' shapes."""
    if _shapes(teacher.inputs) != _shapes(student.inputs):
        raise RecipeError(f"teacher {teacher.name!r} takes input {_shapes(teacher.inputs)} "
                          f"but the student takes {_shapes(student.inputs)}; distill from a "
                          "teacher built for the same input shape")
    if _shapes(teacher.outputs) != _shapes(student.outputs):
        raise RecipeError(f"teacher {teacher.name!r} outputs {_shapes(teacher.outputs)} but "
                          f"the student outputs {_shapes(student.outputs)}; the teacher must "
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
