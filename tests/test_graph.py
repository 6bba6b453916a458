"""The skeleton graph of every built-in layout (train/models/graph.py) and the joint/bone/motion streams (train/sources/streams.py)."""

from __future__ import annotations

import numpy as np
import pytest

from etl.common.errors import ActrecError
from etl.pose.skeleton import LAYOUTS, get_layout
from train.models.graph import (
    PYSKL_BONE_PAIRS,
    bone_parents,
    center_index,
    graph_edges,
    hop_distance,
    inward_edges,
    spatial_adjacency,
)
from train.sources.streams import STREAMS, bones, motion, stream

ALL = sorted(LAYOUTS)


@pytest.mark.parametrize("name", ALL)
def test_layout_names_a_centre_joint(name):
    layout = get_layout(name)
    assert layout.center in layout.joints
    # the centre is the root: no inward edge leaves it
    assert all(child != center_index(layout) for child, _ in inward_edges(layout))


@pytest.mark.parametrize("name", ALL)
def test_graph_is_connected_and_every_edge_is_a_joint_pair(name):
    layout = get_layout(name)
    edges = graph_edges(layout)
    assert all(0 <= a < layout.n_joints and 0 <= b < layout.n_joints and a != b for a, b in edges)
    assert (hop_distance(layout.n_joints, edges, center_index(layout)) >= 0).all()


@pytest.mark.parametrize("name", ALL)
def test_spatial_adjacency_is_symmetric_and_normalised(name):
    layout = get_layout(name)
    a = spatial_adjacency(layout)
    v = layout.n_joints
    assert a.shape == (3, v, v)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a[0], np.eye(v))
    inward, outward = a[1] > 0, a[2] > 0
    # outward is inward reversed; together they are the undirected graph: symmetric, no self loops
    np.testing.assert_array_equal(inward, outward.T)
    neighbours = inward | outward
    np.testing.assert_array_equal(neighbours, neighbours.T)
    assert not neighbours.diagonal().any()
    # each column that receives anything sums to 1 (PYSKL's normalize_digraph)
    for k in (1, 2):
        cols = a[k].sum(axis=0)
        np.testing.assert_allclose(cols[cols > 0], 1.0, rtol=1e-6)
    # the centre only sends inward (it has no parent), and every other joint has one
    c = center_index(layout)
    assert a[1][:, c].sum() == 0
    assert all(a[1][:, w].sum() > 0 for w in range(v) if w != c)


def test_coco_graph_is_pyskls():
    """PYSKL's 'spatial' coco graph, hand-read from pyskl/utils/graph.py: a few entries and the degree counts."""
    a = spatial_adjacency(get_layout("coco17"))
    # inward (child -> parent): A[parent, child] = 1; left_wrist (9) -> left_elbow (7), left_hip (11) -> l_shoulder
    assert a[1][7, 9] == 1.0
    assert a[1][5, 11] == 1.0
    assert a[1][11, 12] == 0.0
    # outward: the nose sends to 4 children (eyes, shoulders): each column of a parent is 1/children
    np.testing.assert_allclose(a[2][[1, 2, 5, 6], 0], 0.25)
    # columns normalised: inward sums to one per child (16 edges), outward to one per joint with children (11)
    assert a[1].sum() == pytest.approx(16)
    assert a[2].sum() == pytest.approx(11)


@pytest.mark.parametrize("name", ALL)
def test_bone_parents_cover_every_joint_once_and_reach_the_root(name):
    layout = get_layout(name)
    parents = bone_parents(layout)
    assert len(parents) == layout.n_joints  # one parent per joint: every joint is a bone's child exactly once
    roots = [v for v, p in enumerate(parents) if v == p]
    assert len(roots) == 1
    for v in range(layout.n_joints):  # following parents ends at the root without cycling
        seen = set()
        while parents[v] != v:
            assert v not in seen
            seen.add(v)
            v = parents[v]
        assert v == roots[0]


def test_bone_parents_are_pyskls_where_pyskl_has_the_layout():
    for name, pairs in PYSKL_BONE_PAIRS.items():
        assert set(enumerate(bone_parents(get_layout(name)))) == set(pairs)
    assert bone_parents(get_layout("coco17"))[11] == 0  # PYSKL hangs the hips on the nose
    # penn13 (not in PYSKL): breadth-first from the head; left_hip (7) via left_shoulder (1)
    assert bone_parents(get_layout("penn13"))[:8] == (0, 0, 0, 1, 2, 3, 4, 1)


def test_unlinked_parts_are_joined():
    layout = get_layout("coco_wholebody133")
    edges = set(graph_edges(layout))
    assert (91, 9) in edges
    assert (112, 10) in edges
    assert (23, 0) in edges  # the first face point hangs on the nose


# ------------------------------------------------------------------------------------------------ streams

# 1 person, 2 frames, 3 joints (root 0, 1 -> 0, 2 -> 1), x, y, score
X = np.array(
    [
        [
            [[0.0, 0.0, 1.0], [1.0, 2.0, 0.5], [3.0, 5.0, 0.0]],
            [[1.0, 1.0, 0.8], [1.0, 4.0, 0.5], [2.0, 2.0, 0.4]],
        ]
    ],
    dtype=np.float32,
)
PARENTS = (0, 0, 1)


def test_bones_by_hand():
    b = bones(X, PARENTS, has_score=True)
    # frame 0: root 0 -> (0, 0, score 1); joint 1 - joint 0 = (1, 2), score (0.5 + 1) / 2; joint 2 - joint 1 = (2, 3)
    np.testing.assert_allclose(b[0, 0], [[0, 0, 1.0], [1, 2, 0.75], [2, 3, 0.25]])
    np.testing.assert_allclose(b[0, 1], [[0, 0, 0.8], [0, 3, 0.65], [1, -2, 0.45]])
    # 3D: the third channel is a coordinate, differenced like the others
    np.testing.assert_allclose(
        bones(X, PARENTS, has_score=False)[0, 0], [[0, 0, 0], [1, 2, -0.5], [2, 3, -0.5]]
    )


def test_motion_by_hand():
    m = motion(X, has_score=True)
    np.testing.assert_allclose(m[0, 0], [[1, 1, 0.9], [0, 2, 0.5], [-1, -3, 0.2]])
    np.testing.assert_array_equal(m[0, 1], 0)  # the last frame has no successor
    np.testing.assert_allclose(motion(X, has_score=False)[0, 0, :, 2], [-0.2, 0.0, 0.4], atol=1e-7)


def test_streams_compose():
    np.testing.assert_array_equal(stream(X, "j", PARENTS, True), X)
    np.testing.assert_array_equal(stream(X, "b", PARENTS, True), bones(X, PARENTS, True))
    np.testing.assert_array_equal(stream(X, "jm", PARENTS, True), motion(X, True))
    np.testing.assert_array_equal(stream(X, "bm", PARENTS, True), motion(bones(X, PARENTS, True), True))
    assert STREAMS == ("j", "b", "jm", "bm")


def test_stream_refusals_are_one_line():
    with pytest.raises(ActrecError, match="unknown stream 'x'"):
        stream(X, "x", PARENTS, True)
    with pytest.raises(ActrecError, match=r"\(M, T, V, C\)"):
        bones(X[0], PARENTS, True)
    with pytest.raises(ActrecError, match="C == 3"):
        motion(X[..., :2], has_score=True)


def test_a_layout_without_centre_is_refused_in_one_line():
    from dataclasses import replace

    with pytest.raises(ActrecError, match="names no centre joint"):
        spatial_adjacency(replace(get_layout("coco17"), name="custom", center=""))
