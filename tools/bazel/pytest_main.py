"""Main of every py_test made by tools/bazel/pytest.bzl: runs pytest on the arguments the
target gives (a marker selection and one test module), with Bazel's test conventions."""

import os
import sys

import pytest


def _without_editable_install():
    """`make setup` installs the project editable; its import hook would quietly supply
    sfocus_tf, keras_models or any of their modules from the source tree when a target
    forgot it. Without the hook, a test imports the project only from its runfiles."""
    sys.meta_path[:] = [finder for finder in sys.meta_path  # setuptools adds a class
                        if not getattr(finder, "__module__", "").startswith("__editable__")]


def pytest_args(argv, environ):
    # Runfiles are read-only: no .pytest_cache beside them.
    args = ["-p", "no:cacheprovider", *argv]
    if environ.get("XML_OUTPUT_FILE"):  # per-test-case results in Bazel's test.xml
        args.append(f"--junitxml={environ['XML_OUTPUT_FILE']}")
    if environ.get("TESTBRIDGE_TEST_ONLY"):  # bazel test --test_filter=EXPR
        args += ["-k", environ["TESTBRIDGE_TEST_ONLY"]]
    return args


if __name__ == "__main__":
    _without_editable_install()
    sys.exit(pytest.main(pytest_args(sys.argv[1:], os.environ)))
