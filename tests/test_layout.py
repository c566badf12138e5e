"""The package's shape: no import cycles, nasrun's own imports at the top of each module (a lazy one says why),
and CONTRIBUTING.md's module map naming exactly the modules there are."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nasrun"
CONTRIBUTING = PACKAGE.parent / "CONTRIBUTING.md"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> list[tuple[str, ast.stmt]]:
    """(imported nasrun module, the import statement) for every import in the module, at any depth: an import
    inside a function or under TYPE_CHECKING is a dependency too."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base]).strip(".")
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found += [(t, node) for t in targets if t in MODULES and t != name]
    return found


def import_graph() -> dict[str, set[str]]:
    return {name: {t for t, _ in imports_of(name) if not t.startswith(name + ".")} for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_inside_nasrun():
    assert cycles(import_graph()) == []


def test_nasruns_own_imports_are_at_the_top_unless_a_comment_says_why():
    lazy = []
    for name, path in MODULES.items():
        lines = path.read_text().split("\n")
        for target, node in imports_of(name):
            if node.col_offset == 0:
                continue
            # The statement that opens the import's block: `if TYPE_CHECKING:` (types only) or a function's line.
            opener = next(line for line in reversed(lines[:node.lineno - 1])
                          if line.strip() and len(line) - len(line.lstrip()) < node.col_offset)
            here, above = lines[node.lineno - 1], lines[node.lineno - 2].strip()
            if "#" not in here and not above.startswith("#") and "TYPE_CHECKING" not in opener:
                lazy.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {target} inside a function")
    assert lazy == []


def test_contributing_maps_every_module_and_names_none_that_is_gone():
    """Each module is named in its folder's row of the map (a root module by its path), and every path the
    map names exists."""
    text = CONTRIBUTING.read_text()
    for path in set(re.findall(r"`(nasrun/[\w/]+(?:\.py)?)`", text)):
        assert (PACKAGE.parent / path).exists(), f"CONTRIBUTING.md names {path}, which does not exist"
    rows = {line.split("`")[1]: line for line in text.splitlines() if line.startswith("| `nasrun/")}
    unnamed = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent)
        if path.name in ("__init__.py", "__main__.py"):
            continue
        if len(relative.parts) == 2:
            named = str(relative) in rows
        else:
            row = rows.get(f"{relative.parts[0]}/{relative.parts[1]}/", "")
            named = f"`{path.name}`" in row or f"`{'/'.join(relative.parts[2:])}`" in row or \
                f"{path.name}`" in row
        if not named:
            unnamed.append(str(relative))
    assert unnamed == [], "CONTRIBUTING.md's module map should name these modules in their folder's row"


@pytest.mark.parametrize("package", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_every_subpackage_is_small_and_flat(package):
    """A subpackage holds a handful of modules, each a few hundred lines at most (CONTRIBUTING rule 10)."""
    for path in (PACKAGE / package).rglob("*.py"):
        assert len(path.read_text().split("\n")) <= 420, f"{path} has grown past a few hundred lines"
