"""Quantization-aware training (TFMOT) of zoo models, custom layers included.

Every layer is annotated with a QuantizeConfig: TFMOT's own for the built-in
layers it knows, ours (``edgezoo.converters.quantize_configs``) for the zoo's
layers and activations. The QAT model keeps fake-quant ops whose trained
ranges the TFLite converter takes over; convert it with
``convert(qat_model, "int8", calib, micro=True)`` (calibration samples still
set the int8 input scale and the tensors no fake-quant covers). For a
microcontroller, run QAT on the model after ``apply_micro_rewrites``: the
rewritten layers are the ones that are converted.
"""
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from edgezoo.converters.finetune import classification_loss, finetune, require_graph_model
from edgezoo.converters.graph import model_nodes
from edgezoo.converters.quantize_configs import (
    ACTIVATION_CONFIGS,
    CUSTOM_OBJECTS,
    FOLDED_INTO,
    LAYER_CONFIGS,
    PRESERVE,
    PRESERVE_UNSUPPORTED,
)
from edgezoo.base.errors import RecipeError

# Activation functions TFMOT's own Activation config handles.
TFMOT_ACTIVATIONS = ("relu", "relu6", "swish", "gelu", "linear", "softmax", "sigmoid", "tanh")


def _schemes():
    """preserve -> TFMOT quantize scheme (built lazily: the collaborative ones log on creation)."""
    return {
        None: tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme,
        "sparsity": tfmot.quantization.keras.collab_opts.Default8BitPrunePreserveQuantizeScheme,
        "cluster": lambda: tfmot.experimental.combine.Default8BitClusterPreserveQuantizeScheme(
            preserve_sparsity=True),
    }


def qat_scope():
    """Custom-object scope under which QAT models clone, save and load."""
    return tfmot.quantization.keras.quantize_scope(CUSTOM_OBJECTS)


def _activation_name(layer):
    return getattr(layer.activation, "__name__", str(layer.activation))


def layer_config(layer, preserve=None, model=None):
    """The QuantizeConfig edgezoo supplies for ``layer``, or None where TFMOT's own applies.

    ``model``: the model ``layer`` is quantized in; what a layer is folded into
    is read from that model's calls of it alone (a layer TFMOT's strip steps
    left shared also has calls in the wrapped model, after a TFMOT wrapper).

    Raises RecipeError for a layer neither knows.
    """
    entry = LAYER_CONFIGS.get(type(layer))
    if entry is not None:
        return entry[0](preserve)
    if isinstance(layer, keras.layers.Activation):
        name = _activation_name(layer)
        if name in ACTIVATION_CONFIGS:
            return ACTIVATION_CONFIGS[name][0](preserve)
        if name in TFMOT_ACTIVATIONS:
            return None
        raise RecipeError(
            f"quantization-aware training: layer {layer.name!r} (Activation) uses activation "
            f"{name!r}, which neither TFMOT ({', '.join(TFMOT_ACTIVATIONS)}) nor "
            "edgezoo.converters.quantize_configs.ACTIVATION_CONFIGS knows; add a QuantizeConfig "
            "for it there")
    if tfmot.quantization.keras.default_8bit.Default8BitQuantizeRegistry().supports(layer):
        return None
    if type(layer) in FOLDED_INTO:
        nodes = layer._inbound_nodes if model is None else model_nodes(model, layer)
        before = {type(node.inbound_layers) for node in nodes}
        if before and all(issubclass(b, FOLDED_INTO[type(layer)]) for b in before):
            return None
        raise RecipeError(
            f"quantization-aware training: layer {layer.name!r} ({type(layer).__name__}) follows "
            f"{', '.join(sorted(b.__name__ for b in before)) or 'nothing'}; TFMOT quantizes it "
            f"only folded into a preceding "
            f"{' / '.join(c.__name__ for c in FOLDED_INTO[type(layer)])}")
    raise RecipeError(
        f"quantization-aware training: layer {layer.name!r} of class "
        f"{type(layer).__module__}.{type(layer).__name__} has no QuantizeConfig: neither TFMOT's "
        "8-bit registry nor edgezoo.converters.quantize_configs.LAYER_CONFIGS knows it; add an "
        "entry (layer class -> QuantizeConfig) there")


def check_qat(model, preserve=None):
    """Raise RecipeError, before any work, if ``model`` cannot be quantization-aware trained."""
    if preserve not in PRESERVE:
        raise RecipeError(f"unknown preserve={preserve!r} for quantization-aware training; "
                          f"choose one of {', '.join(map(repr, PRESERVE))}")
    require_graph_model(model, "quantization-aware training")
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            raise RecipeError(
                f"quantization-aware training: layer {layer.name!r} is a nested model "
                f"({type(layer).__name__}); TFMOT wraps layers one level deep: flatten it into "
                "the outer functional model")
        layer_config(layer, preserve, model)
        if preserve and type(layer) in PRESERVE_UNSUPPORTED:
            raise RecipeError(
                f"preserve={preserve!r}: layer {layer.name!r} ({type(layer).__name__}) cannot keep "
                f"its {'zeros' if preserve == 'sparsity' else 'clusters'} through QAT: "
                f"{PRESERVE_UNSUPPORTED[type(layer)]}; run QAT without preserve, or compress only "
                "layers outside it")


def annotate(model, preserve=None):
    """Copy of ``model`` with every layer wrapped in ``QuantizeAnnotate`` (weights copied)."""
    check_qat(model, preserve)

    def wrap(layer):
        clone = layer.__class__.from_config(layer.get_config())
        config = layer_config(layer, preserve, model)
        return tfmot.quantization.keras.quantize_annotate_layer(clone, config)

    with qat_scope():
        annotated = keras.models.clone_model(model, clone_function=wrap)
    annotated.set_weights(model.get_weights())
    return annotated


def quantize_model(model, preserve=None):
    """The QAT (fake-quantized) copy of ``model``, untrained."""
    annotated = annotate(model, preserve)
    with qat_scope():
        return tfmot.quantization.keras.quantize_apply(annotated, _schemes()[preserve]())


def quantize_aware_train(model, data, *, epochs, batch_size=32, learning_rate=1e-4, seed=0,
                         preserve=None, loss=None, progress=False):
    """Quantization-aware fine-tuning of ``model`` on ``data`` (a ``FinetuneData``).

    ``preserve="sparsity"`` / ``"cluster"`` keeps a pruned model's zeros / a
    clustered model's shared values (TFMOT's collaborative optimization).
    Returns the trained QAT model; ``model`` is left untouched.
    """
    check_qat(model, preserve)
    keras.utils.set_random_seed(seed)  # the range variables of the wrappers start the same
    qat_model = quantize_model(model, preserve)
    # From the original model: a QuantizeWrapper hides whether the last layer ends in softmax.
    if loss is None and data.y is not None:
        loss = classification_loss(model)
    finetune(qat_model, data, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
             seed=seed, loss=loss, progress=progress, desc="qat")
    return qat_model
