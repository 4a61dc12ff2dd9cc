"""``python -m edgezoo.cli``: the same as the ``edgezoo`` command."""
import sys

from edgezoo.cli.main import main

sys.exit(main())
