"""The package's import graph: no import cycle, and the ROS-free core never reaches up into
the ROS layer or the applications.

Every module under ``hand_mesh_ros/`` is parsed (``ast``, nothing imported). An edge
``a -> b`` is an import of package module ``b`` by ``a`` (``from x import y`` counts as an
import of ``x.y`` when that is a module, else of ``x``). Cycles are looked for among the
imports that run when a module is loaded (module level, outside ``if TYPE_CHECKING``); the
layering rule counts every import, those inside functions too.
"""
import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "hand_mesh_ros"
#: What ``hand_mesh_ros.core`` must never import: the ROS layer and the applications.
ABOVE_CORE = ("hand_mesh_ros.ros", "hand_mesh_ros.node", "hand_mesh_ros.cli", "hand_mesh_ros.bag",
              "hand_mesh_ros.demo")


def _modules() -> Dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its ``__init__``)."""
    out = {}
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.Module, module: str, is_package: bool, modules: Dict[str, Path]
             ) -> Iterator[Tuple[str, bool]]:
    """``(imported package module, runs at load time)`` for every import in ``tree``."""

    def visit(node: ast.AST, at_load: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                yield from visit(child, False)
            elif isinstance(child, ast.If) and _is_type_checking(child):
                for stmt in child.body:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), False)
                for stmt in child.orelse:
                    yield from visit(ast.Module(body=[stmt], type_ignores=[]), at_load)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, at_load
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[:len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    yield (sub if sub in modules else target), at_load
            else:
                yield from visit(child, at_load)

    for name, at_load in visit(tree, True):
        # "import hand_mesh_ros.core.x" imports the deepest package module it names
        while name and name not in modules and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in modules and name != module:
            yield name, at_load


def _graph() -> Tuple[Dict[str, Set[str]], Dict[str, Set[str]]]:
    """(load-time edges, all edges) of the package's modules."""
    modules = _modules()
    load: Dict[str, Set[str]] = {m: set() for m in modules}
    every: Dict[str, Set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for target, at_load in _imports(tree, module, path.name == "__init__.py", modules):
            every[module].add(target)
            if at_load:
                load[module].add(target)
    return load, every


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """One cycle through each strongly connected component of more than one module
    (Tarjan 1972), as a path ``a -> ... -> a``."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
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
                found.append(_path_within(graph, set(component)))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def _path_within(graph: Dict[str, Set[str]], component: Set[str]) -> List[str]:
    """A cycle ``a -> ... -> a`` inside a strongly connected ``component`` (breadth first)."""
    start = min(component)
    parent = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & component):
            if w == start:
                path = [v]
                while parent[path[-1]] is not None:
                    path.append(parent[path[-1]])
                return path[::-1] + [start]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    raise AssertionError(f"not strongly connected: {sorted(component)}")


def test_the_graph_is_the_package():
    """The parser sees the package as it is (so the checks below cannot pass on nothing):
    absolute, relative and package imports, load-time and function-level ones."""
    load, every = _graph()
    assert load["hand_mesh_ros.node"] >= {"hand_mesh_ros.core.pipeline", "hand_mesh_ros.ros.publishers"}
    assert load["hand_mesh_ros.core.pipeline"] >= {"hand_mesh_ros.core.detectors", "hand_mesh_ros.core.regressors"}
    assert "hand_mesh_ros.config" in load["hand_mesh_ros.core.detectors.mediapipe_torch.models"]
    assert "hand_mesh_ros.core.regressors.fit" in every["hand_mesh_ros.core.regressors.base"]
    assert "hand_mesh_ros.core.regressors.fit" not in load["hand_mesh_ros.core.regressors.base"]
    assert "hand_mesh_ros.core.hand_model" not in load["hand_mesh_ros.core.regressors.base"]  # TYPE_CHECKING


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle():
    """None among the imports that run at load time, nor counting those inside functions."""
    for graph in _graph():
        cycles = _cycles(graph)
        assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_core_never_imports_the_ros_layer_or_the_applications():
    _, every = _graph()
    bad = sorted((m, t) for m, targets in every.items() if m.startswith("hand_mesh_ros.core")
                 for t in targets if any(t == a or t.startswith(a + ".") for a in ABOVE_CORE))
    assert not bad, "core imports from above it: " + ", ".join(f"{m} -> {t}" for m, t in bad)


def test_the_parameter_table_is_a_leaf():
    """``hand_mesh_ros.config`` imports nothing of the project (the launch file and the core
    both read it, and it loads without numpy, torch or rclpy)."""
    _, every = _graph()
    assert not [t for t in every["hand_mesh_ros.config"] if t.startswith("hand_mesh_ros")]
