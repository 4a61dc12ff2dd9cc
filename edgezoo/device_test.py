"""``edgezoo test``: a .tflite checked for a board through the verification path, beside its float
model (a .keras/.h5 file or a float .tflite) when one is given."""
from pathlib import Path

import numpy as np

from edgezoo.base.errors import DataError


class FloatReference:
    """The float model int8 outputs are judged against: Keras, or a float .tflite in LiteRT."""

    def __init__(self, path, trust_model_code=False):
        self.path = Path(str(path))
        if self.path.suffix == ".tflite":
            from edgezoo.edge.loader import load_tflite
            from edgezoo.edge.runners.litert import LiteRTRunner

            data, parsed = load_tflite(self.path)
            quantized = [d for d in parsed.inputs if d.dtype in ("INT8", "INT16", "UINT8")]
            if quantized:
                raise DataError(f"{self.path.name} takes {quantized[0].dtype} inputs: the "
                                "reference must be the float model")
            self.input_shape = tuple(parsed.inputs[0].shape[1:])
            self._runner = LiteRTRunner(data, parsed, "reference")
            self.contract = None
        else:
            from edgezoo.convert import load_keras_model, model_contract

            self._keras = load_keras_model(self.path, trust_model_code=trust_model_code)
            self.input_shape = tuple(self._keras.input_shape[1:])
            self._runner = None
            self.contract = model_contract(self.path)

    @property
    def task(self):
        """The Keras model's task (``edgezoo.zoo.tasks``); None for a float .tflite."""
        if self._runner is not None:
            return None
        from edgezoo.zoo.tasks import task_of

        return task_of(self._keras)

    def predict(self, x):
        if self._runner is not None:
            outs = self._runner.run_all_float(x)
            return outs[0] if len(outs) == 1 else outs
        return self._keras.predict(x, batch_size=256, verbose=0)

    def latency_ms(self, x):
        from edgezoo.edge.latency import keras_latency_ms, litert_latency_ms
        from edgezoo.zoo.data.arrays import take

        if self._runner is not None:
            return litert_latency_ms(self._runner, take(x, slice(0, 1)))
        return keras_latency_ms(self._keras, take(x, slice(0, 1)))


def signature_name(details):
    """An input's name as the model's signature gives it ("serving_default_input_ids:0" ->
    "input_ids"): how .npz files of several inputs name their arrays."""
    name = details.name.split(":")[0]
    return name[len("serving_default_"):] if name.startswith("serving_default_") else name


def read_named_inputs(path, model):
    """One array per input of ``model`` from an .npz holding them under the inputs'
    signature names (int32 token ids as they are); never unpickles."""
    names = [signature_name(d) for d in model.inputs]
    path = Path(str(path))
    if path.suffix != ".npz" or not path.is_file():
        raise DataError(f"{path}: a model with {len(names)} inputs reads its data from an .npz "
                        f"holding one array per input, named {', '.join(names)}")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [n for n in names if n not in z.files]
            if missing:
                raise DataError(f"{path.name} has arrays {sorted(z.files)}; the model's inputs "
                                f"are {', '.join(names)} (missing: {', '.join(missing)})")
            return [z[n] for n in names], names
    except (ValueError, OSError) as exc:
        raise DataError(f"{path.name} is not a readable .npz file: {exc}") from None


def test_tflite(path, target, samples=32, seed=0, profiles=None, float_model=None, data=None,
                input_range=None, thresholds=None, trust_model_code=False, out_dir=None,
                task=None):
    """Load safely, then every gate of the verification path on ``data`` (a data set's test split,
    or all of a .npy/.npz file) or seeded random inputs. ``report["checks"]`` says what passed;
    measured wall-clock latencies are under ``report["timings"]``. ``out_dir``: also write
    report.json, report.md and report.png there, as one output set."""
    import contextlib

    from edgezoo.base.output_set import output_set

    with output_set(out_dir) if out_dir is not None else contextlib.nullcontext() as folder:
        report = _test_tflite(path, target, samples, seed, profiles, float_model, data,
                              input_range, thresholds, trust_model_code, task)
        if folder is not None:
            from edgezoo.edge.loader import read_model_bytes
            from edgezoo.edge.plots import write_report_plot
            from edgezoo.edge.report import write_reports

            write_report_plot(folder / "report.png", report, read_model_bytes(path))
            report["plot"] = "report.png"
            write_reports(folder, report)
    return report


