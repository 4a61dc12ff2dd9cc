"""Encoders from classical data to Cirq circuits."""
from edgezoo.quantum.encoders.angle import AngleEncoder
from edgezoo.quantum.encoders.base import Encoder, as_qubits
from edgezoo.quantum.encoders.basis import BasisEncoder
from edgezoo.quantum.encoders.iqp import IQPEncoder
from edgezoo.quantum.encoders.reupload import ReUploadingEncoder

__all__ = ["Encoder", "BasisEncoder", "AngleEncoder", "IQPEncoder", "ReUploadingEncoder", "as_qubits"]
