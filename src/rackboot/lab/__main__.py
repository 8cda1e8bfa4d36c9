"""Entry point for ``python -m rackboot.lab``."""

import sys

from .cli import main

sys.exit(main())
