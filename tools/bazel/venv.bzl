"""The project's venv as Bazel's Python toolchain: py_test and py_binary targets run on
the venv's python, so they import what `make setup` installed (TensorFlow, Keras, pytest).

The venv is `.venv` beside WORKSPACE (as the Makefile makes it), or the one the
environment variable SFOCUS_VENV names (absolute, or relative to the workspace), e.g.
`bazel test --repo_env=SFOCUS_VENV=/path/to/venv //...`. The path is resolved when the
repository is made, so a clone works from any directory."""

_BUILD = """\
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "python3",
    interpreter_path = "{python}",
    python_version = "PY3",
    stub_shebang = "#!{python}",
)

py_runtime_pair(
    name = "runtimes",
    py3_runtime = ":python3",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtimes",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
"""

def _venv_python_impl(repository_ctx):
    venv = repository_ctx.os.environ.get("SFOCUS_VENV", ".venv")
    if not venv.startswith("/"):
        workspace = repository_ctx.path(Label("//:WORKSPACE")).dirname
        venv = "%s/%s" % (workspace, venv)

    # Not resolved: the venv's own bin/python is what makes Python use the venv.
    python = "%s/bin/python" % venv
    if not repository_ctx.path(python).exists:
        fail("no Python at %s: run `make setup` (it makes the venv), or set SFOCUS_VENV" % python)
    repository_ctx.file("BUILD", _BUILD.format(python = python))

venv_python = repository_rule(
    implementation = _venv_python_impl,
    environ = ["SFOCUS_VENV"],
    local = True,
)
