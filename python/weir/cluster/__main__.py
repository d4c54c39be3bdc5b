"""``python -m weir.cluster``: see :mod:`weir.cluster.cli`."""

import sys

from .cli import main

sys.exit(main())
