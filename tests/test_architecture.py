"""The package layout of shared/DESIGN.md: imports between packages point one way, down the list,
and form no cycle. Imports inside functions (lazy ones) count too: a cycle is a cycle at run time."""
import ast
import collections
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fmeval"
# DESIGN.md's list, top to bottom; a package may import only packages of a lower layer (or its own).
LAYERS = [
    {"cli", "__main__"},
    {"dashboard"},
    {"governance"},
    {"monitoring"},
    {"reports", "human"},
    {"runs"},
    {"algorithms", "bias", "explain", "tasks"},
    {"engine"},
    {"model_runners"},
    {"datasets"},
]
BASE = 0  # single modules at the bottom: errors, scores, stats, html, retry, batching, secrets, ...


def layer(package: str) -> int:
    for depth, members in enumerate(LAYERS):
        if package in members:
            return len(LAYERS) - depth
    return BASE


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports() -> dict[str, set[tuple[str, str]]]:
    """package -> {(imported package, where)}."""
    found: dict[str, set[tuple[str, str]]] = collections.defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        if module == "fmeval":
            continue  # the public facade imports everything, lazily
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fmeval"):
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names if alias.name.startswith("fmeval")]
            else:
                continue
            for target in targets:
                if package_of(target) != package_of(module):
                    found[package_of(module)].add((package_of(target), f"{path.name}:{node.lineno}"))
    return found


def test_imports_point_down_the_layers():
    upward = [
        f"{package} imports {target} ({where})"
        for package, targets in imports().items()
        for target, where in targets
        if layer(target) > layer(package)
    ]
    assert upward == []


def test_no_import_cycle_between_packages():
    graph = {package: {target for target, _ in targets} for package, targets in imports().items()}
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = "open"
        for nxt in graph.get(node, ()):
            if state.get(nxt) == "open":
                return path + [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = "done"
        return None

    for start in graph:
        if start not in state:
            assert visit(start, []) is None, "import cycle"


def test_the_run_files_are_known_to_one_module():
    """Only fmeval/runs/directory.py spells the run directory's file names."""
    spelled = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for name in ('"run.json"', '"records.jsonl"', '"summary.json"'):
            if name in text and path.relative_to(PACKAGE).as_posix() != "runs/directory.py":
                spelled.append(f"{path.relative_to(PACKAGE)} spells {name}")
    assert spelled == []
