"""One registry of model variants: thin named entries over one builder per family."""
import dataclasses
import difflib
import math
from typing import Callable

from edgezoo.base.errors import UnknownModelError


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable
    kwargs: dict
    family: str
    task: str
    paper: str
    arxiv: str
    input_shape: tuple
    num_classes: int | None  # None for tasks without classes (language models, encoders)
    input_range: tuple = (0.0, 1.0)  # the value range the variant's inputs are trained in


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name, builder, *, family, task, paper, arxiv, input_shape, num_classes=None,
                   input_range=(0.0, 1.0), **kwargs):
    """Register ``name`` as ``builder(**kwargs)`` with its paper's defaults; ``task`` names
    its contract (``edgezoo.zoo.tasks``), and only tasks with classes take ``num_classes``."""
    from edgezoo.zoo.tasks import get_task

    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    if get_task(task).has_classes != (num_classes is not None):
        raise ValueError(f"model {name!r}: task {task!r} "
                         + ("needs num_classes" if get_task(task).has_classes
                            else "has no classes; drop num_classes"))
    _REGISTRY[name] = ModelEntry(name, builder, kwargs, family, task, paper, arxiv,
                                 tuple(input_shape), num_classes, tuple(map(float, input_range)))


def _entry(name):
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=5, cutoff=0.4)
        hint = f" Closest: {', '.join(close)}." if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} See edgezoo.zoo.list_models() or `edgezoo list`."
        ) from None


def registered_task(name):
    """The task of registered model ``name``, or None for a name the registry does not hold."""
    entry = _REGISTRY.get(name)
    return None if entry is None else entry.task


def list_tasks():
    """The tasks registered models solve."""
    return sorted({e.task for e in _REGISTRY.values()})


def list_models(task=None):
    """Names of the registered models, optionally only those for ``task`` (a known task)."""
    if task is not None and task not in list_tasks():
        close = difflib.get_close_matches(str(task), list_tasks(), n=3, cutoff=0.4)
        raise UnknownModelError(f"unknown task {task!r}; known: {', '.join(list_tasks())}"
                                + (f" (did you mean {', '.join(close)}?)" if close else ""))
    return sorted(n for n, e in _REGISTRY.items() if task is None or e.task == task)


def model_info(name):
    """Paper title, arXiv id, family, task and default input shape of ``name``."""
    e = _entry(name)
    return {
        "name": e.name,
        "paper": e.paper,
        "arxiv": e.arxiv,
        "family": e.family,
        "task": e.task,
        "input_shape": list(e.input_shape),
        "num_classes": e.num_classes,
        "input_range": list(e.input_range),
        "config": dict(e.kwargs),
    }


def registry_contract(name):
    """The input contract of a registered variant (its inputs' value range)."""
    from edgezoo.zoo.data.contract import InputContract

    low, high = _entry(name).input_range
    return InputContract(low, high, f"registry entry {name}")


MAX_INPUT_ELEMENTS = 2**26  # 64 M values a sample: far beyond any edge model's input


def check_input_shape(shape):
    """Refuse a shape no builder should try to allocate (zero, negative or huge dimensions);
    dimensions that are not whole numbers are left to the family's builder to explain."""
    from edgezoo.base.errors import InputShapeError

    shape = tuple(shape)
    if not shape or any(isinstance(d, int) and d < 1 for d in shape):
        raise InputShapeError(f"input shape {shape} must be positive whole numbers, e.g. 32,32,3")
    if all(isinstance(d, int) for d in shape) and math.prod(shape) > MAX_INPUT_ELEMENTS:
        raise InputShapeError(f"input shape {shape} has {math.prod(shape):,} values a sample, more "
                              f"than {MAX_INPUT_ELEMENTS:,}: not an edge model's input")
    return shape


def create_model(name, num_classes=None, input_shape=None, **overrides):
    """Build a fresh (untrained) ``name``; ``overrides`` replace the variant's defaults."""
    from edgezoo.base.errors import EdgezooError

    e = _entry(name)
    kwargs = {**e.kwargs, **overrides}
    if e.num_classes is None:  # the task has no classes: nothing to set
        if num_classes is not None:
            raise EdgezooError(f"{name} is a {e.task} model, which has no classes; drop num_classes")
    else:
        if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 0):
            raise EdgezooError(f"num_classes must be a whole number (0: features, no head), got "
                               f"{num_classes!r}")
        kwargs["num_classes"] = e.num_classes if num_classes is None else num_classes
    kwargs["input_shape"] = e.input_shape if input_shape is None else check_input_shape(input_shape)
    return e.builder(name=name, **kwargs)
