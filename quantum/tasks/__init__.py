"""Tasks: generated or bundled data sets with a default model each."""
from edgezoo.quantum.errors import QuantumConfigError
from edgezoo.quantum.tasks.base import QuantumTask
from edgezoo.quantum.tasks.cluster import cluster_task
from edgezoo.quantum.tasks.digits import digits_task
from edgezoo.quantum.tasks.quantum_data import quantum_data_task
from edgezoo.quantum.tasks.separable import separable_task

TASKS = {"digits": digits_task, "cluster": cluster_task, "quantum_data": quantum_data_task,
         "separable": separable_task}


def get_task(name, **kwargs):
    """Build the task ``name`` (digits, cluster, quantum_data, separable) with its options."""
    if name not in TASKS:
        raise QuantumConfigError(f"unknown quantum task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name](**kwargs)


__all__ = ["QuantumTask", "TASKS", "get_task", "digits_task", "cluster_task", "quantum_data_task",
           "separable_task"]
