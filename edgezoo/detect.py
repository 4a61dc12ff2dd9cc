"""Detectors end to end: ``edgezoo train`` and ``edgezoo eval`` for a detection model.

Data is the generated ``shapes`` set or a user's folder with ``train/``, ``val/`` and ``test/``
COCO folders (``zoo.data.coco``). Training uses the train split; ``eval`` measures COCO mAP
with pycocotools on the test split, in Keras, LiteRT or TFLite Micro through the same
evaluation, so the three numbers compare.
"""
from pathlib import Path


from edgezoo.base.errors import DataError
from edgezoo.zoo.data.detection import load_detection_data

RUNTIMES = ("keras", "litert", "tflite-micro")


def train_detector(name, data="shapes", *, epochs, learning_rate=1e-4, batch_size=16, seed=0,
                   progress=None):
    """(trained model, data set, val mAP): a registered detector trained with the set loss."""
    from edgezoo.zoo import create_model
    from edgezoo.zoo.registry import registered_task
    from edgezoo.zoo.detr.train import auxiliary_trainer, evaluate_detector, fit_detector
    from edgezoo.zoo.set_loss import DEFORMABLE_DETR_LOSS, DETR_LOSS
    from edgezoo.zoo.training import deterministic

    deterministic(seed)
    sigmoid = registered_task(name) == "detection_sigmoid"
    model = create_model(name)
    auxiliary_trainer(model)  # refuses a model it cannot train, before the data
    dataset = load_detection_data(data, model.input_shape[1:3], seed=seed)
    classes = int(model.outputs[0].shape[-1]) - (0 if sigmoid else 1)
    if dataset.num_classes != classes:
        raise DataError(f"{name} predicts {classes} classes; {data} has {dataset.num_classes} "
                        f"({', '.join(dataset.classes)}): create the model with "
                        f"num_classes={dataset.num_classes}")
    fit_detector(model, dataset.train, epochs=epochs, batch_size=batch_size,
                 learning_rate=learning_rate, seed=seed, progress=progress,
                 loss=DEFORMABLE_DETR_LOSS if sigmoid else DETR_LOSS)
    val = evaluate_detector(lambda x: model.predict(x, batch_size=64, verbose=0), dataset.val)
    return model, dataset, val


def save_detector(model, dataset, out):
    """Save a trained detector to ``out`` (.keras, atomically) with the images' value range it
    was trained on recorded inside, so ``convert`` and ``test`` bring data into it."""
    from edgezoo.base import files
    from edgezoo.zoo.data.contract import InputContract, record_in_keras_file

    with files.atomic_path(Path(out)) as tmp:
        model.save(tmp)
        record_in_keras_file(tmp, InputContract(*dataset.value_range,
                                                f"edgezoo train on {dataset.name}"))


def predictor(path, runtime):
    """``predict(x) -> (logits, boxes)`` for a .keras model or a .tflite in ``runtime``."""
    if runtime not in RUNTIMES:
        raise DataError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    path = Path(path)
    if path.suffix == ".tflite":
        from edgezoo.edge.loader import load_tflite
        from edgezoo.edge.runners.litert import IsolatedLiteRTRunner
        from edgezoo.edge.runners.micro import MicroRunner

        if runtime == "keras":
            raise DataError(f"{path} is a .tflite: evaluate it with --runtime litert or tflite-micro")
        data, parsed = load_tflite(path)
        runner = MicroRunner(data, parsed) if runtime == "tflite-micro" else \
            IsolatedLiteRTRunner(data, parsed, "default")
        return lambda x: tuple(runner.run_all_float(x)[:2]), parsed.inputs[0].shape[1:3]
    if runtime != "keras":
        raise DataError(f"{path} is a Keras model: convert it first to run it in {runtime}")
    from edgezoo.convert import load_keras_model

    model = load_keras_model(path)
    return (lambda x: tuple(model.predict(x, batch_size=64, verbose=0)[:2]),
            tuple(model.input_shape[1:3]))


def evaluate(path, data="shapes", runtime="keras", seed=0):
    """COCO mAP of a detector on the test split of ``data``."""
    from edgezoo.zoo.detr.train import evaluate_detector

    predict, size = predictor(path, runtime)
    dataset = load_detection_data(data, tuple(int(s) for s in size), seed=seed)
    result = evaluate_detector(predict, dataset.test)
    return {"runtime": runtime, "data": dataset.name, "images": len(dataset.test), **result}
