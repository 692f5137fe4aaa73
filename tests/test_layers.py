"""The package's import layers (docs/design.md §8): no module imports from a layer above its own.

Every import is walked, those inside functions included, so a deferred import cannot hide an
upward dependency.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import maskpose

PACKAGE = Path(maskpose.__file__).parent

#: Lowest first; a module may import from its own layer and the ones below it.
LAYERS: dict[str, int] = {
    "errors": 0, "conventions": 0, "typing": 0, "io": 0, "device": 0, "allocator": 0, "__init__": 0,
    "data": 1,
    "models": 2,
    "body": 3,
    "render": 4,
    "topology": 5, "masks": 5,
    "eval": 6,
    "synth": 7,
    "train": 8,
    "apps": 9, "bench": 9, "cli": 9, "__main__": 9,
}

#: Deferred imports allowed outside the CLI, each for the reason given.
DEFERRED_OK = {
    ("render/_warp_kernels.py", "warp"): "optional backend: Warp initialises only when it is used",
    ("train/loop.py", "torch.utils.tensorboard"): "TensorBoard takes seconds to import; only when logging",
}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        yield rel, ("maskpose", *rel.with_suffix("").parts)


def _imports(rel: Path, parts: tuple[str, ...]):
    """``(imported module, line, deferred)`` for every import in the file."""
    return _imports_of((PACKAGE / rel).read_text(), parts)


def _imports_of(source: str, parts: tuple[str, ...]):
    tree = ast.parse(source)
    package = parts[:-1]

    def visit(node, deferred):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child.lineno, deferred
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[: len(package) - child.level + 1]
                    name = ".".join(base + ((child.module,) if child.module else ()))
                else:
                    name = child.module
                yield name, child.lineno, deferred
            else:
                inner = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                yield from visit(child, inner)

    yield from visit(tree, False)


def _layer(dotted: str) -> int:
    top = dotted.split(".")[1] if "." in dotted else "__init__"
    return LAYERS[top.removesuffix(".py")]


def test_every_module_has_a_layer():
    unknown = {parts[1] for _, parts in _modules() if len(parts) > 1 and parts[1] not in LAYERS}
    assert not unknown, f"add these to LAYERS (and docs/design.md §8): {sorted(unknown)}"


def test_no_module_imports_from_a_layer_above():
    upward = []
    for rel, parts in _modules():
        own = _layer(".".join(parts))
        for name, line, _ in _imports(rel, parts):
            if name == "maskpose" or name.startswith("maskpose."):
                if name.count(".") and _layer(name) > own:
                    upward.append(f"{rel}:{line} imports {name}")
    assert not upward, "\n".join(upward)


def test_deferred_imports_are_few_and_explained():
    """Outside the CLI (which defers its heavy imports so that ``maskpose --help`` starts fast),
    an import inside a function needs an entry in DEFERRED_OK."""
    deferred = [(str(rel), name) for rel, parts in _modules() if parts[1] != "cli"
                for name, _, is_deferred in _imports(rel, parts) if is_deferred]
    assert sorted(set(deferred) - set(DEFERRED_OK)) == []


def test_layer_walker_sees_a_deferred_upward_import():
    """The walker itself: an import inside a function is found and marked deferred, a relative
    one is resolved against its package."""
    source = "import os\nfrom . import dataset\n\ndef f():\n    from maskpose.train import loop\n"
    found = list(_imports_of(source, ("maskpose", "data", "probe")))
    assert found == [("os", 1, False), ("maskpose.data", 2, False), ("maskpose.train", 5, True)]
    assert _layer("maskpose.train") > _layer("maskpose.data.probe")


def test_design_references_point_at_sections_that_exist():
    """Every ``docs/design.md §N`` cited in the code names a heading of that file."""
    design = PACKAGE.parent.parent / "docs" / "design.md"
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)[. ]", design.read_text(), flags=re.M))
    cited = {(str(path.relative_to(PACKAGE)), ref) for path in PACKAGE.rglob("*.py")
             for ref in re.findall(r"docs/design\.md §(\d+(?:\.\d+)?)", path.read_text())}
    assert cited, "the code cites docs/design.md"
    assert sorted((path, ref) for path, ref in cited if ref not in sections) == []
    assert "DESIGN §" not in "".join(path.read_text() for path in PACKAGE.rglob("*.py"))
