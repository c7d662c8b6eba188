"""Concept names on the gallery cards and the neuron picture, and the gallery's concept filter."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from fakerun import make_fake_run
from test_gallery import browse, card_order, needs_chromium

from neurofacets import gallery
from neurofacets.neuron_figure import neuron_figure
from neurofacets.semantics.concepts import semantics_table
from neurofacets.semantics.hierarchy import class_hierarchy, hierarchy_from_edges

LAYER = "conv2_1"
# class00..class09 of the fake run: dogs, cats and one more animal; vehicles under "object"
EDGES = [("class00", "dog"), ("class01", "dog"), ("class02", "animal"), ("class03", "cat"), ("class04", "cat"),
         ("dog", "animal"), ("cat", "animal"), ("animal", "living"),
         *[(f"class{i:02d}", "vehicle") for i in range(5, 10)], ("vehicle", "object")]


def ancestors(node: str) -> set[str]:
    parents = [p for c, p in EDGES if c == node]
    return {node}.union(*(ancestors(p) for p in parents))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    fake = make_fake_run(tmp_path_factory.mktemp("run"))
    out = fake.out
    classes = [f"class{i:02d}" for i in range(10)]
    hierarchy = class_hierarchy(hierarchy_from_edges(pd.DataFrame(EDGES, columns=["class", "parent"])), classes)
    (out / "semantics").mkdir(parents=True)
    hierarchy.to_table().to_csv(out / "semantics" / "hierarchy.csv", index=False)
    table = semantics_table(LAYER, fake.cof[LAYER], hierarchy, np.repeat(np.arange(10), 20), share=0.6,
                            max_concept_classes=0.5, levels={}, draws=20, seed=0)
    table.to_csv(out / "semantics" / f"{LAYER}.csv", index=False)
    page_dir = gallery.build_layer_gallery(
        LAYER, out / "metrics" / "all_layers.csv", out / "model" / "layers.csv", out / "ica" / f"{LAYER}.zarr",
        out / "patches" / f"{LAYER}.zarr", out / "similarity" / f"{LAYER}.zarr", out / "gallery" / LAYER,
        run=fake.run, n_patches=2, semantics_csv=out / "semantics" / f"{LAYER}.csv",
        hierarchy_csv=out / "semantics" / "hierarchy.csv")
    gallery.write_assets(out / "gallery" / "assets")
    return fake, table, page_dir


def test_cards_show_the_concept(built):
    _, table, page_dir = built
    page = (page_dir / "index.html").read_text(encoding="utf-8")
    assert table["concept_name"].replace("", np.nan).notna().any()  # the fake data do have concepts
    for row in table.itertuples():
        card = re.search(rf'<article [^>]*id="n{row.neuron}"[^>]*>(.*?)</article>', page, re.S)
        assert card is not None
        if row.concept_label:
            assert f"<span class=\"label\">concept:</span> {row.concept_label}" in card.group(1)
        else:
            assert "none covers the share" in card.group(1)
    assert '<datalist id="concepts">' in page and 'id="concept"' in page


def test_layer_page_without_hierarchy_has_no_concept_filter(built, tmp_path):
    fake, _, _ = built
    out = fake.out
    page_dir = gallery.build_layer_gallery(
        LAYER, out / "metrics" / "all_layers.csv", out / "model" / "layers.csv", out / "ica" / f"{LAYER}.zarr",
        out / "patches" / f"{LAYER}.zarr", out / "similarity" / f"{LAYER}.zarr", tmp_path / LAYER,
        run=fake.run, n_patches=2)
    page = (page_dir / "index.html").read_text(encoding="utf-8")
    assert "data-concept" not in page and 'id="concept"' not in page


@needs_chromium
@pytest.mark.parametrize("query", ["animal", "Dog", "vehicle"])
def test_filter_by_concept_keeps_it_and_what_is_below(built, tmp_path, query):
    fake, table, page_dir = built
    dom, console = browse((page_dir / "index.html").as_uri() + f"#concept={query}", tmp_path / "p", "--dump-dom")
    assert console == []
    want = [int(r.neuron) for r in table.itertuples() if r.concept and query.lower() in ancestors(r.concept)]
    shown = [n for n, hidden in card_order(dom) if not hidden]
    assert shown == want
    assert f"{len(want)} of {len(table)} neurons shown" in dom


def test_neuron_picture_names_the_concept():
    rng = np.random.default_rng(0)
    patches = rng.integers(0, 255, size=(4, 5, 5, 3), dtype=np.uint8)
    ics = {"gray": rng.normal(size=(2, 5, 5)), "rgb": rng.normal(size=(2, 5, 5, 3)),
           "uint8": rng.integers(0, 255, size=(2, 5, 5, 3), dtype=np.uint8),
           "fits": {"gray": {"status": "ok", "n_iter": 3}}}
    metrics = {"mf": 0.5, "p_value": 0.1, "p_empirical": 0.1, "n_counted": 4, "top_classes": "[[\"a\", 4]]"}
    text = "concept: dog.n.01 (87 %), depth 13 · semantic facet: concept"
    fig = neuron_figure(patches, ics, metrics, layer="conv1", neuron=3, top_patches=4, concept=text)
    assert text in [t.get_text() for t in fig.texts]
