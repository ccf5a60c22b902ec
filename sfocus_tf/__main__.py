"""``python -m sfocus_tf <command> [flags]``: runs ``sfocus-<command>``
(train, eval, export, tune, reproduce); ``--help`` lists them, ``--version`` prints
the version."""

import importlib
import sys

import sfocus_tf
from sfocus_tf.cli import COMMANDS, usage

HELP = ("-h", "-help", "--help", "--helpshort", "--helpfull")


def main() -> None:
    arguments = sys.argv[1:]
    if arguments == ["--version"]:
        print(f"sfocus_tf {sfocus_tf.__version__}")
        return
    if arguments and arguments[0] in HELP:
        print(usage())
        return
    if not arguments or arguments[0] not in COMMANDS:
        problem = f"unknown command {arguments[0]!r}" if arguments else "no command given"
        print(f"{usage()}\n\nerror: {problem}", file=sys.stderr)
        sys.exit(2)
    command = sys.argv.pop(1)
    sys.argv[0] = f"sfocus-{command}"
    importlib.import_module(f"sfocus_tf.cli.{command}").run()


if __name__ == "__main__":
    main()