def _test_tflite(path, target, samples, seed, profiles, float_model, data, input_range,
                 thresholds, trust_model_code, task):
    from edgezoo.edge.latency import litert_latency_ms
    from edgezoo.edge.loader import load_tflite
    from edgezoo.edge.profiles import get_profile
    from edgezoo.edge.runners.litert import LiteRTRunner
    from edgezoo.edge.verification import lut_compressed, random_inputs, verify
    from edgezoo.zoo.data import DATASETS
    from edgezoo.zoo.data.contract import user_contract
    from edgezoo.zoo.data.sources import is_named, load_for_model

    from edgezoo.cli.stages import stage

    profile = get_profile(target, extra=profiles)
    stage(f"loading {path} (LiteRT's verifier, structural checks)")
    tflite, model = load_tflite(path)
    shape = tuple(model.inputs[0].shape[1:])
    if float_model is not None and data is None:
        raise DataError("comparing with the float model needs data it meets: pass --data (a data "
                        f"set: {', '.join(DATASETS)}; for a detector shapes or a folder of COCO "
                        "folders; or a .npy/.npz file of inputs)")
    if float_model is not None:
        stage(f"loading the float model {float_model}")
    reference = (FloatReference(float_model, trust_model_code) if float_model is not None
                 else None)
    if task is None and reference is not None:
        task = reference.task
    if len(model.inputs) > 1:
        return _test_multi_input(tflite, model, profile, path, samples, seed, reference, data,
                                 thresholds, task)
    if reference is not None and reference.input_shape != shape:
        raise DataError(f"the float model takes inputs of shape {reference.input_shape}, the "
                        f".tflite {shape}: they are not the same model")
    contract = user_contract(input_range) or (reference.contract if reference else None)
    report = {"model": Path(str(path)).name, "tflite_bytes": len(tflite), "ops": model.op_names,
              "op_types": model.op_types(),
              "input_contract": None if contract is None else contract.as_dict()}
    if data is not None:
        out_shape = tuple(model.outputs[0].shape)
        dataset = load_for_model(data, shape, contract, split=False,
                                 num_classes=out_shape[-1] if len(out_shape) == 2 else None)
        x, labels = dataset.test.x, dataset.test.y
        inputs = (f"{data} test split ({len(x)} samples)" if is_named(data)
                  else f"{Path(str(data)).name} ({len(x)} samples)")
        report["data"] = {"name": dataset.name, "source": dataset.source, "evaluated_on": "test"}
    else:
        x, labels, inputs = random_inputs(model.inputs[0], samples, seed), None, \
            f"{samples} seeded random inputs"
    float_outputs = reference.predict(x) if reference is not None else None
    where = f"{profile.name} ({profile.runtime})"
    stage(f"verifying on {where}: {'per-op gate, arena, ' if profile.micro else ''}"
          f"{len(x)} {'samples' if data is not None else 'seeded random inputs'}")
    report.update(verify(tflite, model, profile, x, float_outputs=float_outputs, labels=labels,
                         thresholds=thresholds, inputs=inputs, real_data=data is not None,
                         task=task))
    timings = report["timings"] = {}
    if not lut_compressed(model) and report["runtimes"].get("default", {}).get("available"):
        timings["litert_ms"] = litert_latency_ms(LiteRTRunner(tflite, model, "default"), x[:1])
    if reference is not None:
        timings["float_ms"] = reference.latency_ms(np.asarray(x, np.float32))
    return report


def _test_multi_input(tflite, model, profile, path, samples, seed, reference, data, thresholds,
                      task):
    """A model with several inputs (token ids and a mask, ...): data from an .npz with one
    array per input (``read_named_inputs``), or seeded random inputs (token ids 0 or 1)."""
    from edgezoo.cli.stages import stage
    from edgezoo.edge.verification import random_inputs, verify

    report = {"model": Path(str(path)).name, "tflite_bytes": len(tflite), "ops": model.op_names,
              "op_types": model.op_types(), "input_contract": None}
    if data is not None:
        x, names = read_named_inputs(data, model)
        inputs = f"{Path(str(data)).name} ({len(x[0])} samples of {', '.join(names)})"
        report["data"] = {"name": Path(str(data)).name, "source": str(data), "evaluated_on": "all"}
    else:
        x, inputs = random_inputs(list(model.inputs), samples, seed), f"{samples} seeded random inputs"
    float_outputs = reference.predict(x) if reference is not None else None
    stage(f"verifying on {profile.name} ({profile.runtime}): {len(x[0])} samples of "
          f"{len(x)} inputs")
    report.update(verify(tflite, model, profile, x, float_outputs=float_outputs,
                         thresholds=thresholds, inputs=inputs, real_data=data is not None,
                         task=task))
    report["timings"] = {}
    return report
