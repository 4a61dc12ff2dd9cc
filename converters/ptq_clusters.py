"""Post-training clustering: each output channel's int8 weights restricted to K shared values,
chosen on calibration inputs instead of by fine-tuning.

TFMOT's clustering fine-tunes the centroids with the task's loss; a model without labels or
training data (a user's checkpoint, the MLPerf Tiny files) can only distil, and on held-out data
that costs agreement. Here each channel's K values come from a k-means of its weights in which
every weight counts by the mean square of the input it multiplies (the diagonal of the layer's
output-error Hessian, Choi et al. 2017, "Towards the limit of network quantization"): the layer's
output error on calibration inputs, not the weights' own error, is what the centroids minimise.
The centroids then lie on the channel's int8 grid (scale = the largest centroid's magnitude / 127),
so the converter's own quantization reproduces them and LUT compression stores K values per channel.
Bias correction (``converters.ptq_weights``) then removes the mean output shift the shared
values cause.
"""
import numpy as np
import tf_keras as keras

KMEANS_INITS = 4  # k-means restarts per channel (scikit-learn's n_init)


def input_energy(layer, x):
    """Mean square of the input each kernel weight multiplies, shaped like the kernel without
    its output axis: (kh, kw, cin) for a convolution (each input channel's mean square; padding
    and position ignored), (cin,) for a Dense layer. Depthwise kernels weigh each channel alone,
    so every weight of a channel counts the same: None."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return None
    energy = np.mean(np.square(x.astype(np.float64)).reshape(-1, x.shape[-1]), axis=0)
    kernel = layer.kernel.shape
    if isinstance(layer, keras.layers.Conv2D):
        return np.broadcast_to(energy, tuple(kernel[:-1])).copy()
    return energy


def weighted_kmeans(values, weights, k, seed):
    """The ``k`` centroids (sorted) and the assignment of 1-D ``values`` under ``weights``."""
    from sklearn.cluster import KMeans

    distinct = np.unique(values)
    if len(distinct) <= k:
        return distinct, np.searchsorted(distinct, values)
    fit = KMeans(n_clusters=k, n_init=KMEANS_INITS, random_state=seed).fit(
        values.reshape(-1, 1), sample_weight=np.maximum(weights, 1e-12))
    order = np.argsort(fit.cluster_centers_[:, 0])
    rank = np.empty(k, int)
    rank[order] = np.arange(k)
    return fit.cluster_centers_[order, 0], rank[fit.labels_]


def cluster_kernel(kernel, energy, k, seed=0):
    """``kernel`` with each output channel (last axis; a depthwise kernel's channel x multiplier)
    holding at most ``k`` values, each on that channel's symmetric int8 grid."""
    w = np.asarray(kernel, np.float64)
    rows = w.reshape(-1, w.shape[-1]) if w.ndim != 4 or energy is not None else \
        w.reshape(-1, w.shape[2] * w.shape[3])
    weights = np.ones(rows.shape[0]) if energy is None else np.asarray(energy).reshape(-1)
    out = np.zeros_like(rows)
    for c in range(rows.shape[1]):
        # zeros (pruned weights) stay zero: one of the k values, the rest fitted to the others
        live = rows[:, c] != 0
        if not live.any():
            continue
        centroids, labels = weighted_kmeans(rows[live, c], weights[live], k - (not live.all()),
                                            seed + c)
        scale = max(np.abs(centroids).max(), 1e-30) / 127.0
        out[live, c] = (np.clip(np.round(centroids / scale), -127, 127) * scale)[labels]
    return out.reshape(w.shape).astype(np.float32)

