"""Reference checkpoints (timm hub folders, ``.safetensors`` files) into zoo models, and back.

Family-independent: reading safetensors with numpy only (no PyTorch; pickle files are refused
unopened, since unpickling runs code), a generic ``assign`` that puts every checkpoint tensor into
exactly one Keras variable and reports missing, leftover and mis-shaped tensors by name, and
``from_checkpoint``, which dispatches on the checkpoint's configuration to a family's mapping.
"""
import dataclasses
import fnmatch
import json
from pathlib import Path
from typing import Callable

import numpy as np

from edgezoo.base.errors import EdgezooError, ModelFileError, UnknownModelError

PICKLE_SUFFIXES = (".bin", ".pth", ".pt", ".ckpt", ".pkl", ".pickle")
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def _pickle_refusal(path):
    return ModelFileError(
        f"{path} is a PyTorch pickle file; edgezoo does not open pickles (loading one runs code "
        f"from the file). Convert it to safetensors where PyTorch is installed and the file is "
        f"trusted: python -c \"import torch; from safetensors.torch import save_file; "
        f"save_file(torch.load('{Path(path).name}', map_location='cpu', weights_only=True), "
        f"'model.safetensors')\", then pass the .safetensors file (or its folder, with "
        f"config.json)."
    )


def read_safetensors(path):
    """Every tensor of a ``.safetensors`` file as numpy arrays, by name."""
    from safetensors import safe_open

    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _pickle_refusal(path)
    if not path.is_file():
        raise ModelFileError(f"checkpoint file {path} does not exist")
    try:
        with safe_open(str(path), framework="numpy") as f:
            return {name: f.get_tensor(name) for name in f.keys()}
    except Exception as e:  # SafetensorError (header, offsets) or a dtype numpy lacks
        raise ModelFileError(f"{path} is not a readable safetensors file (corrupted or truncated "
                             f"header or data?): {e}") from None


