"""Weights rounded and biases corrected for int8 before the converter quantizes them.

The converter rounds every weight to the nearest step of its channel's symmetric int8 grid
(scale = max |w| / 127). Two post-training options change what it is given, as Keras weight
surgery, so the converter's own quantization reproduces them exactly:

- **adaptive rounding** (AdaRound, Nagel et al. 2020): each weight rounds up or down as a
  per-layer optimisation chooses, to reproduce the layer's float output on calibration inputs;
  the kernel is then set to the chosen grid points (each channel's largest weight kept, so the
  converter derives the same scale);
- **bias correction** (Nagel et al. 2019, empirical): the mean output shift that the rounded
  weights cause on calibration inputs is subtracted from the layer's bias.

A batch norm after a convolution is folded into it by the converter, so its scale is folded into
the kernel here first (the batch norm keeps only its shift): the kernel rounded here is the one
the converter quantizes. Each layer's inputs are those of the float model.
"""
import numpy as np
import tensorflow as tf
import tf_keras as keras

ADAROUND_ITERATIONS = 400
ADAROUND_BATCH = 32
ADAROUND_LR = 1e-2
ADAROUND_WEIGHT = 0.01  # the rounding regulariser's weight (the paper's lambda)
ADAROUND_WARMUP = 0.2  # share of iterations before the regulariser starts
ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch


def kernel_layers(model):
    """The layers whose kernels are rounded: Conv2D, DepthwiseConv2D and Dense (PointwiseDense
    included), channels last, at the model's top level."""
    found = []
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2DTranspose, keras.layers.SeparableConv2D)):
            continue
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            if layer.data_format == "channels_last" and getattr(layer, "groups", 1) == 1:
                found.append(layer)
        elif isinstance(layer, keras.layers.Dense):
            found.append(layer)
    return found


def _kernel(layer):
    return layer.depthwise_kernel if isinstance(layer, keras.layers.DepthwiseConv2D) else layer.kernel


def _per_tensor(layer, per_tensor_dense):
    from edgezoo.zoo.layers import PointwiseDense

    return per_tensor_dense and type(layer) is not PointwiseDense and \
        isinstance(layer, keras.layers.Dense)


def int8_scale(kernel, per_tensor):
    """The converter's symmetric int8 scale of ``kernel``, broadcastable to it: per output channel
    (the last axis; a depthwise kernel's input channel x multiplier) or one for the tensor."""
    k = np.asarray(kernel, np.float64)
    if per_tensor:
        return np.full([1] * k.ndim, max(np.abs(k).max(), 1e-30) / 127.0)
    axes = tuple(range(k.ndim - 1))
    return np.maximum(np.abs(k).max(axis=axes, keepdims=True), 1e-30) / 127.0


def _channels_last(kernel):
    """A depthwise kernel (kh, kw, cin, m) as (kh, kw, cin * m): TFLite's channel order."""
    k = np.asarray(kernel)
    return k.reshape(*k.shape[:2], -1) if k.ndim == 4 else k


def grid_scale(layer, per_tensor_dense):
    """The int8 scale of ``layer``'s kernel, broadcastable to the kernel as Keras holds it."""
    kernel = _kernel(layer).numpy()
    scale = int8_scale(_channels_last(kernel) if isinstance(layer, keras.layers.DepthwiseConv2D)
                       else kernel, _per_tensor(layer, per_tensor_dense))
    return scale.reshape(*scale.shape[:2], kernel.shape[2], kernel.shape[3]) \
        if isinstance(layer, keras.layers.DepthwiseConv2D) and scale.size > 1 else scale


