"""Concepts, spreads, level metrics and nulls against brute force on a small hand-made hierarchy."""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import pandas as pd
import pytest
from fakerun import flatness as brute_flatness
from fakerun import gini as brute_gini

from neurofacets.semantics.concepts import (
    chance_spread,
    find_concepts,
    level_metrics,
    null_draws,
    prefix_spread_sums,
    semantic_spread,
    semantics_table,
    spread_p_values,
)
from neurofacets.semantics.hierarchy import (
    VIRTUAL_ROOT,
    HierarchyError,
    class_hierarchy,
    hierarchy_from_edges,
    read_class_hierarchy,
)

# A DAG with multiple inheritance (robodog is a dog and a machine), classes at several
# depths and one class (food) right under the root.
EDGES = [
    ("animal", "living"), ("living", "thing"), ("machine", "thing"), ("food", "thing"),
    ("dog", "animal"), ("beagle", "dog"), ("husky", "dog"), ("cat", "animal"),
    ("vehicle", "machine"), ("car", "vehicle"), ("bike", "vehicle"),
    ("robodog", "dog"), ("robodog", "machine"), ("tabby", "cat"),
]
CLASSES = ["beagle", "husky", "tabby", "car", "bike", "robodog", "food"]


@pytest.fixture(scope="module")
def hierarchy():
    table = pd.DataFrame(EDGES, columns=["class", "parent"])
    return class_hierarchy(hierarchy_from_edges(table), CLASSES)


# ---- brute force, written from the definitions, independently of the package ----
PARENTS: dict[str, list[str]] = {}
for child, parent in EDGES:
    PARENTS.setdefault(child, []).append(parent)
NODES = sorted({n for e in EDGES for n in e})


def b_ancestors(node: str) -> set[str]:
    out = {node}
    for parent in PARENTS.get(node, []):
        out |= b_ancestors(parent)
    return out


@cache
def b_depth(node: str) -> int:
    return max((1 + b_depth(p) for p in PARENTS.get(node, [])), default=0)


def b_up(node: str, target: str) -> float:
    """Fewest parent links from node to target by enumerating every upward path."""
    if node == target:
        return 0
    return min((1 + b_up(p, target) for p in PARENTS.get(node, [])), default=float("inf"))


def b_distance(a: str, b: str) -> float:
    return min(b_up(a, v) + b_up(b, v) for v in b_ancestors(a) & b_ancestors(b))


