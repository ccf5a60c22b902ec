"""The ``sfocus-*`` commands, one module each (``sfocus_tf.cli.<command>``), and
what they share: absl flags in, ``--help`` that lists them, ``--version``,
one-line errors out. ``python -m sfocus_tf <command>`` runs any of them."""

from __future__ import annotations

import sys
from typing import Callable

import tensorflow as tf
from absl import app, flags

import sfocus_tf
from sfocus_tf.common.quiet_start import filtered_stderr
from sfocus_tf.modeling.input_checks import failed_check

_HELP = {"-?", "-h", "-help", "--help", "--helpshort", "--helpfull", "--helpxml"}
# Command name (module sfocus_tf.cli.<name>, console script sfocus-<name>) -> what it
# does: the first line of its module's docstring (tests/test_cli.py keeps them equal).
COMMANDS = {
    "train": "train SFOCUS (or the baseline) on a dataset.",
    "eval": "accuracy and attention quality of a trained run.",
    "export": "a trained run as a versioned SavedModel for TensorFlow Serving.",
    "tune": "Keras Tuner search over the SFOCUS loss weights, sigma, theta and lr.",
    "reproduce": "SFOCUS readings against the baseline, identical recipes, K seeds each.",
}


def usage() -> str:
    """What ``python -m sfocus_tf --help`` prints: the commands, one line each."""
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m sfocus_tf <command> [flags]", "",
             "commands (`python -m sfocus_tf <command> --help` lists a command's flags):"]
    lines += [f"  {name:<{width}}  {description}" for name, description in COMMANDS.items()]
    lines += ["", "  --version  print the version"]
    return "\n".join(lines)


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


def entry_point(prog: str, body: Callable[[], str | None], doc: str | None = None,
                required=()) -> Callable[[], None]:
    """A console-script function running ``body`` under absl; ``body`` returns the
    line to print on success. ``required`` names flags that must be set; ``doc``
    (the command module's docstring) heads ``--help``."""
    if "version" not in flags.FLAGS:  # a command may reuse another's flags (tune: train's)
        flags.DEFINE_bool("version", False, "Print the version and exit.")

    def main(argv):
        if flags.FLAGS.version:
            print(f"{prog} {sfocus_tf.__version__}")
            return
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

    def parse(argv):
        try:
            return flags.FLAGS(argv)
        except flags.Error as error:  # e.g. --dataset=nope: names the valid values
            sys.exit(f"{prog}: error: {error}")
        except SystemExit:
            if _HELP.intersection(argv[1:]):
                sys.exit(0)  # absl exits 1 after printing the help that was asked for
            raise

    def run():
        _show_in_help(doc)
        with filtered_stderr():  # without a GPU, the first look for one logs an error
            tf.config.list_physical_devices("GPU")
        app.run(main, flags_parser=parse)

    return run


def _show_in_help(doc: str | None) -> None:
    """``--help`` lists absl's "key flags" of the main module (``sys.argv[0]``); under
    a console script or ``python -m sfocus_tf`` that module defines none, so every
    flag of this package is made one, and the command's docstring heads the text."""
    main = sys.modules["__main__"]
    main.__doc__ = doc
    for module, defined in flags.FLAGS.flags_by_module_dict().items():
        if module.startswith("sfocus_tf") or module == sys.argv[0]:
            for flag in defined:
                flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
