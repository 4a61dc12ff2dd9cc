"""MultiHeadSelfAttention and CrossAttention against NumPy references written from the maths.

Reference (Vaswani et al., 2017), per head h with width d_h:
    Q = X_q W_q + b_q,  K = X_kv W_k + b_k,  V = X_kv W_v + b_v
    head_h = softmax(Q_h K_h^T / sqrt(d_h)) V_h
    out = concat_h(head_h) W_o + b_o
Heads are contiguous slices of the projected channels (channel c belongs to head c // d_h).
A PointwiseDense projection is the same affine map computed as a 1x1 convolution; its kernel
is stored with the Dense (C_in, C_out) shape, so the reference is unchanged.
"""
import numpy as np
import pytest
import tf_keras as keras

from edgezoo.zoo.layers.attention import MultiHeadSelfAttention
from edgezoo.zoo.perceiver.layers.cross_attention import CrossAttention
from edgezoo.zoo.layers.pointwise_dense import PointwiseDense

TOL = 1e-5


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _attention_np(xq, xkv, w, num_heads, scale_power=-0.5):
    """Float64 reference; ``w``: {name: (kernel, bias)} for query/key/value/out."""
    xq, xkv = np.asarray(xq, np.float64), np.asarray(xkv, np.float64)
    proj = {name: (np.asarray(k, np.float64), np.asarray(b, np.float64)) for name, (k, b) in w.items()}
    q = xq @ proj["query"][0] + proj["query"][1]
    k = xkv @ proj["key"][0] + proj["key"][1]
    v = xkv @ proj["value"][0] + proj["value"][1]
    dqk, dv = q.shape[-1] // num_heads, v.shape[-1] // num_heads
    heads = []
    for h in range(num_heads):
        qh = q[..., h * dqk:(h + 1) * dqk]
        kh = k[..., h * dqk:(h + 1) * dqk]
        vh = v[..., h * dv:(h + 1) * dv]
        logits = np.einsum("bid,bjd->bij", qh, kh) * float(dqk) ** scale_power
        heads.append(np.einsum("bij,bjd->bid", _softmax(logits), vh))
    context = np.concatenate(heads, axis=-1)
    return context @ proj["out"][0] + proj["out"][1]


def _set_random_weights(layer, rng):
    """Non-trivial kernels (large enough that softmax is far from uniform) and non-zero biases."""
    w = {}
    for name in ("query", "key", "value", "out"):
        proj = getattr(layer, name)
        fan_in, units = proj.kernel.shape
        kernel = rng.normal(0.0, 1.5 / np.sqrt(fan_in), (fan_in, units)).astype(np.float32)
        bias = rng.uniform(-0.5, 0.5, units).astype(np.float32)
        bias[np.abs(bias) < 0.05] = 0.3  # every bias entry clearly non-zero
        proj.kernel.assign(kernel)
        proj.bias.assign(bias)
        w[name] = (kernel, bias)
    return w


def _check_projection_type(layer, pointwise):
    for name in ("query", "key", "value", "out"):
        proj = getattr(layer, name)
        assert type(proj) is (PointwiseDense if pointwise else keras.layers.Dense)


def _assert_scale_matters(got, ref, xq, xkv, w, num_heads):
    """Self-check of the test's power: the d^-1 scaling would miss the tolerance by far."""
    wrong = _attention_np(xq, xkv, w, num_heads, scale_power=-1.0)
    assert np.abs(wrong - ref).max() > 100 * TOL
    assert np.abs(got - wrong).max() > 100 * TOL


@pytest.mark.parametrize("pointwise", [False, True])
@pytest.mark.parametrize("num_heads", [1, 2, 4])
def test_self_attention_matches_numpy_reference(num_heads, pointwise):
    rng = np.random.default_rng(10 * num_heads + pointwise)
    n, dim = 5, 16  # head widths 16, 8, 4: d^-1 and d^-1/2 differ
    inp = keras.Input((n, dim))
    layer = MultiHeadSelfAttention(num_heads, pointwise_projections=pointwise, name="mhsa")
    model = keras.Model(inp, layer(inp))
    _check_projection_type(layer, pointwise)
    w = _set_random_weights(layer, rng)
    x = rng.normal(0.0, 1.0, (3, n, dim)).astype(np.float32)

    got = model(x, training=False).numpy()
    ref = _attention_np(x, x, w, num_heads)
    assert got.shape == (3, n, dim) and got.dtype == np.float32
    assert np.abs(got - ref).max() <= TOL
    assert np.abs(ref).max() > 0.5  # not a trivially small output
    _assert_scale_matters(got, ref, x, x, w, num_heads)


@pytest.mark.parametrize("pointwise", [False, True])
@pytest.mark.parametrize("num_heads", [1, 2, 4])
def test_cross_attention_matches_numpy_reference(num_heads, pointwise):
    rng = np.random.default_rng(100 + 10 * num_heads + pointwise)
    nq, cq, nkv, ckv = 4, 6, 7, 10
    qk, v, out = 12, 8, 5  # all different; qk/v head widths 12,6,3 and 8,4,2
    q_in, kv_in = keras.Input((nq, cq)), keras.Input((nkv, ckv))
    layer = CrossAttention(num_heads, qk_channels=qk, v_channels=v, output_channels=out,
                           pointwise_projections=pointwise, name="xattn")
    model = keras.Model([q_in, kv_in], layer([q_in, kv_in]))
    _check_projection_type(layer, pointwise)
    assert [tuple(getattr(layer, p).kernel.shape) for p in ("query", "key", "value", "out")] == [
        (cq, qk), (ckv, qk), (ckv, v), (v, out)]
    w = _set_random_weights(layer, rng)
    xq = rng.normal(0.0, 1.0, (3, nq, cq)).astype(np.float32)
    xkv = rng.normal(0.0, 1.0, (3, nkv, ckv)).astype(np.float32)

    got = model([xq, xkv], training=False).numpy()
    ref = _attention_np(xq, xkv, w, num_heads)
    assert got.shape == (3, nq, out) and got.dtype == np.float32
    assert np.abs(got - ref).max() <= TOL
    assert np.abs(ref).max() > 0.5
    _assert_scale_matters(got, ref, xq, xkv, w, num_heads)
