"""Runtimes behind one interface (``Runner.run``): LiteRT and TFLite Micro."""
