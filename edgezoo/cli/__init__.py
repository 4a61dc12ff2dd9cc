"""All of edgezoo's command line (quantum's subcommands included): a thin layer over the Python API."""
from edgezoo.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
