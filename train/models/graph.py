"""The skeleton graph a graph network runs on, built from a layout (etl/pose/skeleton.py): edges, parent tree, adjacency.

Conventions follow PYSKL's `pyskl/utils/graph.py` (mode 'spatial'), which MMAction2 shares, so a PYSKL/MMAction2
ST-GCN++ checkpoint starts from the same graph:
- inward edges (child, parent) point towards the layout's `center` joint; outward edges are their reverse;
- `spatial_adjacency` stacks 3 subsets (self, inward, outward), each (V, V) and column-normalised: subset[k][u, w]
  is the weight joint u's features get in joint w's output (`out[w] = sum_u x[u] * A[k, u, w]`).
For the layouts PYSKL ships (coco, openpose, nturgb+d) its edge lists and bone pairs are kept verbatim: they differ
from our limbs (PYSKL's coco has no hip-hip edge and hangs the hips on the nose for bones).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from etl.common.errors import ActrecError
from etl.pose.skeleton import Layout

# PYSKL `Graph.get_layout` inward edges (0-based), where they differ from our limbs.
PYSKL_EDGES: dict[str, tuple[tuple[int, int], ...]] = {
    "coco17": ((15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8), (8, 6), (5, 0),
               (6, 0), (1, 0), (3, 1), (2, 0), (4, 2)),
    "openpose18": ((4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5), (8, 2), (5, 1),
                   (2, 1), (0, 1), (15, 0), (14, 0), (17, 15), (16, 14)),
}  # fmt: skip

# PYSKL `JointToBone` pairs (joint, parent); the root is its own parent (its bone is zero).
PYSKL_BONE_PAIRS: dict[str, tuple[tuple[int, int], ...]] = {
    "coco17": ((0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (5, 0), (6, 0), (7, 5), (8, 6), (9, 7), (10, 8), (11, 0),
               (12, 0), (13, 11), (14, 12), (15, 13), (16, 14)),
    "openpose18": ((0, 0), (1, 0), (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6), (8, 2), (9, 8), (10, 9),
                   (11, 5), (12, 11), (13, 12), (14, 0), (15, 0), (16, 14), (17, 15)),
    "ntu25": ((0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20), (9, 8), (10, 9),
              (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17), (19, 18), (21, 22),
              (20, 20), (22, 7), (23, 24), (24, 11)),
}  # fmt: skip

# Links that join parts a layout leaves unlinked (COCO-WholeBody: each hand root to its wrist). Any part still
# apart after these hangs on the centre by its first joint (the wholebody face points).
EXTRA_EDGES: dict[str, tuple[tuple[int, int], ...]] = {"coco_wholebody133": ((91, 9), (112, 10))}


def center_index(layout: Layout) -> int:
    if layout.center not in layout.joints:
        raise ActrecError(
            f"layout {layout.name!r} names no centre joint (center={layout.center!r}); a graph network needs one: "
            f"name one of its joints as its center (a built-in layout: etl/pose/skeleton.py; your own: `center:` in its YAML)"
        )
    return layout.joints.index(layout.center)


def _neighbours(n: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    nbrs: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        if a != b:
            nbrs[a].append(b)
            nbrs[b].append(a)
    return [sorted(set(v)) for v in nbrs]


def hop_distance(n: int, edges: list[tuple[int, int]], source: int) -> np.ndarray:
    """Breadth-first hops from `source` to every joint, (V,) int; -1 where unreachable."""
    nbrs = _neighbours(n, edges)
    hops = np.full(n, -1, dtype=np.int64)
    hops[source] = 0
    queue = deque([source])
    while queue:
        v = queue.popleft()
        for w in nbrs[v]:
            if hops[w] < 0:
                hops[w] = hops[v] + 1
                queue.append(w)
    return hops


def graph_edges(layout: Layout) -> list[tuple[int, int]]:
    """Undirected edges of the layout's graph (PYSKL's where it has the layout, else the limbs), connected."""
    edges = list(PYSKL_EDGES.get(layout.name, layout.limbs)) + list(EXTRA_EDGES.get(layout.name, ()))
    center = center_index(layout)
    while True:
        hops = hop_distance(layout.n_joints, edges, center)
        apart = np.flatnonzero(hops < 0)
        if apart.size == 0:
            return edges
        edges.append((int(apart[0]), center))


def inward_edges(layout: Layout) -> list[tuple[int, int]]:
    """(child, parent) per edge: the child is the end farther from the centre (ties: the higher joint index)."""
    edges = graph_edges(layout)
    hops = hop_distance(layout.n_joints, edges, center_index(layout))
    inward = []
    for a, b in edges:
        child, parent = (a, b) if (hops[a], a) > (hops[b], b) else (b, a)
        inward.append((child, parent))
    return inward


def bone_parents(layout: Layout) -> tuple[int, ...]:
    """parent[v] for the bone stream (bone v = joint v - joint parent[v]); the root (centre) is its own parent.

    PYSKL's `JointToBone` pairs where it has the layout, else the breadth-first tree from the centre over the graph
    (each joint's parent: its lowest-index neighbour one hop closer to the centre).
    """
    if layout.name in PYSKL_BONE_PAIRS:
        parents = dict(PYSKL_BONE_PAIRS[layout.name])
        return tuple(parents[v] for v in range(layout.n_joints))
    edges = graph_edges(layout)
    center = center_index(layout)
    hops = hop_distance(layout.n_joints, edges, center)
    nbrs = _neighbours(layout.n_joints, edges)
    return tuple(
        v if v == center else next(w for w in nbrs[v] if hops[w] == hops[v] - 1)
        for v in range(layout.n_joints)
    )


def _edge_matrix(edges: list[tuple[int, int]], n: int) -> np.ndarray:
    # PYSKL's edge2mat: edge (i, j) sets A[j, i]
    a = np.zeros((n, n))
    for i, j in edges:
        a[j, i] = 1.0
    return a


def _normalise_columns(a: np.ndarray) -> np.ndarray:
    col = a.sum(axis=0)
    return a / np.where(col > 0, col, 1.0)[None, :]


def spatial_adjacency(layout: Layout) -> np.ndarray:
    """PYSKL's 'spatial' graph, (3, V, V) float32: identity, normalised inward, normalised outward."""
    n = layout.n_joints
    inward = inward_edges(layout)
    outward = [(j, i) for i, j in inward]
    subsets = (
        np.eye(n),
        _normalise_columns(_edge_matrix(inward, n)),
        _normalise_columns(_edge_matrix(outward, n)),
    )
    return np.stack(subsets).astype(np.float32)
