"""User errors and how commands report them.

The rule of every command of the suite (``hinet.train``, ``nox -s ablate``, ``hinet.tune``,
``benchmarks.*``, ``hinet.data.prepare``, ``hinet.report``): a mistake of the user (a name, a value,
a path, a file's content) ends the command with exit code :data:`USAGE` (2) and **one line** on stderr
that names the file or the field, says what was found and what was expected. A traceback is printed only
for bugs of the suite, or for any error when ``--debug`` is given or ``HINET_DEBUG=1`` is set.

Library code raises :class:`UserError` (or one of the standard exceptions listed in
:data:`USER_ERRORS`, which the data, config and checkpoint modules raise with such messages); command
entry points wrap their body in :func:`run_command`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from collections.abc import Callable

USAGE = 2  # exit code of every user error (argparse uses the same)
INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT


class UserError(ValueError):
    """A mistake in the input of a command: the message names the file or field; no traceback is shown.

    A ValueError, so that library callers that catch bad values catch these too."""


# Raised by the library with messages written for the user (file or field named). Anything else is a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, FileNotFoundError, PermissionError,
                                                 IsADirectoryError, NotADirectoryError, FileExistsError)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line too: ``<prog>: error: <message>`` and exit
    code 2, without the usage block (``--help`` prints it). Sub-command parsers inherit the class."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(USAGE, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def debug_requested(argv: list[str] | None = None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get("HINET_DEBUG", "") not in ("", "0")


def one_line(err: BaseException) -> str:
    """The message of ``err`` as one line. An exception re-raised from a DataLoader worker carries the
    worker's traceback in its message: only the original message (from the last line that starts with the
    exception's name, plain or module-qualified as the traceback prints it) is kept."""
    text = str(err).strip()
    if "Original Traceback" in text:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        head = re.compile(rf"^(?:[\w.]+\.)?{re.escape(type(err).__name__)}: ?")
        starts = [i for i, ln in enumerate(lines) if head.match(ln)]
        if starts:
            lines = lines[starts[-1]:]
            lines[0] = head.sub("", lines[0], count=1)
        else:
            lines = lines[-1:]
        text = "\n".join(lines)
    if isinstance(err, KeyError) and text.startswith(("'", '"')):
        text = text[1:-1]
    text = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return text or type(err).__name__


def clear_progress_bars() -> None:
    """Close every tqdm bar still open (a command stopped mid-loop), erasing it from the terminal, so that
    the error line is the only thing left on screen. Does nothing when tqdm was never imported."""
    module = sys.modules.get("tqdm")  # no import: a command that never loaded tqdm has no bar to close
    if module is None:
        return
    for bar in list(getattr(module.tqdm, "_instances", ())):
        bar.leave = False
        bar.close()


def run_command(prog: str, body: Callable[[], int | None], argv: list[str] | None = None) -> int:
    """Run a command's ``body``; user errors become ``<prog>: error: <one line>`` and exit code 2.

    Returns the exit code (``body``'s return value, 0 for None). Ctrl-C returns :data:`INTERRUPTED`
    after one line. With ``--debug``/``HINET_DEBUG=1`` the traceback of a user error is printed too.
    """
    try:
        code = body()
    except KeyboardInterrupt:
        clear_progress_bars()
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except SystemExit:
        raise
    except USER_ERRORS as err:
        clear_progress_bars()
        if debug_requested(argv):
            traceback.print_exc()
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr)
        return USAGE
    return 0 if code is None else int(code)
