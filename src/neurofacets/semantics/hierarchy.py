"""A class hierarchy: a directed acyclic graph of nodes, each with zero or more parents.

Sources: the packaged WordNet 3.0 noun table (`neurofacets.semantics.wordnet.load_wordnet`)
or a user CSV of edges ``class,parent`` (one row per edge; a node with several parents has
several rows, a root has an empty parent or appears only as a parent). Both are read as an
edge table ``node, parent[, name]`` by `hierarchy_from_edges`.

Conventions (docs/design.md §6):

- **depth** of a node: the length of the *longest* parent chain from it up to a root
  (roots 0; NLTK's ``max_depth``). Along any parent link depth strictly decreases, so
  "deepest" is a total preorder in which every node is deeper than its ancestors.
- **ancestors** of a node include the node itself.
- **canonical parent**: the parent of greatest depth (ties: the lowest node id). Following
  it from a node visits exactly one node at each depth down to 0: the node's canonical
  path, used to cut the hierarchy at a depth.
- **path distance** between two nodes: the fewest parent links from both up to a common
  ancestor, ``min_v up(a, v) + up(b, v)`` (NLTK's ``shortest_path_distance``).
- A hierarchy restricted to a dataset's classes that has several roots gets one virtual
  root `VIRTUAL_ROOT` above them, so every two classes have a common ancestor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..pathlike import PathLike

VIRTUAL_ROOT = "(root)"
UNREACHABLE = np.iinfo(np.int32).max // 4  # "no path" in distance arrays; sums of two stay in int32


class HierarchyError(ValueError):
    """The hierarchy table is not a valid DAG; the message says where."""


@dataclass(frozen=True)
class Hierarchy:
    """Nodes sorted by id, their display names and parent indices.

    Attributes
    ----------
    nodes
        Node ids, sorted (the order every tie rule refers to).
    names
        Display names (the id where the source gives none).
    parents
        Per node, the indices of its parents (sorted); empty for a root.
    """

    nodes: tuple[str, ...]
    names: tuple[str, ...]
    parents: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if not (len(self.nodes) == len(self.names) == len(self.parents)):
            raise HierarchyError("nodes, names and parents differ in length")
        if list(self.nodes) != sorted(set(self.nodes)):
            raise HierarchyError("node ids must be unique and sorted")

    @cached_property
    def index(self) -> dict[str, int]:
        """Node id -> position."""
        return {node: i for i, node in enumerate(self.nodes)}

    def __len__(self) -> int:
        return len(self.nodes)

    @cached_property
    def depth(self) -> np.ndarray:
        """int (nodes,): longest parent chain up to a root (roots 0); raises on a cycle."""
        depth = np.full(len(self), -1, dtype=np.int64)
        state = np.zeros(len(self), dtype=np.int8)  # 0 new, 1 on the stack, 2 done
        for start in range(len(self)):
            if state[start]:
                continue
            stack = [start]
            while stack:  # iterative DFS: WordNet chains are ~20 deep, user files may be deeper
                node = stack[-1]
                if state[node] == 0:
                    state[node] = 1
                    for parent in self.parents[node]:
                        if state[parent] == 1:
                            raise HierarchyError(f"the hierarchy has a cycle through {self.nodes[parent]!r}")
                        if state[parent] == 0:
                            stack.append(parent)
                else:
                    stack.pop()
                    if state[node] == 1:
                        state[node] = 2
                        depth[node] = 1 + max((depth[p] for p in self.parents[node]), default=-1)
        return depth

    def ancestors(self, node: int) -> set[int]:
        """Indices of ``node`` and every node above it."""
        seen, todo = {node}, [node]
        while todo:
            for parent in self.parents[todo.pop()]:
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    def up_distances(self, node: int) -> dict[int, int]:
        """Fewest parent links from ``node`` to each of its ancestors (itself: 0), by BFS."""
        dist, frontier = {node: 0}, [node]
        while frontier:
            nxt = []
            for current in frontier:
                for parent in self.parents[current]:
                    if parent not in dist:
                        dist[parent] = dist[current] + 1
                        nxt.append(parent)
            frontier = nxt
        return dist

    @cached_property
    def canonical_parent(self) -> np.ndarray:
        """int (nodes,): the parent of greatest depth (ties: lowest id), -1 for a root."""
        depth = self.depth
        out = np.full(len(self), -1, dtype=np.int64)
        for node, parents in enumerate(self.parents):
            if parents:
                # parents are sorted by index = by id, so max() keeps the lowest id on ties
                out[node] = max(parents, key=lambda p: (depth[p], -p))
        return out

    def restrict(self, keep: Sequence[str]) -> Hierarchy:
        """The sub-hierarchy of ``keep`` and all their ancestors, one virtual root if several roots."""
        missing = [node for node in keep if node not in self.index]
        if missing:
            raise HierarchyError(f"{len(missing)} node(s) are not in the hierarchy, e.g. {missing[:5]}")
        closure: set[int] = set()
        for node in keep:
            closure |= self.ancestors(self.index[node])
        kept = sorted(closure, key=lambda i: self.nodes[i])
        edges = [(self.nodes[i], self.nodes[p]) for i in kept for p in self.parents[i]]
        names = {self.nodes[i]: self.names[i] for i in kept}
        roots = [self.nodes[i] for i in kept if not self.parents[i]]
        if len(roots) > 1:
            edges += [(root, VIRTUAL_ROOT) for root in roots]
            names[VIRTUAL_ROOT] = VIRTUAL_ROOT
        return _build(names, edges)


def _build(names: dict[str, str], edges: Sequence[tuple[str, str]]) -> Hierarchy:
    """A `Hierarchy` from ``{node: name}`` and (child, parent) edges over those nodes."""
    nodes = tuple(sorted(names))
    index = {node: i for i, node in enumerate(nodes)}
    parents: list[set[int]] = [set() for _ in nodes]
    for child, parent in edges:
        if child == parent:
            raise HierarchyError(f"node {child!r} is its own parent")
        parents[index[child]].add(index[parent])
    hierarchy = Hierarchy(nodes, tuple(names[n] for n in nodes), tuple(tuple(sorted(p)) for p in parents))
    _ = hierarchy.depth  # raises on a cycle now rather than in the middle of an analysis
    return hierarchy


def hierarchy_from_edges(table: pd.DataFrame, source: str = "hierarchy", *, own_table: bool = False) -> Hierarchy:
    """Build a hierarchy from an edge table.

    Parameters
    ----------
    table
        Columns ``node`` (or ``class``), ``parent`` and optionally ``name``: one row per
        (node, parent) edge; an empty parent marks a root row. Every parent becomes a node
        (a root if it has no row of its own). A node's name is the first non-empty
        ``name`` of its rows, else its id.
    source
        Where the table comes from, for error messages.
    own_table
        The table is one this package wrote (``semantics/hierarchy.csv``), which may hold
        the virtual root; in any other table that id is refused.
    """
    key = "node" if "node" in table.columns else "class" if "class" in table.columns else None
    if key is None or "parent" not in table.columns:
        raise HierarchyError(f"{source}: needs columns class (or node) and parent; it has {list(table.columns)}")
    table = table.fillna("").astype(str)
    child = table[key].str.strip()
    parent = table["parent"].str.strip()
    if (child == "").any():
        rows = list(np.flatnonzero(child == "")[:5] + 2)
        raise HierarchyError(f"{source}: empty {key} on line(s) {rows}")
    if not own_table and VIRTUAL_ROOT in set(child) | set(parent):
        raise HierarchyError(f"{source}: {VIRTUAL_ROOT!r} is reserved for the virtual root")
    names: dict[str, str] = {}
    given = table["name"].str.strip() if "name" in table.columns else pd.Series("", index=table.index)
    for node, name in zip(child, given):
        if node not in names or (not names[node] and name):
            names[node] = name
    for node in parent[parent != ""]:
        names.setdefault(node, "")
    names = {node: name or node for node, name in names.items()}
    edges = list(dict.fromkeys((c, p) for c, p in zip(child, parent) if p))
    return _build(names, edges)


def read_hierarchy_csv(path: PathLike) -> Hierarchy:
    """A user hierarchy CSV (``class,parent[,name]``, one row per edge)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"semantics.hierarchy: {path} does not exist")
    return hierarchy_from_edges(pd.read_csv(path, dtype=str, keep_default_na=False), str(path))


