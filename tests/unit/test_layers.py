"""The layers of docs/architecture.md hold: no module of harness/ imports a higher layer.

The table of modules is read from the doc itself, so the rule the doc states is the rule
checked. Every import counts: at the top, inside functions, and under TYPE_CHECKING (a
type a lower layer names is still a thing its reader must know; see the doc).
"""
from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

PROJECT = Path(__file__).resolve().parents[2]
DOC = PROJECT / "docs" / "architecture.md"
# Placed in the doc ahead of its arrival (from work under way); a row naming any other
# module that does not exist is stale. Drop the name once its module exists.
ARRIVING: set = set()
ROW = re.compile(r"^\|\s*(\d+)\s*\|([^|]+)\|([^|]+)\|\s*$")

Layers = Dict[str, Tuple[int, str]]   # module -> (rank, layer name)


def read_layers(doc: Path) -> Layers:
    """module -> (rank, name) from the doc's table rows ("| 3 | one QEMU guest | `machine` ...")."""
    layers: Layers = {}
    for line in doc.read_text().splitlines():
        row = ROW.match(line)
        if row:
            for module in re.findall(r"`([^`]+)`", row[3]):
                layers[module] = (int(row[1]), row[2].strip())
    return layers


def modules_in(root: Path) -> Dict[str, Path]:
    """Dotted module names under ``root`` (the harness dir): "kmsg", "arch", "arch.x86_64";
    the package's own __init__.py is "__init__"."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(path: Path, module: str) -> Iterator[Tuple[int, str]]:
    """(line, dotted name below harness) of every harness import in the file: a module, or a
    name in one ("image.Image"), as written."""
    package = module.split(".")[:-1] if path.name != "__init__.py" else module.split(".")
    if module == "__init__":
        package = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "harness":
                    yield node.lineno, alias.name.partition(".")[2]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                base += node.module.split(".") if node.module else []
            elif node.module and node.module.split(".")[0] == "harness":
                base = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                yield node.lineno, ".".join(base + [alias.name])


def placed(name: str, table) -> str:
    """The longest leading part of ``name`` that ``table`` has ("arch.x86_64" -> "arch"),
    or ""."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in table:
            return ".".join(parts[:end])
    return ""


def problems(root: Path, layers: Layers) -> List[str]:
    """Imports against the rule, modules the table does not place, and rows for no module."""
    modules = modules_in(root)
    found = [f"{root.name}/{path.relative_to(root)}: module {name} has no layer in "
             f"{DOC.name}: add it to the table" for name, path in modules.items()
             if not placed(name, layers)]
    found += [f"{DOC.name} places {name}, which is no module of {root.name}/"
              for name in layers if name not in modules and name not in ARRIVING]
    for name, path in modules.items():
        own = placed(name, layers)
        if not own:
            continue
        for line, target in imports(path, name):
            # A name of the package itself (from . import __version__) is __init__'s.
            other = placed(target, layers) or ("" if placed(target, modules) else "__init__")
            if other and layers[other][0] > layers[own][0]:
                found.append(f"{root.name}/{path.relative_to(root)}:{line}: {name} (layer "
                             f"{layers[own][0]}, {layers[own][1]}) imports {other} (layer "
                             f"{layers[other][0]}, {layers[other][1]})")
    return found


@pytest.fixture(scope="module")
def real() -> List[str]:
    """The problems of the real tree (none, unless the test below fails)."""
    return problems(PROJECT / "harness", read_layers(DOC))


def test_no_module_imports_a_higher_layer(real):
    assert not real, "\n".join(real)


def test_the_doc_draws_seven_layers_in_order():
    ranks = {rank: name for rank, name in read_layers(DOC).values()}
    assert sorted(ranks) == list(range(1, 8))
    assert (ranks[1], ranks[7]) == ("core", "front ends")


@pytest.fixture
def scratch(tmp_path) -> Path:
    """A copy of harness/ to break."""
    copy = tmp_path / "harness"
    shutil.copytree(PROJECT / "harness", copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


@pytest.mark.parametrize("where", [
    "from .cli import main\n",
    "def f():\n    from . import cli\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import harness.cli\n",
])
def test_an_upward_import_is_reported_with_its_line_and_layers(scratch, real, where):
    """The negative control: kmsg (one guest) importing cli (a front end), written three ways."""
    kmsg = scratch / "kmsg.py"
    line = len(kmsg.read_text().splitlines()) + where.count("\n")
    kmsg.write_text(kmsg.read_text() + where)
    assert [p for p in problems(scratch, read_layers(DOC)) if p not in real] == [
        f"harness/kmsg.py:{line}: kmsg (layer 3, one QEMU guest) imports cli "
        f"(layer 7, front ends)"]


def test_a_module_without_a_row_and_a_row_without_a_module_are_reported(scratch, real):
    layers = read_layers(DOC)
    (scratch / "newthing.py").write_text('"""Something new."""\n')
    layers["gone"] = (1, "core")
    assert [p for p in problems(scratch, layers) if p not in real] == [
        f"harness/newthing.py: module newthing has no layer in {DOC.name}: add it to the table",
        f"{DOC.name} places gone, which is no module of harness/"]