def b_concept(row, share, max_classes):
    n = sum(row)
    if n == 0:
        return None, 0
    need = -(-round(share * n * 1000) // 1000)  # ceil of share * n for the shares used here
    candidates = []
    for node in NODES:
        under = [c for c in range(len(CLASSES)) if node in b_ancestors(CLASSES[c])]
        if len(under) > max_classes * len(CLASSES):
            continue
        coverage = sum(row[c] for c in under)
        if coverage >= need:
            candidates.append((-b_depth(node), -coverage, node))
    if not candidates:
        return None, 0
    best = min(candidates)
    return best[2], -best[1]


def b_spread(row):
    images = [c for c, count in enumerate(row) for _ in range(count)]
    pairs = list(itertools.combinations(images, 2))
    if not pairs:
        return float("nan")
    return float(np.mean([b_distance(CLASSES[a], CLASSES[b]) for a, b in pairs]))


def b_canonical_cut(node: str, depth: int) -> str:
    while b_depth(node) > depth:
        node = sorted(PARENTS[node], key=lambda p: (-b_depth(p), p))[0]
    return node


ROWS = np.array([
    [5, 4, 0, 0, 0, 1, 0],   # dogs: 10 images, concept dog (10/10)
    [8, 1, 1, 0, 0, 0, 0],   # beagle alone holds 80 %: SF
    [3, 3, 3, 0, 0, 0, 1],   # animals 9/10, but animal spans 4 of 7 classes: too general
    [0, 0, 0, 3, 3, 3, 1],   # machines 9/10 (robodog is a machine)
    [2, 2, 2, 2, 2, 0, 0],   # all over: only the root covers 80 %
    [0, 0, 0, 0, 0, 0, 0],   # dead
    [0, 0, 0, 0, 0, 0, 1],   # one image
    [1, 1, 1, 1, 0, 0, 1],   # 5 images: 4 needed, only too general nodes hold them
    [0, 0, 4, 0, 0, 0, 1],   # tabby 4 of 5 = 80 %: SF
], dtype=np.int64)


def test_structure_matches_brute_force(hierarchy):
    h = hierarchy.hierarchy
    assert set(h.nodes) == set(NODES)
    for node in NODES:
        assert h.depth[h.index[node]] == b_depth(node), node
        assert {h.nodes[a] for a in h.ancestors(h.index[node])} == b_ancestors(node)
    for a, b in itertools.product(range(len(CLASSES)), repeat=2):
        assert hierarchy.distance[a, b] == b_distance(CLASSES[a], CLASSES[b]), (CLASSES[a], CLASSES[b])
    assert hierarchy.distance[CLASSES.index("robodog"), CLASSES.index("car")] == 3  # via machine
    assert list(hierarchy.classes_under[[h.index["dog"], h.index["thing"]]]) == [3, 7]


@pytest.mark.parametrize("share, max_classes", [(0.8, 1.0), (0.8, 0.5), (0.6, 0.5), (1.0, 1.0), (0.5, 0.3)])
def test_concepts_match_brute_force(hierarchy, share, max_classes):
    found = find_concepts(ROWS, hierarchy, share, max_classes)
    h = hierarchy.hierarchy
    for i, row in enumerate(ROWS):
        node, coverage = b_concept(list(row), share, max_classes)
        assert (h.nodes[found.node[i]] if found.node[i] >= 0 else None) == node, (i, row)
        assert found.coverage[i] == coverage


def test_semantic_facets(hierarchy):
    found = find_concepts(ROWS, hierarchy, 0.8, 0.5)
    h = hierarchy.hierarchy
    assert list(found.facet) == ["concept", "SF", "MF", "concept", "MF", "dead", "SF", "MF", "SF"]
    assert [h.nodes[n] if n >= 0 else "" for n in found.node] == [
        "dog", "beagle", "", "machine", "", "", "food", "", "tabby"]
    # max_concept_classes 1: the root is admissible, so nothing is MF
    loose = find_concepts(ROWS, hierarchy, 0.8, 1.0)
    assert "MF" not in set(loose.facet) and h.nodes[loose.node[4]] == "thing"


def test_spread_matches_pairs_of_images(hierarchy):
    spread = semantic_spread(ROWS, hierarchy.distance)
    for value, row in zip(spread, ROWS):
        expected = b_spread(list(row))
        assert (np.isnan(value) and np.isnan(expected)) or value == pytest.approx(expected, abs=1e-12)


def test_chance_spread_is_the_mean_over_all_image_pairs(hierarchy):
    sizes = np.array([3, 1, 2, 2, 1, 1, 2])
    assert chance_spread(sizes, hierarchy.distance) == pytest.approx(b_spread(list(sizes)), abs=1e-12)


def _in_class_order(sizes) -> np.ndarray:
    """Each image's class, images listed class by class (one possible content order)."""
    return np.repeat(np.arange(len(sizes)), sizes)


def test_null_is_seeded_reproducible_and_centred_on_chance(hierarchy):
    sizes = np.array([30, 10, 20, 20, 10, 10, 20])
    images = _in_class_order(sizes)
    a = null_draws(images, 10, 4000, seed=3)
    np.testing.assert_array_equal(a, null_draws(images, 10, 4000, seed=3))
    assert not np.array_equal(a, null_draws(images, 10, 4000, seed=4))
    # sequences of distinct images: no class appears more often than it has images
    counts = np.stack([np.bincount(row, minlength=7) for row in a])
    assert (counts <= sizes).all()
    # each prefix is a uniform random set: class frequencies and mean spread match chance
    np.testing.assert_allclose(counts.mean(axis=0), 10 * sizes / sizes.sum(), rtol=0.05)
    sums = prefix_spread_sums(a, hierarchy.distance)
    chance = chance_spread(sizes, hierarchy.distance)
    for n in (2, 5, 10):
        assert (sums[:, n] / (n * (n - 1))).mean() == pytest.approx(chance, rel=0.03)
    p1 = spread_p_values(ROWS, images, hierarchy.distance, 500, seed=3)
    np.testing.assert_array_equal(p1, spread_p_values(ROWS, images, hierarchy.distance, 500, seed=3))


def test_null_draws_follow_the_images_not_the_class_numbers(hierarchy):
    """Renumbering the classes (the distances with them) renumbers the drawn classes and changes
    no p-value; the draws are positions in the images' order (issue 29 item 2)."""
    rng = np.random.default_rng(5)
    images = rng.permutation(_in_class_order([30, 10, 20, 20, 10, 10, 20]))  # a content order
    new_of_old = rng.permutation(7)  # class c is renumbered new_of_old[c]
    old_of_new = np.argsort(new_of_old)
    renumbered = new_of_old[images]
    distance = hierarchy.distance[np.ix_(old_of_new, old_of_new)]
    rows = ROWS[:, old_of_new]
    draws = null_draws(images, 12, 50, seed=2)
    np.testing.assert_array_equal(null_draws(renumbered, 12, 50, seed=2), new_of_old[draws])
    # the same positions of any order: the classes of the images at those positions
    positions = null_draws(np.arange(len(images)), 12, 50, seed=2)
    np.testing.assert_array_equal(draws, images[positions])
    p = spread_p_values(ROWS, images, hierarchy.distance, 300, seed=1, length=12)
    np.testing.assert_array_equal(spread_p_values(rows, renumbered, distance, 300, seed=1, length=12), p)
    # in class-number order the renumbering would move them (the draws before issue 29)
    assert not np.array_equal(spread_p_values(rows, np.sort(renumbered), distance, 300, seed=1, length=12),
                              spread_p_values(ROWS, np.sort(images), hierarchy.distance, 300, seed=1, length=12),
                              equal_nan=True)


def test_null_draws_refuse_bad_image_classes(hierarchy):
    with pytest.raises(ValueError, match="1-d array of class indices"):
        null_draws(np.array([[0, 1], [1, 0]]), 2, 3, seed=0)
    with pytest.raises(ValueError, match="1-d array of class indices"):
        null_draws(np.array([0, -1, 2]), 2, 3, seed=0)
    with pytest.raises(ValueError, match="1-d array of class indices"):
        null_draws(np.array([0.0, 1.0]), 2, 3, seed=0)
    with pytest.raises(ValueError, match="cannot draw 4 of 3 images"):
        null_draws(np.array([0, 1, 2]), 4, 3, seed=0)
    with pytest.raises(ValueError, match=r"holds class 7; the hierarchy's classes are 0\.\.6"):
        spread_p_values(ROWS, np.array([0, 7, 1] * 10), hierarchy.distance, 10, seed=0)


def test_prefix_sums_are_the_spread_of_each_prefix(hierarchy):
    sequences = null_draws(_in_class_order([3, 1, 2, 2, 1, 1, 2]), 12, 5, seed=0)
    sums = prefix_spread_sums(sequences, hierarchy.distance)
    for draw, row in zip(sums, sequences):
        for n in range(13):
            counts = np.bincount(row[:n], minlength=7)
            assert draw[n] == counts @ hierarchy.distance @ counts


def test_p_value_is_the_rank_among_the_draws(hierarchy):
    images = _in_class_order([30, 10, 20, 20, 10, 10, 20])
    draws = 300
    p = spread_p_values(ROWS, images, hierarchy.distance, draws, seed=1, length=12)
    null = prefix_spread_sums(null_draws(images, 12, draws, seed=1), hierarchy.distance)
    for i, row in enumerate(ROWS):
        n = row.sum()
        if n < 2:
            assert np.isnan(p[i])
            continue
        observed = int(row @ hierarchy.distance @ row)
        assert p[i] == (1 + sum(int(x) <= observed for x in null[:, n])) / (1 + draws)
    assert p[0] < 0.05 and p[4] > 0.05  # the dog neuron is narrower than chance, the spread one is not
    with pytest.raises(ValueError, match="more than the null's"):
        spread_p_values(ROWS, images, hierarchy.distance, draws, seed=1, length=5)


@pytest.mark.parametrize("depth", [0, 1, 2, 3, 4])
def test_level_metrics_match_brute_force(hierarchy, depth):
    groups = hierarchy.level_groups(depth)
    h = hierarchy.hierarchy
    assert [h.nodes[g] for g in groups] == [b_canonical_cut(c, depth) for c in CLASSES]
    metrics = level_metrics(ROWS, groups)
    names = sorted(set(groups))
    if len(names) < 2:
        assert metrics is None
        return
    for i, row in enumerate(ROWS):
        merged = np.array([sum(row[c] for c in range(len(CLASSES)) if groups[c] == g) for g in names])
        expected_g, expected_f = brute_gini(merged), brute_flatness(merged)
        assert metrics["sparsity"][i] == pytest.approx(expected_g, nan_ok=True, abs=1e-12)
        assert metrics["flatness"][i] == pytest.approx(expected_f, abs=1e-12)


def test_canonical_path_prefers_the_deeper_parent(hierarchy):
    h = hierarchy.hierarchy
    # robodog's parents: dog (depth 3) and machine (depth 1): the cut at depth 2 goes via dog
    assert h.nodes[hierarchy.level_groups(2)[CLASSES.index("robodog")]] == "animal"


def test_table_and_roundtrip(hierarchy, tmp_path):
    images = _in_class_order([30, 10, 20, 20, 10, 10, 20])
    levels = {"depth2": hierarchy.level_groups(2), "coarse": np.array(list("aabbbbc"))}
    table = semantics_table("conv1", ROWS, hierarchy, images, share=0.8, max_concept_classes=0.5,
                            levels=levels, draws=50, seed=0)
    assert list(table["concept_label"][:3]) == ["dog (100 %)", "beagle (80 %)", ""]
    assert table.loc[5, "semantic_facet"] == "dead" and np.isnan(table.loc[5, "spread"])
    assert {"sparsity_depth2", "mf_coarse", "flatness_coarse"} <= set(table.columns)
    assert table["concept_depth"].iloc[0] == b_depth("dog")
    path = tmp_path / "hierarchy.csv"
    hierarchy.to_table().to_csv(path, index=False)
    again = read_class_hierarchy(path)
    np.testing.assert_array_equal(again.distance, hierarchy.distance)
    assert again.hierarchy.nodes == hierarchy.hierarchy.nodes


def test_several_roots_get_a_virtual_root():
    table = pd.DataFrame([("a", "r1"), ("b", "r2"), ("c", "r2")], columns=["class", "parent"])
    ch = class_hierarchy(hierarchy_from_edges(table), ["a", "b", "c"])
    assert VIRTUAL_ROOT in ch.hierarchy.nodes
    assert ch.distance[0, 1] == 4 and ch.distance[1, 2] == 2


def test_bad_hierarchies_are_refused():
    with pytest.raises(HierarchyError, match="cycle"):
        hierarchy_from_edges(pd.DataFrame([("a", "b"), ("b", "c"), ("c", "a")], columns=["class", "parent"])).depth
    with pytest.raises(HierarchyError, match="class .or node. and parent"):
        hierarchy_from_edges(pd.DataFrame({"child": ["a"], "up": ["b"]}))
    with pytest.raises(HierarchyError, match="not in the hierarchy"):
        class_hierarchy(hierarchy_from_edges(pd.DataFrame([("a", "b")], columns=["class", "parent"])), ["a", "z"])
    with pytest.raises(HierarchyError, match="share the node"):
        class_hierarchy(hierarchy_from_edges(pd.DataFrame([("a", "b")], columns=["class", "parent"])), ["a", "a"])
