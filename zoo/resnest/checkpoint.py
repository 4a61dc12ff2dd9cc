"""timm ResNeSt checkpoints <-> the zoo ResNeSt (``edgezoo.zoo.resnest``).

The model is built from the checkpoint's own configuration (timm's architecture defaults with
``model_args`` on top), then filled through one mapping table. timm's ``ResNet`` with
``ResNestBottleneck`` matches the zoo builder layer for layer: deep stem (``conv1.0/.3/.6`` with
BNs ``conv1.1``, ``conv1.4``, ``bn1``), avg-down shortcut (``downsample.0`` is the pool, or an
Identity at stride 1, so the conv is ``.1`` and its BN ``.2``), split attention ``conv2.*``
(``conv`` with ``cardinality * radix`` groups, ``bn0``, ``fc1``, ``bn1``, ``fc2``), avd pool with
``count_include_pad=True``, BatchNorm eps 1e-5 in eval mode with the running statistics.

The channel layouts already agree, so every conv is a plain OIHW -> HWIO transpose: a grouped
conv's output channel ``g * (out / groups) + c`` belongs to group ``g`` in PyTorch and Keras
alike; timm's ``fc2`` emits cardinal-major ``[K, R, C/K]`` logits and its ``RadixSoftmax``
transposes them to the radix-major order of the splits, as the zoo's ``RadixSoftmax`` does.
``num_batches_tracked`` buffers are skipped on load and written as 0 on export.
"""
import fnmatch

import numpy as np

from edgezoo.base.errors import ModelFileError
from edgezoo.zoo.checkpoints import (
    IDENTITY,
    LINEAR,
    _names,
    batch_norm_rows,
    conv_rows,
    assign,
    expand,
    export,
    register_checkpoint_family,
)
from edgezoo.zoo.resnest.model import attention_channels, resnest

BN_EPSILON = 1e-5  # timm: nn.BatchNorm2d defaults
EXPANSION = 4  # ResNestBottleneck.expansion
BUFFERS = ("*.num_batches_tracked",)  # BN step counters: training state, not weights


_bn, _conv = batch_norm_rows, conv_rows


# (timm tensor, zoo variables ("layer.attr"), transform). Deep stem: conv, BN, ReLU x 3.
STEM_TABLE = [
    *_conv("conv1.0", "stem_conv1"), *_bn("conv1.1", "stem_bn1"),
    *_conv("conv1.3", "stem_conv2"), *_bn("conv1.4", "stem_bn2"),
    *_conv("conv1.6", "stem_conv3"), *_bn("bn1", "stem_bn3"),
]
# One ResNestBottleneck; {s} is the stage (1-based, as timm's layer{s}), {b} the block.
_T, _Z = "layer{s}.{b}", "layer{s}_block{b}"
BLOCK_TABLE = [
    *_conv(f"{_T}.conv1", f"{_Z}_conv1"), *_bn(f"{_T}.bn1", f"{_Z}_bn1"),
    *_conv(f"{_T}.conv2.conv", f"{_Z}_splat_conv"), *_bn(f"{_T}.conv2.bn0", f"{_Z}_splat_bn0"),
    *_conv(f"{_T}.conv2.fc1", f"{_Z}_splat_fc1"),
    (f"{_T}.conv2.fc1.bias", (f"{_Z}_splat_fc1.bias",), IDENTITY),
    *_bn(f"{_T}.conv2.bn1", f"{_Z}_splat_bn1"),
    *_conv(f"{_T}.conv2.fc2", f"{_Z}_splat_fc2"),
    (f"{_T}.conv2.fc2.bias", (f"{_Z}_splat_fc2.bias",), IDENTITY),
    *_conv(f"{_T}.conv3", f"{_Z}_conv3"), *_bn(f"{_T}.bn3", f"{_Z}_bn3"),
]
# The projection shortcut of a stage's first block: downsample_avg (pool or Identity, conv, BN)
# or, with avg_down=False, downsample_conv (conv, BN).
AVG_DOWN_TABLE = [*_conv(f"{_T}.downsample.1", f"{_Z}_down_conv"),
                  *_bn(f"{_T}.downsample.2", f"{_Z}_down_bn")]
CONV_DOWN_TABLE = [*_conv(f"{_T}.downsample.0", f"{_Z}_down_conv"),
                   *_bn(f"{_T}.downsample.1", f"{_Z}_down_bn")]
HEAD_TABLE = [("fc.weight", ("fc.kernel",), LINEAR), ("fc.bias", ("fc.bias",), IDENTITY)]

