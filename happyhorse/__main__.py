"""``python -m happyhorse``: the same command line as the ``happyhorse`` script."""

import sys

from happyhorse.cli import main

sys.exit(main())