def linear(layer, x, kernel):
    """``layer``'s linear map of ``x`` with ``kernel`` (no bias, no activation)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return tf.nn.depthwise_conv2d(x, kernel, strides=(1, *layer.strides, 1),
                                      padding=layer.padding.upper(), dilations=layer.dilation_rate)
    if isinstance(layer, keras.layers.Conv2D):
        return layer.convolution_op(x, kernel)
    return tf.tensordot(x, kernel, [[len(x.shape) - 1], [0]])


def fold_batch_norms(model):
    """A copy of ``model`` in which each batch norm that directly and only follows a linear
    Conv2D/DepthwiseConv2D/Dense has its scale folded into that kernel (and the layer's bias
    into its shift): the same function. Returns (model, {layer name: batch norm name})."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    folded = {}
    for layer in kernel_layers(copy):
        nodes = layer._outbound_nodes
        if len(layer._inbound_nodes) != 1 or len(nodes) != 1:
            continue
        bn = nodes[0].outbound_layer
        if (not isinstance(bn, keras.layers.BatchNormalization) or len(bn._inbound_nodes) != 1
                or not bn.center or layer.activation not in (None, keras.activations.linear)
                or bn.axis not in ([-1], [len(bn.input_shape) - 1])):
            continue
        gamma = bn.gamma.numpy() if bn.scale else np.ones(bn.moving_mean.shape, np.float32)
        factor = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
        kernel = _kernel(layer)
        k = kernel.numpy()
        kernel.assign((k * factor.reshape(k.shape[2], k.shape[3])) if k.ndim == 4 and
                      isinstance(layer, keras.layers.DepthwiseConv2D) else k * factor)
        bias = layer.bias.numpy() if layer.use_bias else 0.0
        if layer.use_bias:
            layer.bias.assign(np.zeros_like(bias))
        bn.beta.assign((bias - bn.moving_mean.numpy()) * factor + bn.beta.numpy())
        bn.moving_mean.assign(np.zeros_like(factor))
        # var + eps == 1 in float32, so the batch norm multiplies by exactly 1
        bn.moving_variance.assign(np.full_like(factor, np.float32(1.0) - np.float32(bn.epsilon)))
        if bn.scale:
            bn.gamma.assign(np.ones_like(factor))
        folded[layer.name] = bn.name
    return copy, folded


def layer_inputs(model, layers, calibration, limit):
    """{layer name: float32 inputs of that layer} on the first ``limit`` calibration samples."""
    from edgezoo.converters.quantize import representative_arrays

    arrays = representative_arrays(model, calibration, limit)
    probe = keras.Model(model.inputs, [l.input for l in layers])
    outs = probe.predict(arrays if len(arrays) > 1 else arrays[0], batch_size=64, verbose=0)
    outs = outs if isinstance(outs, list) else [outs]
    return {l.name: np.asarray(o, np.float32) for l, o in zip(layers, outs)}


def nearest(kernel, scale):
    """The converter's rounding: integer steps of the nearest grid point, clipped to +-127."""
    return np.clip(np.round(kernel / scale), -127, 127)