# timm/models/resnest.py: every entry point's keywords, and its pretrained_cfg input size.
_RESNEST = dict(stem_type="deep", avg_down=True, base_width=64, cardinality=1,
                block_args=dict(radix=2, avd=True, avd_first=False))
TIMM_RESNEST_ARCHITECTURES = {
    "resnest14d": dict(_RESNEST, layers=[1, 1, 1, 1], stem_width=32),
    "resnest26d": dict(_RESNEST, layers=[2, 2, 2, 2], stem_width=32),
    "resnest50d": dict(_RESNEST, layers=[3, 4, 6, 3], stem_width=32),
    "resnest101e": dict(_RESNEST, layers=[3, 4, 23, 3], stem_width=64),
    "resnest200e": dict(_RESNEST, layers=[3, 24, 36, 3], stem_width=64),
    "resnest269e": dict(_RESNEST, layers=[3, 30, 48, 8], stem_width=64),
    "resnest50d_4s2x40d": dict(_RESNEST, layers=[3, 4, 6, 3], stem_width=32, base_width=40,
                               cardinality=2, block_args=dict(radix=4, avd=True, avd_first=True)),
    "resnest50d_1s4x24d": dict(_RESNEST, layers=[3, 4, 6, 3], stem_width=32, base_width=24,
                               cardinality=4, block_args=dict(radix=1, avd=True, avd_first=True)),
}
TIMM_INPUT_SIZES = {"resnest101e": 256, "resnest200e": 320, "resnest269e": 416}  # else 224
# timm ResNet.__init__ defaults the entry points do not set.
_TIMM_DEFAULTS = dict(num_classes=1000, in_chans=3, channels=[64, 128, 256, 512], drop_rate=0.0)
_BLOCK_DEFAULTS = dict(radix=1, avd=False, avd_first=False)  # ResNestBottleneck defaults
_TIMM_MAPPED = {"layers", "channels", "stem_width", "base_width", "cardinality", "avg_down",
                "num_classes", "in_chans", "drop_rate", "block_args"}
_TIMM_IGNORED = {"zero_init_last"}  # initialisation only: no effect on loaded weights
# timm keywords the zoo ResNeSt has no counterpart for: the values it can take, and why.
_TIMM_FIXED = {
    "stem_type": ({"deep"}, "the zoo ResNeSt has only the deep stem (three 3x3 convs)"),
    "output_stride": ({32}, "the zoo ResNeSt has no dilated stages"),
    "global_pool": ({"avg"}, "the zoo ResNeSt pools by global average only"),
    "replace_stem_pool": ({False}, "the zoo ResNeSt's stem ends in a 3x3 max pool"),
    "down_kernel_size": ({1}, "the zoo ResNeSt's shortcut projection is a 1x1 conv"),
    "block_reduce_first": ({1}, "timm's ResNestBottleneck itself supports only 1"),
    "act_layer": ({None, "relu"}, "the zoo ResNeSt uses ReLU"),
    "norm_layer": ({None, "batchnorm", "batchnorm2d"}, "the zoo ResNeSt uses BatchNorm"),
    "aa_layer": ({None}, "the zoo ResNeSt has no anti-aliasing pools"),
    "drop_path_rate": ({0, 0.0}, "timm's ResNestBottleneck itself has no drop path"),
    "drop_block_rate": ({0, 0.0}, "the zoo ResNeSt has no DropBlock"),
}
_BLOCK_FIXED = {
    "is_first": ({False}, "the zoo ResNeSt puts avd only in strided blocks"),
    "attn_layer": ({None}, "timm's ResNestBottleneck itself supports no extra attention"),
}


def _allowed(value, allowed):
    try:
        return (value.lower() if isinstance(value, str) else value) in allowed
    except TypeError:  # a list or dict where a scalar belongs
        return False


def _refuse(arch, key, value, reason):
    return ModelFileError(f"timm {arch} with {key}={value!r} is not supported by the zoo "
                          f"ResNeSt: {reason}")


