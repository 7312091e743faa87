"""``python -m tinyae`` runs the ``tinyae`` command."""

import sys

from .cli import main

sys.exit(main())