def _soft(v):
    return tf.clip_by_value(tf.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def adaround(layer, x, scale, iterations=ADAROUND_ITERATIONS, seed=0):
    """Integer steps of ``layer``'s kernel chosen to reproduce its float output on ``x``."""
    w = _kernel(layer).numpy().astype(np.float32)
    s = scale.astype(np.float32)
    floor = np.floor(w / s)
    rest = np.clip(w / s - floor, 1e-4, 1 - 1e-4)
    v = tf.Variable(-np.log((ZETA - GAMMA) / (rest - GAMMA) - 1).astype(np.float32))
    optimizer = tf.keras.optimizers.Adam(ADAROUND_LR)
    rng = np.random.default_rng(seed)
    w_t, s_t, floor_t = tf.constant(w), tf.constant(s), tf.constant(floor)
    warmup = int(ADAROUND_WARMUP * iterations)

    @tf.function
    def train_step(batch, beta, regularise):
        with tf.GradientTape() as tape:
            h = _soft(v)
            w_q = s_t * tf.clip_by_value(floor_t + h, -127.0, 127.0)
            diff = linear(layer, batch, w_q) - linear(layer, batch, w_t)
            loss = tf.reduce_mean(tf.reduce_sum(tf.square(diff), axis=-1))
            loss += regularise * ADAROUND_WEIGHT * tf.reduce_sum(1.0 - tf.abs(2.0 * h - 1.0) ** beta)
        optimizer.apply_gradients([(tape.gradient(loss, v), v)])

    for step in range(iterations):
        batch = x[rng.choice(len(x), min(ADAROUND_BATCH, len(x)), replace=False)]
        # the regulariser's exponent anneals from 20 (lets weights move) to 2 (pushes to 0 or 1)
        beta = 20.0 - (20.0 - 2.0) * max(step - warmup, 0) / max(iterations - warmup, 1)
        train_step(tf.constant(batch), tf.constant(beta, tf.float32),
                   tf.constant(float(step >= warmup), tf.float32))
    steps = np.clip(floor + (_soft(v).numpy() >= 0.5), -127, 127)
    # each channel's largest weight keeps its exact step, so the converter finds the same scale;
    # zero (pruned) weights stay zero
    exact = nearest(w, s)
    pinned = np.isclose(np.abs(exact), 127) | (w == 0)
    return np.where(pinned, exact, steps)


def output_mse(layer, x, kernel):
    """Mean squared difference of ``layer``'s linear output with ``kernel`` and with its own."""
    w = _kernel(layer).numpy()
    return float(tf.reduce_mean(tf.square(linear(layer, x, kernel.astype(np.float32))
                                          - linear(layer, x, w))))


def round_weights(model, calibration, *, adaptive=False, bias_correction=False, clusters=None,
                  cluster_fit="calibration", gptq_damping=0.01, per_tensor_dense=False, limit=300,
                  seed=0, progress=None):
    """(Model, report): a copy of ``model`` whose kernels lie on the converter's int8 grid
    (adaptively rounded, or nearest, or, for the layers ``clusters`` names ({layer or None for
    every other layer: K}), K shared values per channel fitted by ``converters.ptq_clusters``,
    or with GPTQ's error compensation by ``converters.ptq_gptq`` when ``cluster_fit`` is gptq)
    with biases corrected for the rounding when asked, all on the first ``limit`` calibration
    samples (those the converter calibrates on)."""
    from edgezoo.converters.ptq_clusters import cluster_kernel, input_energy
    from edgezoo.converters.ptq_gptq import gptq_cluster_kernel

    clusters = clusters or {}
    model, folded = fold_batch_norms(model)
    layers = kernel_layers(model)
    inputs = layer_inputs(model, layers, calibration, limit)
    report = {"adaround": adaptive, "bias_correction": bias_correction,
              "folded_batch_norms": len(folded), "layers": {}}
    for k, layer in enumerate(layers):
        if progress:
            progress(k, len(layers), layer.name)
        x = inputs[layer.name]
        kernel = _kernel(layer)
        w = kernel.numpy()
        scale = grid_scale(layer, per_tensor_dense)
        count = clusters.get(layer.name, clusters.get(None))
        if count is not None and cluster_fit == "gptq":
            rounded = gptq_cluster_kernel(layer, w, x, count, seed=seed + 1000 * k,
                                          damping=gptq_damping)
        elif count is not None:
            rounded = cluster_kernel(w, input_energy(layer, x), count, seed=seed + 1000 * k)
        else:
            steps = adaround(layer, x, scale, seed=seed + k) if adaptive else nearest(w, scale)
            rounded = (steps * scale).astype(np.float32)
        row = {"output_mse_nearest": output_mse(layer, x, (nearest(w, scale) * scale))}
        if count is not None:
            row["clusters"] = int(count)
            row["output_mse_clustered"] = output_mse(layer, x, rounded)
        if adaptive:
            row["output_mse_adaround"] = output_mse(layer, x, rounded)
            row["steps_changed"] = int(np.sum(steps != nearest(w, scale)))
        if bias_correction:
            shift = np.asarray(linear(layer, x, rounded) - linear(layer, x, w), np.float64)
            shift = shift.reshape(-1, shift.shape[-1]).mean(axis=0)
            target = (layer.bias if layer.use_bias and layer.name not in folded
                      else model.get_layer(folded[layer.name]).beta if layer.name in folded
                      else None)
            if target is None:
                row["bias_correction"] = "skipped: the layer has no bias and no batch norm after it"
            else:
                target.assign(target.numpy() - shift.astype(np.float32))
                row["max_bias_shift"] = float(np.abs(shift).max())
        if adaptive or count is not None:
            kernel.assign(rounded)
        report["layers"][layer.name] = row
    return model, report