def read_checkpoint(path):
    """``(config, tensors)`` from a hub folder (config.json + model.safetensors) or a
    ``.safetensors`` file (with a config.json beside it, if any; else config is ``{}``)."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _pickle_refusal(path)
    if path.is_dir():
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            pickles = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
            if pickles:
                raise _pickle_refusal(path / pickles[0])
            raise ModelFileError(f"{path} holds no {WEIGHTS_FILE}")
        config_path = path / CONFIG_FILE
    else:
        weights, config_path = path, path.parent / CONFIG_FILE
    config = {}
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise ModelFileError(f"{config_path} is not valid JSON: {e}") from None
    return config, read_safetensors(weights)


@dataclasses.dataclass(frozen=True)
class Transform:
    """How one checkpoint tensor becomes the arrays of its Keras variables, and back."""

    name: str
    forward: Callable  # checkpoint array -> tuple of arrays, one per target variable
    inverse: Callable  # tuple of arrays -> checkpoint array


IDENTITY = Transform("identity", lambda a: (a,), lambda vs: vs[0])
LINEAR = Transform("linear [out, in] -> [in, out]", lambda a: (a.T,), lambda vs: vs[0].T)
CONV2D = Transform("conv OIHW -> HWIO", lambda a: (a.transpose(2, 3, 1, 0),),
                   lambda vs: vs[0].transpose(3, 2, 0, 1))


def batch_norm_rows(tensor, layer):
    """Mapping rows: the four tensors of a PyTorch BatchNorm2d -> a Keras BatchNormalization."""
    return [(f"{tensor}.weight", (f"{layer}.gamma",), IDENTITY),
            (f"{tensor}.bias", (f"{layer}.beta",), IDENTITY),
            (f"{tensor}.running_mean", (f"{layer}.moving_mean",), IDENTITY),
            (f"{tensor}.running_var", (f"{layer}.moving_variance",), IDENTITY)]


def conv_rows(tensor, layer):
    """Mapping row of a bias-free PyTorch Conv2d -> a Keras Conv2D kernel."""
    return [(f"{tensor}.weight", (f"{layer}.kernel",), CONV2D)]


def linear_rows(tensor, layer):
    """Mapping rows of a PyTorch Linear -> a Keras Dense (kernel and bias)."""
    return [(f"{tensor}.weight", (f"{layer}.kernel",), LINEAR),
            (f"{tensor}.bias", (f"{layer}.bias",), IDENTITY)]


def layer_norm_rows(tensor, layer):
    """Mapping rows of a PyTorch LayerNorm / GroupNorm -> gamma and beta."""
    return [(f"{tensor}.weight", (f"{layer}.gamma",), IDENTITY),
            (f"{tensor}.bias", (f"{layer}.beta",), IDENTITY)]


@dataclasses.dataclass(frozen=True)
class Step:
    """One checkpoint tensor, the Keras variables it fills, and the transform between them."""

    tensor: str
    variables: tuple
    transform: Transform


def variable(model, path):
    """The variable at ``layer.attr[.attr…]``, e.g. ``block0_attn.query.kernel``."""
    layer_name, *attrs = path.split(".")
    obj = model.get_layer(layer_name)
    for attr in attrs:
        obj = getattr(obj, attr)
    return obj


def expand(table, model, **ranges):
    """The plan of ``model`` from a mapping table of ``(pattern, targets, transform)`` rows;
    ``{i}`` in a row repeats it for each ``i`` in ``ranges["i"]`` (the blocks)."""
    plan = []
    for pattern, targets, transform in table:
        keys = [k for k in ranges if "{" + k + "}" in pattern]
        values = [dict(zip(keys, combo)) for combo in _product([ranges[k] for k in keys])]
        for fmt in values:
            plan.append(Step(pattern.format(**fmt),
                             tuple(variable(model, t.format(**fmt)) for t in targets), transform))
    return plan


def _product(lists):
    out = [()]
    for values in lists:
        out = [o + (v,) for o in out for v in values]
    return out


def _names(names, limit=20):
    names = sorted(names)
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def tied_problems(tensors, tied):
    """``tied``: {copy: source} names of tensors a checkpoint stores twice (GPT-2's ``lm_head``
    = ``wte``; heads shared across layers). A copy that differs from its source is a problem:
    the model has one weight, so which of the two it would hold is undefined."""
    problems = []
    for copy, source in tied.items():
        if copy in tensors and source in tensors and not np.array_equal(
                np.asarray(tensors[copy]), np.asarray(tensors[source])):
            problems.append(f"tied tensor {copy} differs from its source {source} (the model "
                            "shares one weight between them)")
    return problems


def assign(tensors, plan, *, skippable=(), model=None, fresh=(), tied=None):
    """Assign every tensor of the plan exactly once, after checking all of them.

    Missing tensors, leftover tensors (other than ``skippable`` glob patterns: buffers the model
    does not need) and shapes that differ are errors naming the tensors; with ``model``, so is a
    trainable variable that the plan leaves unassigned (a mapping bug), except in the ``fresh``
    layers (e.g. a new head). ``tied`` copies ({copy: source}) are not assigned: each must equal
    its source (``tied_problems``).
    """
    tied = dict(tied or {})
    wanted = {step.tensor for step in plan}
    missing = sorted(wanted - set(tensors))
    extra = sorted(n for n in tensors if n not in wanted and n not in tied
                   and not any(fnmatch.fnmatchcase(n, p) for p in skippable))
    problems = tied_problems(tensors, tied)
    names = [step.tensor for step in plan]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(f"mapping bug: tensors mapped twice: {_names(twice)}")
    if missing:
        problems.append(f"missing tensors: {_names(missing)}")
    if extra:
        problems.append(f"unexpected tensors (not in the mapping): {_names(extra)}")
    arrays = []
    for step in plan:
        if step.tensor not in tensors:
            continue
        value = np.asarray(tensors[step.tensor])
        expected = np.shape(step.transform.inverse(tuple(np.zeros(v.shape, np.float32)
                                                         for v in step.variables)))
        if value.shape != expected:
            problems.append(f"tensor {step.tensor} has shape {value.shape}, the model expects "
                            f"{expected}")
            continue
        arrays.append((step, step.transform.forward(value)))
    seen = {}
    for step in plan:
        for v in step.variables:
            if id(v) in seen:
                problems.append(f"mapping bug: variable {v.name} is filled by both "
                                f"{seen[id(v)]} and {step.tensor}")
            seen[id(v)] = step.tensor
    if model is not None:
        kept = {id(v) for name in fresh for v in model.get_layer(name).trainable_variables}
        unfilled = [v.name for v in model.trainable_variables
                    if id(v) not in seen and id(v) not in kept]
        if unfilled:
            problems.append(f"mapping bug: no tensor fills {_names(unfilled)}")
    if problems:
        raise ModelFileError("checkpoint does not match the model: " + "; ".join(problems))
    for step, values in arrays:
        for var, value in zip(step.variables, values):
            var.assign(np.asarray(value, dtype=var.dtype.as_numpy_dtype))


def export(plan):
    """The checkpoint tensors of a plan, from the model's current weights (C-contiguous)."""
    return {step.tensor: np.ascontiguousarray(
        step.transform.inverse(tuple(v.numpy() for v in step.variables))) for step in plan}


# hub -> architecture -> loader(config, tensors, **overrides) -> keras.Model
_FAMILIES: dict[str, dict[str, Callable]] = {}
# hub -> exporter(model) -> (config, tensors)
_EXPORTERS: dict[str, list] = {}


def register_checkpoint_family(hub, architectures, loader, exporter=None, family=None):
    """Register ``loader`` for the hub's ``architectures`` and ``exporter`` for zoo ``family``."""
    for arch in architectures:
        _FAMILIES.setdefault(hub, {})[arch] = loader
    if exporter is not None:
        _EXPORTERS.setdefault(family, []).append(exporter)


def supported_architectures():
    """``{hub: [architecture, ...]}`` that ``from_checkpoint`` reads."""
    import edgezoo.zoo  # noqa: F401  (registers the families)

    return {hub: sorted(archs) for hub, archs in _FAMILIES.items()}


