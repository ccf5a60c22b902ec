"""``python -m sfocus_tf <command> [flags]``: runs ``sfocus-<command>``
(train, eval, export, tune, reproduce); ``--version`` prints the version."""

import importlib
import sys

import sfocus_tf
from sfocus_tf.cli import COMMANDS


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        print(f"sfocus_tf {sfocus_tf.__version__}")
        return
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        given = f"unknown command {sys.argv[1]!r}" if len(sys.argv) > 1 else "no command"
        sys.exit(f"usage: python -m sfocus_tf {{{','.join(COMMANDS)}}} [flags] "
                 f"(--help after the command lists its flags): {given}")
    command = sys.argv.pop(1)
    sys.argv[0] = f"sfocus-{command}"
    importlib.import_module(f"sfocus_tf.cli.{command}").run()


if __name__ == "__main__":
    main()
