"""Wall-clock latency on this machine: median of repeated batch-1 calls after warm-up."""
import time

import numpy as np


def median_ms(fn, runs=50, warmup=5):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def litert_latency_ms(runner, sample, runs=100):
    """Median invoke time of a LiteRT runner on one quantized sample."""
    sample = runner.prepare_batch(sample).sample(0)  # batch 1, one array per input
    return median_ms(lambda: runner.invoke_all(sample), runs=runs)


def keras_latency_ms(model, sample, runs=50):
    """Median time of a compiled batch-1 call of a Keras model."""
    import tensorflow as tf

    from edgezoo.zoo.data.arrays import input_list

    fn = tf.function(lambda x: model(x, training=False))
    xs = [tf.constant(a[:1]) for a in input_list(sample)]
    x = xs[0] if len(xs) == 1 else xs
    def call():  # every output brought back (a detector returns several)
        for out in tf.nest.flatten(fn(x)):
            out.numpy()

    return median_ms(call, runs=runs)
