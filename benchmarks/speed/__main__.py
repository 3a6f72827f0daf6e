"""``python -m benchmarks.speed`` (``nox -s bench``): see :mod:`benchmarks.speed.runner`.

A bad report or records path ends in one line and exit code 2 (``HINET_DEBUG=1`` shows the traceback;
``--debug`` would reach pytest).
"""

import sys

from benchmarks.speed.runner import command

if __name__ == "__main__":
    sys.exit(command())
