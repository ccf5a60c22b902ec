"""The Bazel BUILD files keep up with the tree: every module of sfocus_tf and keras_models
is in a target of its package, every command a py_binary, every tests/test_*.py has its
pytest_test (split into fast and slow as its marks say, with what it imports and runs),
every test helper is in a target. Each failure names the file and the BUILD to fix.
Bazel is not needed: BUILD files are Starlark, which reads as Python for the rules here."""

import ast
import glob
import os
import tomllib

# Real paths: under Bazel this file is a link in the runfiles, which hold only declared files.
ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
LIBRARIES = ("sfocus_tf", "keras_models")
RULES = ("py_library", "py_binary", "py_test", "pytest_test", "test_suite", "exports_files",
         "filegroup", "package")
# What `python -m sfocus_tf` and `python -m sfocus_tf.cli.<command>` need in a test's deps.
COMMAND_TARGETS = {"sfocus_tf": "//sfocus_tf:main", "sfocus_tf.cli": "//sfocus_tf/cli"}


def build_targets(package):
    """The rules ``package``/BUILD calls, as (rule, attributes) pairs."""
    targets = []
    scope = {rule: (lambda rule: lambda *args, **kwargs: targets.append((rule, kwargs)))(rule)
             for rule in RULES}
    scope["load"] = lambda *args, **kwargs: None
    path = os.path.join(ROOT, package, "BUILD")
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), scope)
    return targets


def pytest_targets():
    return {attributes["name"]: attributes
            for rule, attributes in build_targets("tests") if rule == "pytest_test"}


def package_of(path):
    """The Bazel package holding ``path`` (relative to ROOT): its nearest folder with a BUILD."""
    folder = os.path.dirname(path)
    while folder and not os.path.exists(os.path.join(ROOT, folder, "BUILD")):
        folder = os.path.dirname(folder)
    return folder


def listed_files(package):
    """Files of ``package`` named in its targets' srcs and data, relative to the package."""
    names = set()
    for _, attributes in build_targets(package):
        for key in ("srcs", "data"):
            names.update(name for name in attributes.get(key, ())
                         if not name.startswith(("//", ":")))
    return names


def unlisted(folder, library):
    """One line per .py file under ``folder`` (test modules aside) that no target of its
    package names; each belongs in the srcs of the py_library ``library(package)``."""
    missing = []
    for path in sorted(glob.glob(os.path.join(ROOT, folder, "**", "*.py"), recursive=True)):
        path = os.path.relpath(path, ROOT)
        package = package_of(path)
        name = os.path.relpath(path, package)
        if name not in listed_files(package) and not os.path.basename(path).startswith("test_"):
            missing.append(f'{path} is in no target of {package}/BUILD: add "{name}" to the '
                           f'srcs of py_library "{library(package)}" there')
    return missing


def parsed_test(name):
    with open(os.path.join(ROOT, "tests", name + ".py")) as f:
        return ast.parse(f.read(), name)


def marks_slow(node):
    return any(isinstance(n, ast.Attribute) and n.attr == "slow"
               and isinstance(n.value, ast.Attribute) and n.value.attr == "mark"
               for n in ast.walk(node))


def slowness(module):
    """How pytest_test's ``slow`` must be set for a test module: "all" when its
    ``pytestmark`` is pytest.mark.slow, "some" when a test or parameter is marked."""
    for statement in module.body:
        targets = [getattr(target, "id", None) for target in getattr(statement, "targets", ())]
        if "pytestmark" in targets and marks_slow(statement.value):
            return "all"
    return "some" if marks_slow(module) else "none"


def imported_names(module):
    """Dotted names ``module`` imports, at any depth of the code (``from a import b``: a.b)."""
    names = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def commands_used(module):
    """The command packages ``module`` imports or runs (``"-m", "sfocus_tf..."``), as
    keys of COMMAND_TARGETS."""
    run = {getattr(second, "value", None) for node in ast.walk(module)
           if isinstance(node, (ast.List, ast.Tuple))
           for first, second in zip(node.elts, node.elts[1:])
           if getattr(first, "value", None) == "-m"}
    used = {"sfocus_tf"} & run  # `python -m sfocus_tf <command>`
    used |= {"sfocus_tf.cli" for name in imported_names(module) | run
             if name == "sfocus_tf.cli" or name.startswith("sfocus_tf.cli.")}
    return used


def test_every_library_module_is_in_a_target_of_its_package():
    missing = [line for folder in LIBRARIES for line in unlisted(folder, os.path.basename)]
    assert not missing, "\n".join(missing)


