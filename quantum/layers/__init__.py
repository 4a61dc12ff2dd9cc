"""Serializable TensorFlow Quantum layers (importing this imports tensorflow_quantum)."""
from edgezoo.quantum.layers.controlled import ControlledPQC
from edgezoo.quantum.layers.initializers import AngleInitializer
from edgezoo.quantum.layers.noise import noise_channel, with_noise
from edgezoo.quantum.layers.pqc import PQC, NoisyPQC
from edgezoo.quantum.layers.reuploading import ReUploadingPQC
from edgezoo.quantum.layers.serialization import DIFFERENTIATORS, make_differentiator

QUANTUM_LAYERS = (PQC, NoisyPQC, ControlledPQC, ReUploadingPQC)

__all__ = ["PQC", "NoisyPQC", "ControlledPQC", "ReUploadingPQC", "AngleInitializer", "QUANTUM_LAYERS",
           "DIFFERENTIATORS", "make_differentiator", "noise_channel", "with_noise"]
