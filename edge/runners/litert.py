"""LiteRT (the maintained TensorFlow Lite runtime) with its default or reference kernels."""
import warnings

import numpy as np

from edgezoo.edge.runners.base import Runner

RESOLVERS = ("default", "builtin", "reference")


class LiteRTRunner(Runner):
    """``resolver='default'`` uses the optimized kernels with XNNPACK; ``'builtin'`` the
    optimized kernels without it; ``'reference'`` uses BUILTIN_REF, whose integer arithmetic
    TFLite Micro reproduces."""

    def __init__(self, model_bytes, model, resolver="default", num_threads=1):
        super().__init__(model_bytes, model)
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        if resolver not in RESOLVERS:
            raise ValueError(f"resolver must be one of {RESOLVERS}, got {resolver!r}")
        self.name = f"litert-{resolver}"
        kind = {"default": OpResolverType.AUTO, "reference": OpResolverType.BUILTIN_REF,
                "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}[resolver]
        with warnings.catch_warnings():  # preserving tensors is how we read pre-softmax logits
            warnings.simplefilter("ignore", UserWarning)
            self.interpreter = Interpreter(
                model_content=self.model_bytes, num_threads=num_threads,
                experimental_op_resolver_type=kind,
                experimental_preserve_all_tensors=self.readout is not None,
            )
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.readout if self.readout is not None else self.interpreter.get_output_details()[0]["index"]

    def invoke(self, sample):
        """One batch-1 inference on an already-quantized sample."""
        self.interpreter.set_tensor(self._input, sample)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output)

    def run_raw(self, x):
        return np.concatenate([self.invoke(x[i : i + 1]) for i in range(len(x))])