def test_every_test_helper_is_in_a_target():
    """conftest and the helpers tests import; scripts they run belong in a test's data."""
    missing = unlisted("tests", lambda package: "support")
    assert not missing, "\n".join(missing)


def test_every_listed_file_exists():
    stale = [f"{package}/BUILD lists {name}, which does not exist"
             for package in [*LIBRARIES, "sfocus_tf/cli", "tests"]
             for name in sorted(listed_files(package))
             if not os.path.exists(os.path.join(ROOT, package, name))]
    assert not stale, "\n".join(stale)


def test_every_console_script_is_a_py_binary():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    binaries = {attributes["name"]: attributes.get("main")
                for rule, attributes in build_targets("sfocus_tf/cli") if rule == "py_binary"}
    problems = []
    for script, entry in scripts.items():
        module = entry.split(":")[0]
        if not module.startswith("sfocus_tf.cli."):
            problems.append(f"{script} runs {module}, outside sfocus_tf/cli")
            continue
        command = module.rsplit(".", 1)[1]
        if binaries.get(command) != f"{command}.py":
            problems.append(f'{script} ({entry}) has no py_binary in sfocus_tf/cli/BUILD: add '
                            f'"{command}" to its list of commands')
    assert not problems, "\n".join(problems)


def test_every_test_module_has_a_pytest_test_split_as_its_marks_say():
    declared = {name: attributes.get("slow", "none")
                for name, attributes in pytest_targets().items()}
    problems = []
    for path in glob.glob(os.path.join(ROOT, "tests", "test_*.py")):
        name = os.path.basename(path)[:-3]
        slow = slowness(parsed_test(name))
        argument = "" if slow == "none" else f', slow = "{slow}"'
        if name not in declared:
            problems.append(f'tests/{name}.py has no target in tests/BUILD: add '
                            f'pytest_test(name = "{name}"{argument})')
        elif declared[name] != slow:
            problems.append(f'tests/BUILD: pytest_test "{name}" needs slow = "{slow}" '
                            f'(its pytest marks), not "{declared[name]}"')
    problems += [f"tests/BUILD: pytest_test {name} has no tests/{name}.py" for name in declared
                 if not os.path.exists(os.path.join(ROOT, "tests", name + ".py"))]
    assert not problems, "\n".join(sorted(problems))


def test_every_test_module_has_what_it_imports_and_runs():
    """Under Bazel a test sees only its deps: other test modules it imports (conftest puts
    tests/ on sys.path) must be in its srcs or //tests:support, and the commands it imports
    or runs as `python -m` in its deps."""
    support = {src[:-3] for rule, attributes in build_targets("tests")
               if attributes.get("name") == "support" for src in attributes["srcs"]}
    local = {os.path.basename(path)[:-3] for path in glob.glob(os.path.join(ROOT, "tests", "*.py"))}
    problems = []
    for name, attributes in sorted(pytest_targets().items()):
        module = parsed_test(name)
        present = support | {name} | {src[:-3] for src in attributes.get("srcs", ())}
        imported = {imported.split(".")[0] for imported in imported_names(module)}
        problems += [f'tests/{name}.py imports {helper}: add "{helper}.py" to the srcs of '
                     f'pytest_test "{name}" in tests/BUILD'
                     for helper in sorted(imported & local - present)]
        deps = set(attributes.get("deps", ()))
        if "//sfocus_tf:main" in deps:
            deps.add("//sfocus_tf/cli")
        problems += [f'tests/{name}.py imports or runs {command}: add "{COMMAND_TARGETS[command]}"'
                     f' to the deps of pytest_test "{name}" in tests/BUILD'
                     for command in sorted(commands_used(module))
                     if COMMAND_TARGETS[command] not in deps]
    assert not problems, "\n".join(problems)


def test_the_checks_read_the_build_files_and_tests_as_bazel_and_pytest_do():
    assert package_of("sfocus_tf/data/pipeline.py") == "sfocus_tf"
    assert package_of("sfocus_tf/cli/train.py") == "sfocus_tf/cli"
    assert "data/pipeline.py" in listed_files("sfocus_tf")
    assert pytest_targets()["test_full_size_backbones"]["slow"] == "all"
    assert slowness(parsed_test("test_resume")) == "some"
    assert commands_used(parsed_test("test_cli")) == {"sfocus_tf", "sfocus_tf.cli"}
    assert commands_used(parsed_test("test_tuning")) == {"sfocus_tf.cli"}
    assert commands_used(parsed_test("test_losses")) == set()
