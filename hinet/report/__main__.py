"""``python -m hinet.report``: see :mod:`hinet.report`. User errors end in one line and exit code 2."""

import sys

from hinet.report import command

if __name__ == "__main__":
    sys.exit(command(sys.argv[1:]))
