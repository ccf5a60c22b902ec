"""pytest_test: one module of tests/ as Bazel py_test targets, run by pytest."""

_MAIN = "//tools/bazel:pytest_main.py"

_SLOW = ("none", "some", "all")

def pytest_test(name, slow = "none", srcs = [], deps = [], data = [], **kwargs):
    """Targets for the test module `name`.py, split as `make test` / `make test-slow` split it.

    `name` runs its fast tests (pytest -m "not slow"); `name`_slow, size "large" and tagged
    "slow" (so `--test_tag_filters=-slow` leaves it out), runs its @pytest.mark.slow ones.

    Args:
      name: the module's name without .py.
      slow: "none" (no slow tests), "some" or "all" (only `name`_slow).
      srcs: other test modules it imports (helpers of theirs it reuses).
      deps: libraries the module imports besides //tests:support.
      data: files it reads besides pyproject.toml (pytest's configuration).
      **kwargs: passed on to the fast target (e.g. timeout).
    """
    if slow not in _SLOW:
        fail("pytest_test %s: slow must be one of %s, not %r" % (name, _SLOW, slow))
    src = name + ".py"
    common = dict(
        srcs = [src, _MAIN] + srcs,
        main = _MAIN,
        python_version = "PY3",
        deps = ["//tests:support"] + deps,
        data = ["//:pyproject.toml"] + data,
    )
    if slow != "all":
        # A module, not a unit test: on 2 busy cores some take minutes (medium allows 5).
        fast = dict(common, size = "medium", timeout = "long")
        native.py_test(
            name = name,
            args = ["-m", "'not slow'", "$(location %s)" % src],
            **dict(fast, **kwargs)
        )
    if slow != "none":
        native.py_test(
            name = name + "_slow",
            args = ["-m", "slow", "$(location %s)" % src],
            size = "large",
            timeout = "eternal",  # every backbone at full size, on CPU
            tags = ["slow"],
            **common
        )
