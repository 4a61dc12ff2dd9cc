"""Errors edgezoo raises for bad input; the CLI turns them into one line and exit code 2."""


class EdgezooError(Exception):
    """Base of every error that names what is wrong and what to do."""


class UnknownModelError(EdgezooError, KeyError):
    """A model name that is not in the registry."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0])


class InputShapeError(EdgezooError, ValueError):
    """An input shape the architecture cannot take."""


class ModelFileError(EdgezooError, ValueError):
    """A file that is not a usable model (not TFLite, truncated, corrupted, wrong format)."""


class UnsafeModelError(ModelFileError):
    """A model file that would run its own code, or touch files or the system, when loaded or
    run (a Lambda layer, an unknown module to import, a file-writing graph op, a Flex op)."""


class UnsupportedOpsError(EdgezooError):
    """A model whose operators or tensor types the target runtime lacks.

    ``problems`` lists dicts with ``op``, ``types``, ``layer`` and ``reason``.
    """

    def __init__(self, message, problems=()):
        super().__init__(message)
        self.problems = list(problems)


class UnknownTargetError(EdgezooError, KeyError):
    """A device profile name that is not known."""

    def __str__(self):
        return str(self.args[0])


class UnsupportedQuantizationError(EdgezooError, ValueError):
    """A quantization mode the target cannot run."""


class DataError(EdgezooError, ValueError):
    """A data set name or file that cannot be used."""


class RuntimeFailure(EdgezooError, RuntimeError):
    """A runtime (LiteRT or TFLite Micro) failed, crashed or timed out on a model."""


class RecipeError(EdgezooError, ValueError):
    """A compression recipe that is malformed or contradicts itself, or a model it cannot apply to."""
