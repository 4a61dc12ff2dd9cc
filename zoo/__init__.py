"""edgezoo.zoo: Keras (tf_keras) implementations of recent papers, behind one registry."""
from edgezoo.zoo import vit  # noqa: F401  (each family package registers its variants and mapping)
from edgezoo.zoo import resnest  # noqa: F401
from edgezoo.zoo import cswin  # noqa: F401
from edgezoo.zoo import perceiver  # noqa: F401
from edgezoo.zoo import detr  # noqa: F401
from edgezoo.zoo import deformable_detr  # noqa: F401
from edgezoo.zoo.checkpoints import (
    from_checkpoint,
    read_preprocessing,
    supported_architectures,
    to_checkpoint,
)
from edgezoo.zoo.tasks import get_task, task_of
from edgezoo.zoo.registry import (
    create_model,
    list_models,
    list_tasks,
    model_info,
    register_model,
    registry_contract,
)

__all__ = ["create_model", "from_checkpoint", "get_task", "list_models", "list_tasks", "model_info",
           "read_preprocessing", "register_model", "registry_contract", "supported_architectures",
           "task_of", "to_checkpoint"]
