"""``python -m hinet.report``: see :mod:`hinet.report`. User errors end in one line and exit code 2."""

import sys

from hinet.errors import run_command
from hinet.report import main

if __name__ == "__main__":
    sys.exit(run_command("python -m hinet.report", lambda: main(sys.argv[1:])))