@dataclass(frozen=True)
class ClassHierarchy:
    """A hierarchy restricted to a dataset's classes, with what the analysis needs.

    Attributes
    ----------
    hierarchy
        The classes' nodes and all their ancestors (and a virtual root where needed).
    class_node
        int (classes,): the node of each class label.
    """

    hierarchy: Hierarchy
    class_node: np.ndarray

    def __post_init__(self) -> None:
        nodes = np.asarray(self.class_node)
        if nodes.ndim != 1 or len(nodes) < 2:
            raise HierarchyError("a class hierarchy needs at least 2 classes")
        if len(np.unique(nodes)) != len(nodes):
            dup = pd.Series(nodes).value_counts()
            raise HierarchyError(f"several classes share the node {self.hierarchy.nodes[int(dup.index[0])]!r}")
        roots = [i for i, p in enumerate(self.hierarchy.parents) if not p]
        if len(roots) != 1:
            raise HierarchyError(f"a class hierarchy needs one root, it has {len(roots)}")

    @property
    def n_classes(self) -> int:
        return len(self.class_node)

    @property
    def depth(self) -> np.ndarray:
        """int (nodes,): see `Hierarchy.depth`."""
        return self.hierarchy.depth

    @cached_property
    def up(self) -> np.ndarray:
        """int32 (classes, nodes): parent links from each class up to each node, `UNREACHABLE` if not above it."""
        up = np.full((self.n_classes, len(self.hierarchy)), UNREACHABLE, dtype=np.int32)
        for c, node in enumerate(self.class_node):
            for ancestor, dist in self.hierarchy.up_distances(int(node)).items():
                up[c, ancestor] = dist
        return up

    @cached_property
    def covers(self) -> np.ndarray:
        """bool (classes, nodes): node v is class c's node or one of its ancestors."""
        return self.up < UNREACHABLE

    @cached_property
    def classes_under(self) -> np.ndarray:
        """int (nodes,): how many of the dataset's classes each node covers."""
        return self.covers.sum(axis=0)

    @cached_property
    def distance(self) -> np.ndarray:
        """int64 (classes, classes): path distance between the classes' nodes (0 on the diagonal)."""
        up = self.up.astype(np.int64)
        out = np.empty((self.n_classes, self.n_classes), dtype=np.int64)
        for c in range(self.n_classes):
            above = np.flatnonzero(self.covers[c])  # a common ancestor is above c: ~20 nodes, not all
            out[c] = (up[c, above][None, :] + up[:, above]).min(axis=1)
        return out

    def level_groups(self, depth: int) -> np.ndarray:
        """int (classes,): node index of each class's hierarchy cut at ``depth``.

        The node at ``depth`` on the class's canonical path (the class itself when it is
        not that deep).
        """
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        node_depth = self.hierarchy.depth
        parent = self.hierarchy.canonical_parent
        out = np.empty(self.n_classes, dtype=np.int64)
        for c, node in enumerate(self.class_node):
            node = int(node)
            while node_depth[node] > depth:
                node = int(parent[node])
            out[c] = node
        return out

    def to_table(self, class_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """The edge table written to ``semantics/hierarchy.csv``.

        Columns ``node, parent, name, depth, label`` (label: the class label whose node it
        is, empty otherwise; a root has one row with an empty parent).
        """
        h = self.hierarchy
        label_of = {int(node): c for c, node in enumerate(self.class_node)}
        rows = []
        for i, node in enumerate(h.nodes):
            label = str(label_of[i]) if i in label_of else ""
            for parent in h.parents[i] or (None,):
                rows.append((node, "" if parent is None else h.nodes[parent], h.names[i], int(h.depth[i]), label))
        return pd.DataFrame(rows, columns=["node", "parent", "name", "depth", "label"])


def class_hierarchy(hierarchy: Hierarchy, class_nodes: Sequence[str]) -> ClassHierarchy:
    """Restrict ``hierarchy`` to the nodes of a dataset's classes (in label order)."""
    restricted = hierarchy.restrict(list(class_nodes))
    return ClassHierarchy(restricted, np.array([restricted.index[n] for n in class_nodes], dtype=np.int64))


def read_class_hierarchy(path: PathLike) -> ClassHierarchy:
    """Read ``semantics/hierarchy.csv`` (see `ClassHierarchy.to_table`)."""
    path = Path(path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("node", "parent", "name", "label") if c not in table.columns]
    if missing:
        raise HierarchyError(f"{path}: lacks columns {missing}")
    if table.empty:
        raise HierarchyError(f"{path}: the dataset has no class hierarchy (the semantics stage was skipped)")
    hierarchy = hierarchy_from_edges(table[["node", "parent", "name"]], str(path), own_table=True)
    labelled = table[table["label"] != ""].drop_duplicates("node")
    labels = labelled["label"].astype(int).to_numpy()
    if sorted(labels) != list(range(len(labels))):
        raise HierarchyError(f"{path}: class labels must be 0..{len(labels) - 1}, each on one node")
    order = np.argsort(labels)
    nodes = labelled["node"].to_numpy()[order]
    return ClassHierarchy(hierarchy, np.array([hierarchy.index[n] for n in nodes], dtype=np.int64))
