"""The project's import rules, checked on the source (no import is executed).

- `tenants` is the floor the archive builds on: nothing in it imports `archive` or
  `billing`, at module level or inside a function.
- `archive` never imports `billing`, which builds on it.
- `cloudpacs.objectstore` (regions, object I/O, the master key) sits below both.
- `edge`, the on-site gateway, builds on `cloudpacs` alone.
- No import circles between the project's modules, lazy imports included: a circle
  hidden in a function still ties two modules into one.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("archive", "billing", "cloudpacs", "edge", "tenants")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                modules[_module_name(path)] = path
    return modules


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name lives in (`a.b.func` -> `a.b`), if any."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules `module` imports, anywhere in its body. Package `__init__` files
    that hold no code are not counted as targets (importing a.b.c runs them, but they
    cannot close a circle)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for name in names:
            target = _target(name, modules)
            if target and target != module and modules[target].read_text().strip():
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def _violations(graph, source_prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    return sorted(f"{module} imports {target}" for module, targets in graph.items()
                  if module == source_prefix or module.startswith(source_prefix + ".")
                  for target in targets if target.split(".")[0] in forbidden)


def test_tenants_never_imports_archive_or_billing():
    assert _violations(import_graph(), "tenants", ("archive", "billing")) == []


def test_archive_never_imports_billing():
    """Billing builds on the archive (its charge rides ingest through archive.ingest.hooks),
    never the other way round."""
    assert _violations(import_graph(), "archive", ("billing",)) == []


def test_objectstore_sits_below_tenants_and_archive():
    assert _violations(import_graph(), "cloudpacs.objectstore", ("archive", "billing", "tenants")) == []


def test_edge_builds_on_cloudpacs_alone():
    """The on-site gateway runs at the clinic with no database: it must not pull in the
    archive, the clinics or billing, whose models need one."""
    assert _violations(import_graph(), "edge", ("archive", "billing", "tenants")) == []


def test_no_import_circles():
    assert circles(import_graph()) == []


def test_the_checks_see_a_lazy_import_and_a_circle(tmp_path):
    """The checker itself: a function-level import counts, and a two-module circle is found."""
    modules = {"tenants.a": tmp_path / "a.py", "archive.b": tmp_path / "b.py"}
    modules["tenants.a"].write_text("def f():\n    from archive.b import g\n")
    modules["archive.b"].write_text("from tenants import a\nfrom tenants.a import f\n")
    # `from tenants import a` names the module tenants.a
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    assert graph == {"tenants.a": {"archive.b"}, "archive.b": {"tenants.a"}}
    assert _violations(graph, "tenants", ("archive",)) == ["tenants.a imports archive.b"]
    assert circles(graph) == [["archive.b", "tenants.a"]]
