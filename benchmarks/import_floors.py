"""How the package's folders stack: import circles between files, and imports running back up
between rooms (a room is a sub-package folder, or a module loose at the top of `uniopd/`).

    python benchmarks/import_floors.py            # the figures and every offending import
    python benchmarks/import_floors.py --json     # the same as one JSON record

Drawn file by file with grimp (the graph import-linter checks), every import statement counted,
those inside functions and under TYPE_CHECKING too. Files import each other in a circle when
they share a strongly connected component of the file graph. Rooms are put on floors by the
Eades-Lin-Smyth ordering of the room graph (weights: file-level imports), which leaves as few
imports as it can pointing from a lower floor to a higher one; those are the ones "running back
up". With no room circle the ordering is a plain topological one and the count is 0.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import grimp

PACKAGE = "uniopd"


def room_of(module: str, packages: set[str]) -> str:
    """The deepest package folder holding `module` below the top, or the loose module itself."""
    parts = module.split(".")
    for depth in range(len(parts), 1, -1):
        candidate = ".".join(parts[:depth])
        if candidate in packages and candidate != PACKAGE:
            return candidate
    return module


def file_graph() -> tuple[dict[str, set[str]], set[str]]:
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    modules = set(graph.modules)
    packages = {m for m in modules if graph.find_children(m)} | {PACKAGE}
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}
    return edges, packages


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components with more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def eades_order(nodes: set[str], weight: dict[tuple[str, str], int]) -> list[str]:
    """A bottom-to-top order of rooms with few upward imports (Eades, Lin and Smyth, 1993):
    rooms that import nothing left go to the bottom, rooms nothing left imports to the top, else
    the room whose outgoing minus incoming weight is smallest goes to the bottom."""
    left = set(nodes)
    bottom: list[str] = []
    top: list[str] = []

    def out_w(n: str) -> int:
        return sum(w for (a, b), w in weight.items() if a == n and b in left and b != n)

    def in_w(n: str) -> int:
        return sum(w for (a, b), w in weight.items() if b == n and a in left and a != n)

    while left:
        changed = True
        while changed:
            changed = False
            for n in sorted(left):
                if out_w(n) == 0:  # imports nothing still unplaced: lowest free floor
                    bottom.append(n)
                    left.discard(n)
                    changed = True
            for n in sorted(left):
                if in_w(n) == 0:
                    top.insert(0, n)
                    left.discard(n)
                    changed = True
        if left:
            n = min(sorted(left), key=lambda m: out_w(m) - in_w(m))
            bottom.append(n)
            left.discard(n)
    return bottom + top


def measure() -> dict:
    edges, packages = file_graph()
    circles = strongly_connected(edges)
    rooms = {room_of(m, packages) for m in edges}
    weight: dict[tuple[str, str], int] = defaultdict(int)
    imports: dict[tuple[str, str], list[str]] = defaultdict(list)
    for importer, targets in edges.items():
        for imported in targets:
            a, b = room_of(importer, packages), room_of(imported, packages)
            if a != b:
                weight[(a, b)] += 1
                imports[(a, b)].append(f"{importer} -> {imported}")
    order = eades_order(rooms, weight)
    position = {room: i for i, room in enumerate(order)}
    back = sorted(
        line for (a, b), lines in imports.items() if position[b] > position[a] for line in lines
    )
    # floors: 0 for rooms importing no lower room, else one above the highest lower room imported
    floor: dict[str, int] = {}
    for room in order:
        below = [floor[b] for (a, b) in weight if a == room and position[b] < position[a]]
        floor[room] = 1 + max(below) if below else 0
    return {
        "files": len(edges),
        "rooms": len(rooms),
        "floors": 1 + max(floor.values()),
        "loose_modules": sorted(r for r in rooms if r not in packages and r.count(".") == 1),
        "import_circles": circles,
        "imports_running_back_up": back,
        "floor_of_room": {r: floor[r] for r in sorted(rooms, key=lambda r: (floor[r], r))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON record")
    args = parser.parse_args()
    figures = measure()
    if args.json:
        print(json.dumps(figures, indent=1))
        return
    print(f"{figures['files']} files in {figures['rooms']} rooms on {figures['floors']} floors")
    print(f"loose modules at the top of {PACKAGE}/: {len(figures['loose_modules'])}")
    print(f"import circles (file by file): {len(figures['import_circles'])}")
    for circle in figures["import_circles"]:
        print("  " + " <-> ".join(circle))
    print(f"imports running back up: {len(figures['imports_running_back_up'])}")
    for line in figures["imports_running_back_up"]:
        print("  " + line)
    for room, level in figures["floor_of_room"].items():
        print(f"  floor {level:2d}  {room}")


if __name__ == "__main__":
    main()
