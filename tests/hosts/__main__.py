"""Entry point for ``python -m tests.hosts``."""

import sys

from .cli import main

sys.exit(main())
