"""The package's folders are layers: a module may import its own folder and the layers
below it, never one above, and no two modules import each other. Each failure names
the file, the line and the import.

    common < data, keras_models < modeling < configs < evaluation, serving < training
           < studies < cli (and the package's own __init__ and __main__)
"""

import ast
import glob
import os

ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
LAYERS = (("sfocus_tf.common",), ("sfocus_tf.data", "keras_models"), ("sfocus_tf.modeling",),
          ("sfocus_tf.configs",), ("sfocus_tf.evaluation", "sfocus_tf.serving"),
          ("sfocus_tf.training",), ("sfocus_tf.studies",),
          ("sfocus_tf.cli", "sfocus_tf", "sfocus_tf.__main__"))
TOP = len(LAYERS) - 1  # the commands and the package's front door may import each other
RANK = {package: rank for rank, packages in enumerate(LAYERS) for package in packages}


def module_files():
    """{dotted module name: path} of every module of sfocus_tf and keras_models."""
    modules = {}
    for library in ("sfocus_tf", "keras_models"):
        for path in glob.glob(os.path.join(ROOT, library, "**", "*.py"), recursive=True):
            parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported_modules(path, modules):
    """(line, imported module) for every import in ``path`` (function bodies
    included) of a module in ``modules``; ``from package import name`` counts as the
    submodule where ``name`` is one."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.append((node.lineno, submodule if submodule in modules else node.module))
    return [(line, name) for line, name in found if name in modules]


def layer_of(module):
    """The layer of a module: that of its longest-named package in ``RANK``."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in RANK:
            return ".".join(parts[:end]), RANK[".".join(parts[:end])]
    raise AssertionError(f"{module} belongs to no layer of tests/test_layers.py")


def import_graph():
    modules = module_files()
    return modules, {module: imported_modules(path, modules)
                     for module, path in modules.items()}


def test_no_module_imports_a_higher_layer():
    modules, graph = import_graph()
    wrong = []
    for module, imports in graph.items():
        package, rank = layer_of(module)
        for line, imported in imports:
            other, other_rank = layer_of(imported)
            if other_rank > rank:
                where = f"a layer above {package}"
            elif other_rank == rank and other != package and rank < TOP:
                where = f"beside {package} in its layer"
            else:
                continue
            wrong.append(f"{os.path.relpath(modules[module], ROOT)}:{line} imports "
                         f"{imported} ({other}, {where})")
    assert not wrong, "\n".join(wrong)


def test_no_two_modules_import_each_other():
    modules, graph = import_graph()
    imports = {module: {name for _, name in found} for module, found in graph.items()}
    # a package's __init__ importing its own modules, which import the package's other
    # modules through it, is how packages work, not a circle
    circles = sorted({tuple(sorted((a, b))) for a, names in imports.items() for b in names
                      if a in imports.get(b, ()) and a != b
                      and not b.startswith(a + ".") and not a.startswith(b + ".")})
    assert not circles, "\n".join(f"{a} and {b} import each other" for a, b in circles)


def test_every_module_is_in_a_layer():
    for module in module_files():
        layer_of(module)


def test_the_check_finds_an_upward_import(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("import os\n\ndef f():\n    from sfocus_tf.training import train\n")
    modules = module_files()
    found = imported_modules(str(path), modules)
    assert found == [(4, "sfocus_tf.training.train")]
    assert layer_of("sfocus_tf.modeling.losses")[1] < layer_of(found[0][1])[1]
