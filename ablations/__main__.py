"""``python -m ablations`` = ``nox -s ablate``: see :mod:`ablations.run`."""

import sys

from .run import main

sys.exit(main())
