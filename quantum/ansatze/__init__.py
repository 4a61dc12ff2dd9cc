"""Ansätze: parameterized model circuits with their observables."""
from edgezoo.quantum.ansatze.base import Ansatz
from edgezoo.quantum.ansatze.hardware_efficient import (hardware_efficient, hardware_efficient_block,
                                                        z_observables)
from edgezoo.quantum.ansatze.identity_blocks import identity_blocks, mirrored_inverse
from edgezoo.quantum.ansatze.qcnn import (conv_layer, pool_layer, qcnn, two_qubit_pool,
                                          two_qubit_unitary)
from edgezoo.quantum.ansatze.readout import readout_ansatz

__all__ = ["Ansatz", "readout_ansatz", "hardware_efficient", "hardware_efficient_block",
           "z_observables", "qcnn", "conv_layer", "pool_layer", "two_qubit_unitary",
           "two_qubit_pool", "identity_blocks", "mirrored_inverse"]