def _hub_and_architecture(config):
    if "architecture" in config:
        return "timm", config["architecture"]
    if "architectures" in config:
        archs = config["architectures"] or [None]
        return "huggingface", archs[0]
    return None, None


def from_checkpoint(path, **overrides):
    """A zoo model built from a checkpoint's own configuration, holding its weights.

    ``path``: a hub folder (config.json + model.safetensors) or a ``.safetensors`` file with a
    config.json beside it. ``overrides`` replace builder keywords (e.g. ``dropout``); a
    ``num_classes`` other than the checkpoint's leaves a fresh head. The checkpoint's
    preprocessing (timm ``pretrained_cfg``) is on ``model.preprocessing`` (see
    ``read_preprocessing``);
    it does not travel in a ``.keras`` file.
    """
    supported = supported_architectures()
    config, tensors = read_checkpoint(path)
    hub, arch = _hub_and_architecture(config)
    listing = "; ".join(f"{h}: {', '.join(a)}" for h, a in supported.items())
    if hub is None:
        raise ModelFileError(f"{path}: no config.json with a timm 'architecture' or a Hugging Face "
                             f"'architectures' entry beside the weights; supported: {listing}")
    loader = _FAMILIES.get(hub, {}).get(arch)
    if loader is None:
        raise UnknownModelError(f"{hub} architecture {arch!r} is not supported; "
                                f"supported: {listing}")
    model = loader(config, tensors, **overrides)
    # Set past Keras' attribute tracking, which would wrap the lists (and is not saved anyway).
    folder = Path(path) if Path(path).is_dir() else Path(path).parent
    object.__setattr__(model, "preprocessing", read_preprocessing(config, folder=folder))
    return model


def read_preprocessing(config_or_path, folder=None):
    """The preprocessing a checkpoint was trained with (timm ``pretrained_cfg``, or a Hugging
    Face ``preprocessor_config.json`` in ``folder`` / the given folder), or ``"unknown"`` when
    neither says. ``input_shape`` is (H, W, C)."""
    config = config_or_path
    if not isinstance(config, dict):  # a folder, a config.json, or weights beside one
        path = Path(config_or_path)
        path = path / CONFIG_FILE if path.is_dir() else (
            path if path.suffix == ".json" else path.parent / CONFIG_FILE)
        config = json.loads(path.read_text()) if path.is_file() else {}
        folder = path.parent if folder is None else folder
    cfg = config.get("pretrained_cfg")
    if not cfg:
        hf = Path(folder) / HF_PREPROCESSOR_FILE if folder is not None else None
        return _hf_preprocessing(hf) if hf is not None and hf.is_file() else "unknown"
    keys = ("mean", "std", "input_size", "interpolation", "crop_pct", "crop_mode")
    out = {k: cfg[k] for k in keys if k in cfg}
    if "input_size" in out:
        c, h, w = out["input_size"]
        out["input_shape"] = [h, w, c]
    out["source"] = f"timm pretrained_cfg {cfg.get('hf_hub_id') or cfg.get('architecture', '')}"
    return out


HF_PREPROCESSOR_FILE = "preprocessor_config.json"
# PIL resampling filters by number, as Hugging Face image processors store ``resample``.
_PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


def _hf_preprocessing(path):
    """mean, std, size, resample and crop of a Hugging Face ``preprocessor_config.json``."""
    try:
        pre = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path} is not valid JSON: {e}") from None
    keys = ("image_mean", "image_std", "size", "resample", "do_resize", "do_center_crop",
            "crop_size", "do_rescale", "rescale_factor", "do_normalize")
    out = {k: pre[k] for k in keys if k in pre}
    if "image_mean" in out:
        out["mean"] = out["image_mean"]
    if "image_std" in out:
        out["std"] = out["image_std"]
    if pre.get("resample") in _PIL_RESAMPLE:
        out["interpolation"] = _PIL_RESAMPLE[pre["resample"]]
    kind = pre.get("image_processor_type") or pre.get("feature_extractor_type") or ""
    out["source"] = f"huggingface {HF_PREPROCESSOR_FILE} {kind}".rstrip()
    return out


def to_checkpoint(model, directory):
    """Write ``model`` as a hub folder (config.json + model.safetensors) in the reference's
    names and layout; returns the folder. Only families with an exporter."""
    import edgezoo.zoo  # noqa: F401
    from safetensors.numpy import save_file

    for exporters in _EXPORTERS.values():
        for exporter in exporters:
            result = exporter(model)
            if result is not None:
                config, tensors = result
                directory = Path(directory)
                directory.mkdir(parents=True, exist_ok=True)
                # each file complete or not there: written beside, then renamed over
                weights, conf = directory / (WEIGHTS_FILE + ".part"), directory / (CONFIG_FILE + ".part")
                save_file(tensors, str(weights), metadata={"format": "pt"})
                conf.write_text(json.dumps(config, indent=2) + "\n")
                weights.replace(directory / WEIGHTS_FILE)
                conf.replace(directory / CONFIG_FILE)
                return directory
    raise EdgezooError(f"model {model.name!r} has no checkpoint exporter; the families with one: "
                       f"{', '.join(sorted(_EXPORTERS))}")
