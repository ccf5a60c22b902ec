"""The Keras and TensorFlow releases sfocus_tf supports, checked on import.

Every use of Keras' private API (``keras_models.keras_compat``) was checked on one
Keras release line, so another one is refused rather than trusted.
The pins are pyproject.toml's (tests/test_files.py keeps the two equal).
"""

from __future__ import annotations

import sys

from packaging.specifiers import SpecifierSet

REQUIRED = {"keras": ">=3.15,<3.16", "tensorflow": ">=2.21,<2.22"}


class VersionError(ImportError):
    """An installed Keras or TensorFlow outside the supported range."""


def check(package: str, installed: str) -> None:
    """Raises VersionError (printed as one line if nothing catches it) unless
    ``installed`` is within ``REQUIRED[package]``."""
    if SpecifierSet(REQUIRED[package]).contains(installed, prereleases=True):
        return
    error = VersionError(f"sfocus_tf needs {package}{REQUIRED[package]}; "
                         f"{package} {installed} is installed")
    _print_in_one_line_if_uncaught(error)
    raise error


def _print_in_one_line_if_uncaught(error: VersionError) -> None:
    """A command (``sfocus-train`` ...) that dies of ``error`` on import prints one
    line, not a traceback through the import machinery; other errors as before."""
    previous = sys.excepthook

    def excepthook(kind, value, traceback):
        if value is error:
            print(f"sfocus_tf: error: {value}", file=sys.stderr)
        else:
            previous(kind, value, traceback)

    sys.excepthook = excepthook
