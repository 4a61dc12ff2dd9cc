"""Weight clustering (TFMOT): each layer's weights share K values, fine-tuned, then stripped.

Per-channel clustering gives every output channel of a convolution its own K
centroids. Int8 per-channel quantization maps each channel's K floats to at most
K int8 values (batch-norm folding scales a whole channel, so it keeps the count),
and a look-up table with log2(K)-bit indices then stores the weights losslessly
(``edgezoo.converters.micro_compression``).

Which layers are left unclustered on purpose, and why, is read from the
support table (``edgezoo.converters.layer_support``); other layers are
clustered where TFMOT's registry can wrap them.
"""
import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from edgezoo.converters.finetune import classification_loss, finetune, require_graph_model
from edgezoo.converters.layer_support import UNREPORTED, support_for
from edgezoo.base.errors import RecipeError

CENTROID_INITS = {
    "kmeans_plus_plus": tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS,
    "linear": tfmot.clustering.keras.CentroidInitialization.LINEAR,
}


def _registry():
    from tensorflow_model_optimization.python.core.clustering.keras import clustering_registry

    return clustering_registry.ClusteringRegistry


def _wrapped_names(model):
    """Names of the layers a TFMOT cluster wrapper holds in ``model``."""
    from tensorflow_model_optimization.python.core.clustering.keras import cluster_wrapper

    return {layer.layer.name for layer in model.layers
            if isinstance(layer, cluster_wrapper.ClusterWeights)}


def _check_k(k, low, what):
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < low:
        raise RecipeError(
            f"{what}={k!r}: need an integer of at least {low}"
            + (" (sparsity-preserving clustering keeps one centroid at zero)" if low > 2 else "")
            + "; 16 (4-bit indices) or 8 (3-bit) are usual")


def clusters_by_layer(model, clusters):
    """{layer name: K} from an int (every layer) or a dict ({name: K}, key None = the rest)."""
    if not isinstance(clusters, dict):
        return {layer.name: clusters for layer in model.layers}
    names = {layer.name for layer in model.layers}
    unknown = sorted(str(k) for k in clusters if k is not None and k not in names)
    if unknown:
        raise RecipeError(f"clusters names layers {unknown} that model {model.name!r} does not have")
    return {name: clusters.get(name, clusters.get(None)) for name in names}


def check_cluster_args(model, data, clusters, preserve_sparsity):
    """Raise RecipeError for a recipe that cannot work, before any training."""
    require_graph_model(model, "clustering")
    low = 3 if preserve_sparsity else 2
    if isinstance(clusters, dict):
        for name, k in clusters.items():
            if k is not None or name is None:
                _check_k(k, low, f"clusters[{name!r}]")
        clusters_by_layer(model, clusters)
    else:
        _check_k(clusters, low, "clusters")
    if data is None or getattr(data, "y", None) is None:
        raise RecipeError("clustering fine-tunes the model and needs labels or a teacher's soft "
                          "targets: pass FinetuneData(x, y) or FinetuneData(x, teacher_logits(...))")


def _clusterable_weights(layer):
    """Names of the weights TFMOT clusters in ``layer``; None when TFMOT cannot wrap it."""
    registry = _registry()
    if not registry.supports(layer):
        return None
    try:
        return list(registry._weight_names(layer))
    except KeyError:  # RNN / attention layers: TFMOT has dedicated wrappers for them
        return ["*"]


def _plan(model, by_layer, per_channel):
    """The layer names to cluster, and {layer name: reason} for layers with weights left alone."""
    skipped, clustered = {}, []
    for layer in model.layers:
        clusters = by_layer.get(layer.name)
        if isinstance(layer, keras.layers.InputLayer) or not layer.trainable_weights:
            continue
        if isinstance(layer, keras.Model):
            skipped[layer.name] = "nested model: cluster its layers in a flattened model"
            continue
        row = support_for(layer)
        if row is not None and not row.clusterable:  # left alone, with the table's reason
            if row.cluster_why not in UNREPORTED:
                skipped[layer.name] = row.cluster_why
            continue
        names = _clusterable_weights(layer)
        if names is None:
            skipped[layer.name] = f"TFMOT cannot cluster {type(layer).__name__} layers"
            continue
        if not names:
            continue  # nothing TFMOT clusters by design
        if clusters is None:
            skipped[layer.name] = "not asked for (clusters gives it no K)"
            continue
        if isinstance(layer, keras.layers.Conv2D):
            size = int(np.prod(layer.kernel.shape))
            per = size // int(layer.kernel.shape[-1]) if per_channel else size
            if per <= clusters:
                skipped[layer.name] = (f"only {per} weights {'per channel ' if per_channel else ''}"
                                       f"for {clusters} clusters")
                continue
        clustered.append(layer.name)
    return clustered, skipped