def timm_args(config):
    """timm's full keyword set for a config.json (architecture + model_args), checked."""
    arch = config["architecture"]
    model_args = dict(config.get("model_args") or {})
    args = {**_TIMM_DEFAULTS, **TIMM_RESNEST_ARCHITECTURES[arch], **model_args}
    if "num_classes" not in model_args and "num_classes" in config:
        args["num_classes"] = config["num_classes"]
    known = ", ".join(sorted(_TIMM_MAPPED | _TIMM_IGNORED | set(_TIMM_FIXED)))
    for key, value in args.items():
        if key in _TIMM_FIXED:
            allowed, reason = _TIMM_FIXED[key]
            if not _allowed(value, allowed):
                raise _refuse(arch, key, value, reason)
        elif key not in _TIMM_MAPPED and key not in _TIMM_IGNORED:
            raise ModelFileError(f"timm model_args {key}={value!r} is not supported by the zoo "
                                 f"ResNeSt; known: {known}")
    # dict(model_kwargs, **kwargs) in timm: a block_args in model_args replaces the whole dict.
    block = {**_BLOCK_DEFAULTS, **(args["block_args"] or {})}
    for key, value in block.items():
        if key in _BLOCK_FIXED:
            if not _allowed(value, _BLOCK_FIXED[key][0]):
                raise _refuse(arch, f"block_args.{key}", value, _BLOCK_FIXED[key][1])
        elif key not in _BLOCK_DEFAULTS:
            raise ModelFileError(f"timm block_args {key}={value!r} is not supported by the zoo "
                                 f"ResNeSt; known: {', '.join(sorted(_BLOCK_DEFAULTS))}")
    if int(block["radix"]) < 1:
        raise _refuse(arch, "block_args.radix", block["radix"],
                      "radix 0 (a plain ResNeXt bottleneck) has no split attention")
    args["block_args"] = block
    for key in ("layers", "channels"):
        value = args[key]
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(n, int) and n > 0 for n in value):
            raise _refuse(arch, key, value, "it must be a list of positive whole numbers")
    if len(args["layers"]) != 4 or len(args["channels"]) != 4:
        raise _refuse(arch, "layers", args["layers"], "timm's ResNet has four stages")
    base = int(args["channels"][0])
    if list(args["channels"]) != [base * 2 ** i for i in range(4)]:
        raise _refuse(arch, "channels", args["channels"], "the zoo ResNeSt doubles the planes "
                      "each stage (channels[i] = channels[0] * 2**i)")
    return args


def resnest_kwargs_from_timm(config):
    """zoo ``resnest(...)`` keywords from a timm config.json (architecture + model_args); the
    input size comes from ``pretrained_cfg`` (timm's ResNet takes any), else timm's default."""
    args = timm_args(config)
    size = TIMM_INPUT_SIZES.get(config["architecture"], 224)
    h, w = (config.get("pretrained_cfg") or {}).get("input_size", [3, size, size])[1:]
    block = args["block_args"]
    return dict(
        input_shape=(int(h), int(w), int(args["in_chans"])), num_classes=int(args["num_classes"]),
        layers=tuple(int(n) for n in args["layers"]), stem_width=int(args["stem_width"]),
        base_planes=int(args["channels"][0]), bottleneck_width=int(args["base_width"]),
        cardinality=int(args["cardinality"]), radix=int(block["radix"]), expansion=EXPANSION,
        avd=bool(block["avd"]), avd_first=bool(block["avd_first"]),
        avg_down=bool(args["avg_down"]), attn_ratio=0.25, attn_min_channels=32, attn_divisor=8,
        dropout=float(args["drop_rate"]), bn_epsilon=BN_EPSILON,
    )


