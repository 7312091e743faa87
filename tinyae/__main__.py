"""``python -m tinyae`` runs the ``tinyae`` command."""

import sys

from .app.cli import main

sys.exit(main())
