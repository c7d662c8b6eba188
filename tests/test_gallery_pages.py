"""The gallery's pages rendered from small fixed tables, read back as a tree and compared to what
they must show (every value written out by hand), hostile names included."""

from __future__ import annotations

import html.parser
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from neurofacets import __version__
from neurofacets.figures import style
from neurofacets.gallery import (
    render_index_page,
    render_layer_page,
    render_similarity_page,
)
from neurofacets.gallery.pages import css_gradient
from neurofacets.semantics.display import NeuronConcept

RUN = 'r<&>"\'1'
LAYERS = ["conv1", 'l<&"\'2', "conv3"]
LAYER = LAYERS[1]
NAMES = ["<script>alert(1)</script>", "a&b", 'say "hi"', "it's", "$x^$", "café", "seventh"]


def top_classes(pairs) -> str:
    return json.dumps([[name, count] for name, count in pairs])


TABLE = pd.DataFrame({
    "neuron": [0, 1, 2],
    "facet": ["MF", "SF", "dead"],
    "mf": [math.inf, 0.12345678, np.nan],
    "mf_norm": [1.0, 0.0625, np.nan],
    "sparsity": [0.1, 0.85, np.nan],
    "flatness": [0.9, 0.105, 0.5],  # a dead neuron's flatness is never shown
    "p_value": [0.01234, np.nan, np.nan],
    "n_counted": [28, 6, 0],
    "top_classes": [top_classes(zip(NAMES, [7, 6, 5, 4, 3, 2, 1])), top_classes([(NAMES[1], 6)]), ""],
})
SIMILAR = [[(1, 0.5), (2, -0.254)], [(0, 0.5)], []]
NEAREST = [[(1, 2.0), (2, 12.3456)], [(0, 2.0)], []]
CONCEPTS = {
    0: NeuronConcept(name='d"o<g', label='d"o<g (87 %)', facet="concept", path=("(root)", "an&imal", 'd"o<g'),
                     terms=("(root)", "an&imal", 'd"o<g')),
    1: NeuronConcept(name="", label="", facet="SF", path=(), terms=()),
}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list = field(default_factory=list)  # Node or str

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        found = []
        for c in self.children:
            if isinstance(c, Node):
                if c.tag == tag and all(c.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                    found.append(c)
                found.extend(c.find_all(tag, **attrs))
        return found

    def find(self, tag: str, **attrs: str) -> Node:
        (found,) = self.find_all(tag, **attrs)
        return found

    def links(self) -> list[tuple[str, str]]:
        return [(a.attrs["href"], a.text()) for a in self.find_all("a")]


VOID = {"meta", "link", "img", "input", "br"}


class TreeBuilder(html.parser.HTMLParser):
    """The page as nested Nodes; fails on a tag closed out of order (the page is well formed)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag):
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def tree(page: str) -> Node:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    assert builder.stack == [builder.root], "unclosed elements"
    return builder.root


def check_frame(page: str, title: str, root: str) -> Node:
    """The common frame (doctype, title, assets); return the body."""
    assert page.startswith("<!DOCTYPE html>\n<html lang=\"en\">\n") and page.endswith("</body>\n</html>\n")
    # escaped the way html.escape does, never markupsafe's numeric entities
    assert "&#34;" not in page and "&#39;" not in page and "<script>alert" not in page
    doc = tree(page)
    assert doc.find("title").text() == title
    assert [(link.attrs["rel"], link.attrs["href"]) for link in doc.find_all("link")] == [
        ("icon", "data:,"), ("stylesheet", f"{root}assets/gallery.css")]
    assert doc.find("script").attrs["src"] == f"{root}assets/gallery.js"
    return doc.find("body")


@pytest.fixture(scope="module")
def layer_page() -> str:
    return render_layer_page(RUN, LAYERS, LAYER, TABLE, 4, (124, 82), SIMILAR,
                             ["ok", "not_converged: red", ""], CONCEPTS)


def test_layer_page_frame_navigation_and_controls(layer_page):
    body = check_frame(layer_page, f"{LAYER} · neurofacets gallery · {RUN}", "../")
    nav = body.find("nav", **{"class": "crumbs"})
    assert nav.text().startswith(f"run {RUN} · ")
    assert nav.links() == [("../index.html", "all layers"), ("../conv1/index.html", "← conv1"),
                           ("../conv3/index.html", "conv3 →"), ("similarity.html", f"similarity heatmaps of {LAYER}")]
    assert body.find("h1").text() == f"{LAYER}: 3 neurons"
    assert body.find("p", **{"class": "note"}).text().startswith("1 multi-faceted, 1 single-faceted, 1 dead.\n")
    assert body.find("img", **{"class": "overview"}).attrs["alt"].endswith(f" in {LAYER}")
    checkboxes = [(i.attrs["value"], label.text()) for label in body.find_all("fieldset")[0].find_all("label")
                  for i in label.find_all("input")]
    assert checkboxes == [("MF", " multi-faceted (MF) (1)"), ("SF", " single-faceted (SF) (1)"), ("dead", " dead (1)")]
    options = [(o.attrs["value"], o.text()) for o in body.find("datalist", id="concepts").find_all("option")]
    assert options == [('d"o<g', "1 neurons")]  # the neuron without a concept offers none
    assert body.find("output", id="shown").text() == "3 of 3 neurons shown"
    assert [o.attrs["value"] for o in body.find("select", id="sort").find_all("option")] == [
        "neuron-asc", "mf-desc", "mf-asc", "sparsity-desc", "flatness-desc", "p-asc"]


def card_structure(card: Node) -> dict:
    """What one card says, as plain values."""
    paragraphs = {p.attrs["class"]: p for p in card.find_all("p")}
    terms = [dt.text() for dt in card.find_all("dt")]
    values = [(dd.text(), dd.attrs.get("class")) for dd in card.find_all("dd")]
    img = card.find("img", **{"class": "strip"})
    return {
        "data": {k[5:]: v for k, v in card.attrs.items() if k.startswith("data-")},
        "heading": card.find("h2").text(),
        "stats": dict(zip(terms, values)),
        "image": (img.attrs["src"], img.attrs["width"], img.attrs["height"], img.attrs["loading"]),
        "classes": (paragraphs["classes"].attrs["title"], paragraphs["classes"].text()),
        "concept": (paragraphs["concept"].attrs["title"], paragraphs["concept"].text())
        if "concept" in paragraphs else None,
        "links": paragraphs["links"].links(),
    }


def test_layer_page_cards_show_the_fixed_table(layer_page):
    cards = tree(layer_page).find("section", id="cards").find_all("article")
    assert [c.attrs["id"] for c in cards] == ["n0", "n1", "n2"]
    got = [card_structure(c) for c in cards]
    all_classes = ', '.join(f"{n} ({c})" for n, c in zip(NAMES, [7, 6, 5, 4, 3, 2, 1]))
    assert got[0] == {
        "data": {"neuron": "0", "facet": "MF", "mf": "Infinity", "mf-norm": "1", "sparsity": "0.1",
                 "flatness": "0.9", "p": "0.01234", "concept": '(root) an&imal d"o<g'},
        "heading": "#0 MFp = 0.012",
        "stats": {"MF degree": ("∞", None), "normalised": ("1.000", None), "sparsity": ("0.100", None),
                  "flatness": ("0.900", None), "counted": ("28", None), "ICA": ("ok", None)},
        "image": ("cards/n0000.png", "124", "82", "lazy"),
        "classes": (all_classes, ("top classes: <script>alert(1)</script> (7), a&b (6), say \"hi\" (5), it's (4), "
                                  "$x^$ (3), … 2 more")),
        "concept": ('(root) › an&imal › d"o<g', 'concept: d"o<g (87 %) concept'),
        "links": [("similarity.html#n0", "row in the similarity heatmaps"), ("#n1", "#1"), ("#n2", "#2")],
    }
    assert cards[0].find("p", **{"class": "links"}).text().endswith("most similar: #1 0.50, #2 -0.25")
    assert got[1] == {
        "data": {"neuron": "1", "facet": "SF", "mf": "0.123457", "mf-norm": "0.0625", "sparsity": "0.85",
                 "flatness": "0.105", "p": "", "concept": ""},
        "heading": "#1 SFICA not converged",
        "stats": {"MF degree": ("0.123", None), "normalised": ("0.062", None), "sparsity": ("0.850", None),
                  "flatness": ("0.105", None), "counted": ("6", None), "ICA": ("not converged: red", "ica-warn")},
        "image": ("cards/n0001.png", "124", "82", "lazy"),
        "classes": ("a&b (6)", "top classes: a&b (6)"),
        "concept": ("", "concept: none covers the share SF"),
        "links": [("similarity.html#n1", "row in the similarity heatmaps"), ("#n0", "#0")],
    }
    assert got[2] == {
        "data": {"neuron": "2", "facet": "dead", "mf": "", "mf-norm": "", "sparsity": "", "flatness": "", "p": ""},
        "heading": "#2 dead",
        "stats": {"MF degree": ("–", None), "normalised": ("–", None), "sparsity": ("–", None),
                  "flatness": ("–", None), "counted": ("0", None), "ICA": ("–", None)},
        "image": ("cards/n0002.png", "124", "82", "lazy"),
        "classes": ("", "top classes: none (dead neuron)"),
        "concept": None,  # no concept given for this neuron
        "links": [("similarity.html#n2", "row in the similarity heatmaps")],
    }
    assert cards[2].find("p", **{"class": "links"}).text().endswith("most similar: –")
    assert cards[1].find("span", **{"class": "ica-warn"}).attrs["title"] == "an ICA fit of this neuron did not converge"


def test_layer_page_without_concepts_or_ica_status():
    page = render_layer_page(RUN, ["only"], "only", TABLE, 5, (10, 20), SIMILAR)
    body = tree(page).find("body")
    assert body.find("nav").links() == [("../index.html", "all layers"), ("similarity.html", "similarity heatmaps of only")]
    assert not body.find_all("datalist") and "data-concept" not in page and 'class="concept"' not in page
    # no evaluation given: no held-out line, sort or filter
    assert 'id="holds"' not in page and "data-holds" not in page and 'class="heldout"' not in page
    assert "auroc-desc" not in page and "held-out" not in page
    assert [dd.text() for dd in body.find_all("dd")][5::6] == ["–", "–", "–"]  # ICA status unknown
    assert [img.attrs["src"] for img in body.find_all("img", **{"class": "strip"})] == [
        "cards/n00000.png", "cards/n00001.png", "cards/n00002.png"]


# the layer's rows of evaluation/all_layers.csv: a label that holds, one that does not, a dead neuron
EVALUATION = pd.DataFrame({
    "neuron": [0, 1, 2],
    "auroc": [0.8349, 0.55, np.nan],
    "auroc_chance": [0.5051, 0.498, np.nan],
    "label_holds": [True, False, False],
    "selectivity_q": [0.00312, 0.4, np.nan],
    "facet_0": ["MF", "SF", "dead"],
    "facet_1": ["MF", "MF", "dead"],
    "concept_agrees": [1.0, 0.0, np.nan],
})


def test_layer_page_cards_show_the_held_out_score_and_the_filter_on_labels_that_hold():
    page = render_layer_page(RUN, LAYERS, LAYER, TABLE, 4, (124, 82), SIMILAR, evaluation=EVALUATION)
    body = check_frame(page, f"{LAYER} · neurofacets gallery · {RUN}", "../")
    holds = body.find("input", id="holds")
    assert holds.attrs["type"] == "checkbox" and "checked" not in holds.attrs
    label = next(label for label in body.find("form", id="controls").find_all("label")
                 if label.find_all("input", id="holds"))
    assert label.text() == " only labels that hold on held-out images (1)"
    assert [o.attrs["value"] for o in body.find("select", id="sort").find_all("option")][-1] == "auroc-desc"
    assert "held-out AUROC" in body.find("p", **{"class": "note"}).text()
    cards = body.find("section", id="cards").find_all("article")
    assert [(c.attrs["data-auroc"], c.attrs["data-holds"]) for c in cards] == [("0.8349", "1"), ("0.55", "0"), ("", "0")]
    lines = [c.find("p", **{"class": "heldout"}) for c in cards]
    assert [line.text() for line in lines] == [
        "held-out AUROC 0.83 (chance 0.51) label holds · selectivity q = 0.0031 · MF on both halves, concepts agree",
        "held-out AUROC 0.55 (chance 0.50) label does not hold · selectivity q = 0.4 · halves SF / MF, concepts differ",
        "held-out AUROC – (chance –) no label · selectivity q = – · dead on both halves",
    ]
    assert [line.find_all("span")[1].attrs["class"] for line in lines] == [
        "verdict holds", "verdict fails", "verdict none"]


def test_layer_page_refuses_an_evaluation_of_other_neurons():
    with pytest.raises(ValueError, match="does not hold its 3 neurons"):
        render_layer_page(RUN, LAYERS, LAYER, TABLE, 4, (124, 82), SIMILAR, evaluation=EVALUATION.iloc[::-1])


def test_similarity_page_shows_heatmaps_and_neighbour_table():
    page = render_similarity_page(RUN, LAYERS, "conv3", TABLE, np.array([False, False, True]), 12.3456,
                                  SIMILAR, NEAREST)
    body = check_frame(page, f"conv3 similarity · neurofacets gallery · {RUN}", "../")
    assert body.find("nav").links() == [("../index.html", "all layers"), (f"../{LAYER}/similarity.html", f"← {LAYER}"),
                                        ("index.html", "neuron cards of conv3")]
    assert "Excluded for a constant row (e.g. dead): 1 of 3 neurons." in body.find("p", **{"class": "note"}).text()
    figures = body.find_all("figure")
    assert [(f.attrs["data-neurons"], *(f.find("img").attrs[k] for k in ("src", "width", "height", "alt")))
            for f in figures] == [
        ("3", "pearson.png", "3", "3", "Similarity: Pearson correlation of CoF rows heatmap of conv3"),
        ("3", "euclidean.png", "3", "3", "Dissimilarity: Euclidean distance of CoF rows heatmap of conv3")]
    captions = [f.find("figcaption").text() for f in figures]
    assert captions[0].startswith("Similarity: Pearson correlation of CoF rows. Row and column i are neuron i. −11; ")
    assert captions[1].startswith("Dissimilarity: Euclidean distance of CoF rows. Row and column i are neuron i. 012.3; ")
    scales = [f.find("span", **{"class": "scale"}).attrs["style"] for f in figures]
    assert scales == [f"background: {css_gradient(style.PEARSON_CMAP)}", f"background: {css_gradient(style.EUCLIDEAN_CMAP)}"]
    assert scales[0].startswith("background: linear-gradient(to right, #053061 0%, ") and scales[0].endswith("#67001f 100%)")
    rows = [[td.text() for td in tr.find_all("td")] for tr in body.find("tbody").find_all("tr")]
    assert rows == [["#0", "MF", "1.00", "#1 0.50, #2 -0.25", "#1 2, #2 12.3"],
                    ["#1", "SF", "0.06", "#0 0.50", "#0 2"],
                    ["#2", "dead", "–", "excluded (constant CoF row)", "excluded (constant CoF row)"]]
    assert body.find("tr", id="n0").links() == [("index.html#n0", "#0"), ("#n1", "#1"), ("#n2", "#2"),
                                               ("#n1", "#1"), ("#n2", "#2")]


def test_index_page_lists_the_layers():
    summary = pd.DataFrame({
        "layer": ["conv1", LAYER], "n_neurons": [64, 3], "frac_mf": [0.5, 1 / 3], "frac_sf": [0.25, 1 / 3],
        "frac_dead": [0.25, 1 / 3], "mean_mf": [0.12345, np.nan], "max_mf": [np.inf, 2.0],
        "mean_similarity": [-0.0123, 0.5], "mean_dissimilarity": [3.14159, 10.0],
    })
    page = render_index_page(RUN, summary)
    body = check_frame(page, f"neurofacets gallery · {RUN}", "")
    assert body.find("nav").text() == f"neurofacets {__version__}"
    assert body.find("h1").text() == f"Neuron gallery of run {RUN}"
    assert body.find("p", **{"class": "note"}).text().startswith("67 neurons in 2 layers. ")
    rows = body.find("tbody").find_all("tr")
    assert [[td.text() for td in tr.find_all("td")] for tr in rows] == [
        ["conv1", "64", "50%", "25%", "25%", "0.123", "∞", "-0.012", "3.14", "cards · heatmaps"],
        [LAYER, "3", "33%", "33%", "33%", "–", "2.000", "0.500", "10.00", "cards · heatmaps"]]
    assert rows[1].links() == [(f"{LAYER}/index.html", LAYER), (f"{LAYER}/index.html", "cards"),
                               (f"{LAYER}/similarity.html", "heatmaps")]
    assert [img.attrs["src"] for img in body.find_all("img")] == ["overview-mf.png", "overview-facets.png"]
