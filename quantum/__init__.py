"""edgezoo.quantum: hybrid quantum-classical classifiers on TensorFlow Quantum (install ``edgezoo[quantum]``).

Not built yet: the classifiers, encoders and export bundle come with the quantum issue.
"""
