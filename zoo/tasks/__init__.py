"""Task contracts: ``classification``, ``detection`` (softmax with no-object, or
``detection_sigmoid``), ``causal_lm`` and ``encoder``; each names its inputs and outputs,
losses, metrics, agreement measure, calibration and what a data set must provide."""
import difflib

from edgezoo.base.errors import UnknownModelError
from edgezoo.zoo.tasks.base import Task, calibration_inputs
from edgezoo.zoo.tasks.causal_lm import CAUSAL_LM
from edgezoo.zoo.tasks.classification import CLASSIFICATION
from edgezoo.zoo.tasks.detection import DETECTION, DETECTION_SIGMOID
from edgezoo.zoo.tasks.encoder import ENCODER
from edgezoo.zoo.tasks.spec import TensorSpec

TASKS = {t.name: t for t in (CLASSIFICATION, DETECTION, DETECTION_SIGMOID, CAUSAL_LM, ENCODER)}


def get_task(name):
    """The contract called ``name`` (a Task passes through)."""
    if isinstance(name, Task):
        return name
    try:
        return TASKS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), TASKS, n=3, cutoff=0.4)
        raise UnknownModelError(f"unknown task {name!r}; known: {', '.join(TASKS)}"
                                + (f" (did you mean {', '.join(close)}?)" if close else "")) from None


def task_of(model, task=None):
    """The task of a Keras model: ``task`` if given, else its registry entry's, else (one
    float input, one (N, classes) output) classification; anything else must be named."""
    if task is not None:
        return get_task(task)
    from edgezoo.zoo.registry import registered_task

    known = registered_task(getattr(model, "name", None))
    if known is not None:
        return get_task(known)
    recorded = getattr(model, "edgezoo_task", None)
    if recorded:
        return get_task(recorded)
    if not getattr(model, "inputs", None):  # a subclassed model: its graph is unknown
        return CLASSIFICATION
    if (len(model.inputs) == 1 and len(model.outputs) == 1 and model.inputs[0].dtype.is_floating
            and len(model.outputs[0].shape) == 2):
        return CLASSIFICATION
    raise UnknownModelError(
        f"model {model.name!r} ({len(model.inputs)} inputs, {len(model.outputs)} outputs) is not a "
        f"single-output classifier: name its task ({', '.join(TASKS)})")


__all__ = ["CAUSAL_LM", "CLASSIFICATION", "DETECTION", "DETECTION_SIGMOID", "ENCODER", "TASKS",
           "Task", "TensorSpec", "calibration_inputs", "get_task", "task_of"]