def timm_shapes(kwargs, with_head=True):
    """``{tensor: shape}`` of timm's state_dict for zoo keywords, from timm's own rules (without
    the ``num_batches_tracked`` buffers): checked before anything is built."""
    sw, radix, card = kwargs["stem_width"], kwargs["radix"], kwargs["cardinality"]
    shapes = {}

    def conv(name, out, inp, k):
        shapes[f"{name}.weight"] = (out, inp, k, k)

    def bn(name, n):
        shapes.update({f"{name}.{p}": (n,) for p in ("weight", "bias", "running_mean",
                                                      "running_var")})

    conv("conv1.0", sw, kwargs["input_shape"][-1], 3), bn("conv1.1", sw)
    conv("conv1.3", sw, sw, 3), bn("conv1.4", sw)
    conv("conv1.6", 2 * sw, sw, 3), bn("bn1", 2 * sw)
    inplanes = 2 * sw
    down = "downsample.1" if kwargs["avg_down"] else "downsample.0"
    down_bn = "downsample.2" if kwargs["avg_down"] else "downsample.1"
    for s, depth in enumerate(kwargs["layers"], start=1):
        planes = kwargs["base_planes"] * 2 ** (s - 1)
        gw = int(planes * kwargs["bottleneck_width"] / 64) * card
        if gw % (card * radix):
            raise ModelFileError(f"timm layer{s}: group width {gw} does not split into "
                                 f"cardinality {card} x radix {radix} groups")
        attn = attention_channels(gw, radix)
        for b in range(depth):
            t = f"layer{s}.{b}"
            conv(f"{t}.conv1", gw, inplanes, 1), bn(f"{t}.bn1", gw)
            conv(f"{t}.conv2.conv", gw * radix, gw // (card * radix), 3)
            bn(f"{t}.conv2.bn0", gw * radix)
            conv(f"{t}.conv2.fc1", attn, gw // card, 1), bn(f"{t}.conv2.bn1", attn)
            shapes[f"{t}.conv2.fc1.bias"] = (attn,)
            conv(f"{t}.conv2.fc2", gw * radix, attn // card, 1)
            shapes[f"{t}.conv2.fc2.bias"] = (gw * radix,)
            conv(f"{t}.conv3", planes * EXPANSION, gw, 1), bn(f"{t}.bn3", planes * EXPANSION)
            if b == 0 and (s > 1 or inplanes != planes * EXPANSION):
                conv(f"{t}.{down}", planes * EXPANSION, inplanes, 1)
                bn(f"{t}.{down_bn}", planes * EXPANSION)
            inplanes = planes * EXPANSION
    if with_head:
        shapes["fc.weight"] = (kwargs["num_classes"], inplanes)
        shapes["fc.bias"] = (kwargs["num_classes"],)
    return shapes


def check_tensors(tensors, shapes, skippable=()):
    """Missing, leftover and mis-shaped tensors, by name, before the model is built."""
    skippable = (*BUFFERS, *skippable)
    missing = sorted(set(shapes) - set(tensors))
    extra = sorted(n for n in tensors if n not in shapes
                   and not any(fnmatch.fnmatchcase(n, p) for p in skippable))
    problems = []
    if missing:
        problems.append(f"missing tensors: {_names(missing)}")
    if extra:
        problems.append(f"unexpected tensors (not in the mapping): {_names(extra)}")
    for name, shape in shapes.items():
        if name in tensors and tuple(np.shape(tensors[name])) != tuple(shape):
            problems.append(f"tensor {name} has shape {tuple(np.shape(tensors[name]))}, the "
                            f"model expects {tuple(shape)}")
    if problems:
        raise ModelFileError("checkpoint does not match the model: " + "; ".join(problems))


def _has_projection(model, s):
    try:
        model.get_layer(f"layer{s}_block0_down_conv")
        return True
    except ValueError:
        return False


def resnest_plan(model, layers, avg_down=True, with_head=True):
    """The checkpoint plan of a zoo ResNeSt: one Step per timm tensor."""
    plan = expand(STEM_TABLE, model)
    down = AVG_DOWN_TABLE if avg_down else CONV_DOWN_TABLE
    for s, depth in enumerate(layers, start=1):
        plan += expand(BLOCK_TABLE, model, s=[s], b=range(depth))
        if _has_projection(model, s):
            plan += expand(down, model, s=[s], b=[0])
    return plan + (expand(HEAD_TABLE, model) if with_head else [])


def load_timm_resnest(config, tensors, **overrides):
    """A zoo ResNeSt built from a timm ResNeSt config and filled with its tensors."""
    kwargs = resnest_kwargs_from_timm(config)
    own_classes = kwargs["num_classes"]
    kwargs.update(overrides)
    kwargs.setdefault("name", config["architecture"])
    same_head = kwargs["num_classes"] == own_classes and own_classes > 0
    skippable = () if same_head else ("fc.*",)
    # Name and shape checks first: a bad file fails before a (possibly large) model is built.
    check_tensors(tensors, timm_shapes({**kwargs, "num_classes": own_classes}, same_head),
                  skippable)
    model = resnest(**kwargs)
    fresh = ("fc",) if kwargs["num_classes"] and not same_head else ()
    assign(tensors, resnest_plan(model, kwargs["layers"], kwargs["avg_down"], same_head),
           skippable=(*BUFFERS, *skippable), model=model, fresh=fresh)
    return model


def _layer(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def _zoo_resnest_args(model):
    """timm keywords of a zoo ResNeSt model (None if ``model`` is not one); refuses a zoo model
    that timm's ResNet cannot express."""
    names = {layer.name for layer in model.layers}
    if not {"stem_conv1", "stem_conv3", "stem_pool", "layer1_block0_splat_conv"} <= names:
        return None
    layers = []
    while f"layer{len(layers) + 1}_block0_conv1" in names:
        s = len(layers) + 1
        layers.append(sum(1 for n in names if n.startswith(f"layer{s}_block")
                          and n.endswith("_conv1")))
    if len(layers) != 4:
        raise ModelFileError(f"timm's ResNet has four stages; this zoo ResNeSt has {len(layers)}")
    bad_eps = sorted(layer.name for layer in model.layers
                     if layer.__class__.__name__ == "BatchNormalization"
                     and abs(layer.epsilon - BN_EPSILON) > 1e-12)
    if bad_eps:
        raise ModelFileError(f"timm's BatchNorm eps is {BN_EPSILON}; {bad_eps[0]} has another")
    soft = model.get_layer("layer1_block0_splat_rsoftmax")
    radix, card = soft.radix, soft.cardinality
    sw = model.get_layer("stem_conv1").filters
    channels = [model.get_layer(f"layer{s}_block0_conv3").filters // EXPANSION
                for s in range(1, 5)]
    gw = model.get_layer("layer1_block0_conv1").filters
    base_width = gw // card * 64 // channels[0]
    avd_pad = _layer(model, "layer2_block0_avd_pad")
    args = dict(
        layers=layers, stem_width=sw, channels=channels, base_width=base_width, cardinality=card,
        avg_down=_layer(model, "layer2_block0_down_pool") is not None,
        block_args=dict(radix=radix, avd=avd_pad is not None,
                        avd_first=avd_pad is not None
                        and avd_pad.input._keras_history.layer.name.endswith("_relu1")),
        in_chans=model.input_shape[-1],
        num_classes=model.get_layer("fc").units if "fc" in names else 0,
        drop_rate=float(model.get_layer("head_drop").rate) if "head_drop" in names else 0.0,
    )
    # Everything timm derives from these keywords must be what the model has.
    kwargs = {**resnest_kwargs_from_timm({"architecture": "resnest50d", "model_args": args}),
              "input_shape": model.input_shape[1:]}
    expected = timm_shapes(kwargs, with_head=args["num_classes"] > 0)
    actual = {s.tensor: np.shape(s.transform.inverse(tuple(v.numpy() for v in s.variables)))
              for s in resnest_plan(model, layers, args["avg_down"], args["num_classes"] > 0)}
    differ = sorted(n for n in set(expected) | set(actual) if expected.get(n) != actual.get(n))
    if differ:
        n = differ[0]
        raise ModelFileError(f"this zoo ResNeSt has no timm counterpart: timm's {n} would be "
                             f"{expected.get(n)}, the model's is {actual.get(n)} (e.g. "
                             f"attention widths other than timm's make_divisible(C*R/4, 32, 8), "
                             f"or an expansion other than 4)")
    return args


def export_timm_resnest(model):
    """``(config, tensors)`` of a zoo ResNeSt in timm's names and layout (with the BN
    ``num_batches_tracked`` buffers as 0, as a fresh timm model has them), or None if not one."""
    args = _zoo_resnest_args(model)
    if args is None:
        return None
    shape_keys = ("layers", "stem_width", "base_width", "cardinality", "block_args")
    arch = max(TIMM_RESNEST_ARCHITECTURES, key=lambda a: (
        sum(TIMM_RESNEST_ARCHITECTURES[a][k] == args[k] for k in shape_keys), a == "resnest50d"))
    defaults = {**_TIMM_DEFAULTS, **TIMM_RESNEST_ARCHITECTURES[arch]}
    model_args = {k: v for k, v in args.items() if defaults.get(k) != v}
    plan = resnest_plan(model, args["layers"], args["avg_down"], args["num_classes"] > 0)
    tensors = export(plan)
    for name in list(tensors):
        if name.endswith(".running_var"):
            tensors[name[:-len("running_var")] + "num_batches_tracked"] = np.array(0, np.int64)
    config = {"architecture": arch, "model_args": model_args, "num_classes": args["num_classes"]}
    h, w, c = model.input_shape[1:]
    size = TIMM_INPUT_SIZES.get(arch, 224)
    pre = getattr(model, "preprocessing", None)
    cfg = {k: v for k, v in pre.items() if k in ("mean", "std", "interpolation", "crop_pct",
                                                 "crop_mode")} if isinstance(pre, dict) else {}
    if cfg or (h, w) != (size, size):  # the input size travels in pretrained_cfg, as on the hub
        config["pretrained_cfg"] = {"architecture": arch, **cfg, "input_size": [c, h, w]}
    return config, tensors


register_checkpoint_family("timm", TIMM_RESNEST_ARCHITECTURES, load_timm_resnest,
                           export_timm_resnest, family="resnest")
