"""The package's layers: each imports only from the layers below it, and nothing cycles.

``python tests/test_layers.py`` prints the import graph, a line per module; the tests
below check it. Every import counts, ``TYPE_CHECKING`` ones and those inside functions
included: a cycle hidden from the interpreter is still a cycle for the reader.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "wssim"

LAYERS: dict[str, int] = {
    # The engine, bottom up. The trace's vocabulary sits lowest: hosts and the network
    # describe what happens in its typed events; the rest of trace/ observes from above.
    "wssim.trace.events": 0,
    "wssim.core": 1,  # parameters, virtual time, hosts
    "wssim.wire": 1,  # the Sans-I/O frame and HTTP codec
    "wssim.net": 2,  # the simulated TCP network
    "wssim.trace": 3,  # the recorder, the wire tap, lifecycles
    "wssim.faults": 4,  # the fault catalogue
    "wssim.raw": 4,  # endpoints that send what a correct peer never would
    "wssim.world": 5,  # one simulation's loop, network, hosts and recorder
    "wssim.simulation": 6,  # the public face of a simulation
    # What is built on the engine.
    "wssim.toolkit": 7,  # for your own app: backoff, admission, heartbeats, resources
    "wssim.browser": 7,  # a browser tab running a page's JavaScript
    "wssim.lab": 8,  # experiment kits: diagnose, detection, storms, chaos, scorecards
    "wssim.plot": 9,  # every figure; the only layer that imports matplotlib
    "wssim.course": 10,  # lesson material: causes, catalogues, capstone, exercises
    "wssim.testing": 10,  # testing your own app: the pytest plugin, assertions, chaos
    "wssim.__main__": 11,  # python -m wssim
    "wssim": 11,  # the package's face
}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Every wssim module that ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from wssim.x import y` imports wssim.x.y when that is a module.
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            if target == "wssim" or target.startswith("wssim."):
                # The nearest module that exists: `import wssim.a.b` names wssim.a.b.
                while target not in known and "." in target:
                    target = target.rpartition(".")[0]
                if target != name:
                    yield target


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: set(imports(name, path, known)) for name, path in known.items()}


def layer(module: str) -> tuple[str, int]:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix, LAYERS[prefix]
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def test_every_module_belongs_to_a_layer() -> None:
    for module in modules():
        layer(module)


def test_no_module_imports_from_its_own_layer_above_or_a_sibling_layer() -> None:
    wrong = []
    for module, targets in graph().items():
        here, rank = layer(module)
        for target in sorted(targets):
            there, target_rank = layer(target)
            if there != here and target_rank >= rank:
                wrong.append(f"{module} -> {target} ({here} {rank} imports {there} {target_rank})")
    assert wrong == []


def test_the_import_graph_has_no_cycle() -> None:
    edges = graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            raise AssertionError("cycle: " + " -> ".join([*path[path.index(node) :], node]))
        if node in done:
            return
        for target in sorted(edges[node]):
            visit(target, [*path, node])
        done.add(node)

    for node in edges:
        visit(node, [])


NET: dict[str, int] = {
    # Inside wssim.net, bottom up: a lower module that needs a higher one names what it
    # needs as a small Protocol (tcp.Fabric, tcp.EndTransport, transport.ServerFabric...).
    "wssim.net.link": 0,  # Link and Segment: plain values
    "wssim.net.sockopt": 0,  # socket options: plain values and the socket that sets them
    "wssim.net.delivery": 0,  # the one heap every arrival goes through
    "wssim.net.tcp": 1,  # a connection's ends and pipes
    "wssim.net.path": 2,  # what acts on segments on a path
    "wssim.net.transport": 2,  # what asyncio's protocols see
    "wssim.net.fabric": 3,  # hosts, listeners, routing, crashes
    "wssim.net": 4,  # the map, and the names re-exported
}


def test_the_network_modules_import_only_those_below_them() -> None:
    found = {name for name in modules() if layer(name)[0] == "wssim.net"}
    assert found == set(NET), "add the module to NET"
    wrong = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        if module in NET
        for target in sorted(targets)
        if target in NET and NET[target] >= NET[module]
    ]
    assert wrong == []


def test_only_the_plot_layer_imports_matplotlib() -> None:
    users = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] == "matplotlib" for n in names):
                users.append(name)
    assert users and all(layer(name)[0] == "wssim.plot" for name in users), users


READS_TEXT_WITH_RE = {
    "wssim.simulation": "checks host names given by the user",
    "wssim.toolkit.heartbeat": "matches the application's own heartbeat messages",
    "wssim.course.display": "finds the columns of the tables it narrows for a notebook",
}
"""The modules that may import ``re``, and why: none of them parses the trace's text, which
is for people (readers use the events' typed fields)."""


def test_no_module_parses_text_with_regular_expressions_but_the_allowed() -> None:
    users = set()
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import) and any(a.name == "re" for a in node.names):
                users.add(name)
            if isinstance(node, ast.ImportFrom) and node.module == "re":
                users.add(name)
    assert users == set(READS_TEXT_WITH_RE)


if __name__ == "__main__":
    for module, targets in graph().items():
        print(module, "->", ", ".join(sorted(targets)) or "-", file=sys.stdout)