def cluster(model, data, *, clusters, epochs, batch_size=32, learning_rate=1e-4, seed=0,
            per_channel=True, preserve_sparsity=False, loss=None, progress=False,
            centroid_init=None, freeze_batch_norm=True):
    """Cluster ``model``'s weights into ``clusters`` values and fine-tune on ``data``.

    ``clusters``: K for every layer, or ``{layer name: K}`` with the key None
    for the layers not named (a layer mapped to None stays unclustered).
    Returns ``(stripped_model, info)``: a plain Keras model (no TFMOT wrappers)
    whose clustered kernels hold at most ``clusters`` distinct values per output
    channel (``per_channel``, Conv2D) or per tensor (other layers), and info with
    the clustered layers, the unclustered ones and why, the measured unique
    counts and the training history. ``preserve_sparsity`` keeps zero weights at
    zero (for a pruned model). ``loss`` passes to ``finetune`` (e.g. a
    distillation ``SoftTargetLoss``). The input model is not changed.
    ``centroid_init``: "kmeans_plus_plus" (default; TFMOT seeds it itself) or
    "linear" (default with ``preserve_sparsity``: k-means++ samples centroids per
    sign interval and fails on a channel with fewer non-zero weights of one sign
    than it asks for).
    ``freeze_batch_norm`` runs BatchNormalization layers in inference mode with
    fixed statistics while fine-tuning: a small or out-of-distribution fine-tuning
    set would otherwise replace the moving statistics the model was trained with.
    """
    if centroid_init is None:
        centroid_init = "linear" if preserve_sparsity else "kmeans_plus_plus"
    check_cluster_args(model, data, clusters, preserve_sparsity)
    if centroid_init not in CENTROID_INITS:
        raise RecipeError(f"unknown centroid_init {centroid_init!r}; choose one of "
                          f"{', '.join(CENTROID_INITS)}")
    by_layer = {name: (None if k is None else int(k))
                for name, k in clusters_by_layer(model, clusters).items()}
    clustered_names, skipped = _plan(model, by_layer, per_channel)
    if not clustered_names:
        raise RecipeError(f"model {model.name!r} has no layer TFMOT can cluster into {clusters} "
                          f"values; unclustered: {skipped}")
    keras.utils.set_random_seed(seed)
    # A private copy: TFMOT wraps the layers it is given and training would move the caller's weights.
    private = keras.models.clone_model(model)
    private.set_weights(model.get_weights())
    if freeze_batch_norm:
        for layer in private.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False

    def wrap(layer):
        if layer.name not in clustered_names:
            return layer
        return tfmot.clustering.keras.cluster_weights(
            layer, number_of_clusters=by_layer[layer.name],
            cluster_centroids_init=CENTROID_INITS[centroid_init],
            preserve_sparsity=preserve_sparsity, cluster_per_channel=per_channel)

    wrapped = keras.models.clone_model(private, clone_function=wrap)
    held = _wrapped_names(wrapped)
    for name in [n for n in clustered_names if n not in held]:  # TFMOT may still leave one out
        clustered_names.remove(name)
        skipped[name] = "TFMOT left it unwrapped (too few weights to cluster)"
    history = finetune(wrapped, data, epochs=epochs, batch_size=batch_size,
                       learning_rate=learning_rate, seed=seed,
                       # TFMOT's wrapper hides the final softmax from finetune's own check
                       loss=loss or classification_loss(model), progress=progress,
                       desc="cluster")
    stripped = tfmot.clustering.keras.strip_clustering(wrapped)
    for layer in stripped.layers:  # hand back the caller's trainable flags
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = model.get_layer(layer.name).trainable
    info = {
        "clusters": {name: by_layer[name] for name in clustered_names},
        "per_channel": bool(per_channel),
        "preserve_sparsity": bool(preserve_sparsity),
        "centroid_init": centroid_init,
        "clustered_layers": clustered_names,
        "unclustered_layers": skipped,
        "max_unique_per_channel": {name: _max_unique(stripped.get_layer(name), per_channel)
                                   for name in clustered_names},
        "history": history,
    }
    return stripped, info


def _max_unique(layer, per_channel):
    """Largest number of distinct kernel values in one output channel (or the whole kernel)."""
    name = (_clusterable_weights(layer) or ["kernel"])[0]
    kernel = np.asarray(getattr(layer, name if name != "*" else "kernel"))
    if per_channel and isinstance(layer, keras.layers.Conv2D):
        rows = kernel.reshape(-1, kernel.shape[-1]).T
        return int(max(len(np.unique(r)) for r in rows))
    return int(len(np.unique(kernel)))
