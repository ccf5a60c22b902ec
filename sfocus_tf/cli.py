"""What every ``sfocus-*`` command shares: absl flags in, one-line errors out."""

from __future__ import annotations

import sys
from typing import Callable

import tensorflow as tf
from absl import app, flags

from sfocus_tf.validation import failed_check


class CommandError(Exception):
    """The command ran but did not succeed (e.g. failed tuner trials)."""


# Bad input (unknown names, missing files, out-of-range values) ends in one line
# on stderr and exit status 1, not a traceback; so does an OSError from the
# operating system (no space left, permission denied), with the path it concerns.
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, CommandError)


def error_line(error: Exception) -> str:
    """The one line for ``error``; an OSError (a full disk, a folder that cannot be
    written, a file system that does not exist) as ``path: reason``."""
    if isinstance(error, OSError) and error.strerror:
        reason = " ".join(str(error.strerror).split())
        return f"{error.filename}: {reason}" if error.filename else reason
    return str(error)


def entry_point(prog: str, body: Callable[[], str | None], required=()) -> Callable[[], None]:
    """A console-script function running ``body`` under absl; ``body`` returns the
    line to print on success. ``required`` names flags that must be set."""
    def main(argv):
        if len(argv) > 1:
            sys.exit(f"{prog}: error: unexpected arguments {argv[1:]}")
        missing = [f"--{name}" for name in required if not flags.FLAGS[name].value]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            sys.exit(f"{prog}: error: {' and '.join(missing)} {verb} required")
        try:
            message = body()
        except (*USER_ERRORS, OSError) as error:
            if not isinstance(error, USER_ERRORS) and error.errno is None:
                raise  # an OSError not from the operating system: a bug, keep its traceback
            sys.exit(f"{prog}: error: {error_line(error)}")
        except tf.errors.InvalidArgumentError as error:  # e.g. labels out of range
            if failed_check(error) is None:
                raise
            sys.exit(f"{prog}: error: {failed_check(error)}")
        if message:
            print(message)

    return lambda: app.run(main)
