"""All of edgezoo's command line (quantum's subcommands included): a thin layer over the Python API."""
from edgezoo.cli.main import main

__all__ = ["main"]
