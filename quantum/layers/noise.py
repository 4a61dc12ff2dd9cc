"""Noise for NoisyPQC: a Cirq channel after every moment of the model circuit."""
import cirq

from edgezoo.quantum.errors import QuantumConfigError

CHANNELS = {"depolarize": cirq.depolarize, "bit_flip": cirq.bit_flip, "phase_flip": cirq.phase_flip,
            "amplitude_damp": cirq.amplitude_damp, "phase_damp": cirq.phase_damp}


def noise_channel(noise):
    """A cirq channel from a float p (depolarize), 'name:p' (e.g. 'depolarize:0.01') or a channel."""
    if noise is None:
        return None
    if isinstance(noise, str):
        name, _, p = noise.partition(":")
        if name not in CHANNELS:
            raise QuantumConfigError(f"unknown noise channel {name!r}; choose one of {', '.join(CHANNELS)} "
                                     "(written as name:p, e.g. depolarize:0.01)")
        try:
            noise = CHANNELS[name](float(p))
        except ValueError as exc:
            raise QuantumConfigError(f"noise {noise!r} needs a probability in [0, 1] after the colon, "
                                     f"e.g. {name}:0.01 ({exc})") from None
    elif isinstance(noise, (int, float)):
        if not 0 <= noise <= 1:
            raise QuantumConfigError(f"noise probability must be in [0, 1], got {noise}")
        noise = cirq.depolarize(float(noise))
    if not isinstance(noise, cirq.Gate) or not cirq.has_kraus(noise) or cirq.num_qubits(noise) != 1:
        raise QuantumConfigError(f"noise must be a single-qubit Cirq channel (e.g. cirq.depolarize(0.01)), "
                                 f"got {noise!r}")
    return noise


def with_noise(circuit, noise):
    """``circuit`` with the channel on every qubit after every moment (unchanged for noise=None)."""
    channel = noise_channel(noise)
    return circuit if channel is None else circuit.with_noise(channel)
