"""The static neuron gallery (neurofacets.gallery), checked as files and in a real browser.

The browser checks drive Debian's headless ``chromium`` from the command line
(``--dump-dom`` prints the DOM after the page's scripts ran, ``--screenshot`` renders it,
``--enable-logging=stderr`` reports console messages). Sorting and filtering are driven
through the URL fragment the page reads (``#sort=mf-desc``), so no DevTools client is
needed. They are skipped, with the reason, only where no chromium is installed.
"""

from __future__ import annotations

import html.parser
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from fakerun import make_fake_run
from matplotlib import colormaps
from PIL import Image

from neurofacets import gallery, readers
from neurofacets.figures import images, style
from neurofacets.ica import IcaReader
from neurofacets.patches import PatchReader

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
N_PATCHES = 4


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    fake = make_fake_run(tmp_path_factory.mktemp("run"))
    out = fake.out
    dirs = []
    for name in fake.layers:
        dirs.append(gallery.build_layer_gallery(
            name, out / "metrics" / "all_layers.csv", out / "model" / "layers.csv", out / "ica" / f"{name}.zarr",
            out / "patches" / f"{name}.zarr", out / "similarity" / f"{name}.zarr", out / "gallery" / name,
            run=fake.run, n_patches=N_PATCHES, evaluation_csv=out / "evaluation" / "all_layers.csv",
        ))
    gallery.build_gallery_index(out / "metrics" / "all_layers.csv", out / "model" / "layers.csv",
                                out / "similarity" / "summary.csv", out / "gallery" / "index.html",
                                out / "gallery" / "assets", run=fake.run, layer_dirs=dirs)
    return fake


class _Links(html.parser.HTMLParser):
    """Every local src/href of a page, and the ids it defines."""

    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("src", "href"):
            value = attrs.get(key)
            if value and not value.startswith(("data:", "http:", "https:")):
                self.links.append(value)


def parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


# --- files ----------------------------------------------------------------------------------


def test_every_local_link_and_anchor_resolves(built):
    root = built.out / "gallery"
    pages = sorted(root.rglob("*.html"))
    assert len(pages) == 1 + 2 * len(built.layers)
    for page in pages:
        for link in parse(page).links:
            parts = urlsplit(link)
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            assert target.exists(), f"{page.relative_to(root)} links to missing {link}"
            if parts.fragment and "=" not in parts.fragment:  # "#n3" anchors, not "#sort=..." states
                assert parts.fragment in parse(target).ids, f"{page.relative_to(root)}: no anchor {link}"


def test_layer_page_has_a_card_per_neuron_with_its_numbers(built):
    m = built.metrics
    for name in built.layers:
        text = (built.out / "gallery" / name / "index.html").read_text(encoding="utf-8")
        cards = re.findall(r'<article class="card" id="n(\d+)" data-neuron="(\d+)" data-facet="(\w+)" '
                           r'data-mf="([^"]*)"', text)
        rows = m[m["layer"] == name]
        assert [int(c[1]) for c in cards] == rows["neuron"].tolist()
        assert [c[2] for c in cards] == rows["facet"].tolist()
        for (_, _, _, mf), want in zip(cards, rows["mf"]):
            assert (mf == "") if np.isnan(want) else float(mf) == pytest.approx(want, rel=1e-5)
        assert len(list((built.out / "gallery" / name / "cards").glob("n*.png"))) == len(rows)
        # the fake ICA store: neuron 1's red fit did not converge, dead neurons had no fit
        card = text[text.index('id="n1"'):text.index('id="n2"')]
        assert '<dt>ICA</dt><dd class="ica-warn">not converged: red</dd>' in card
        assert '<span class="ica-warn" title="an ICA fit of this neuron did not converge">ICA not converged</span>' in card
        ok_card = text[text.index('id="n0"'):text.index('id="n1"')]
        assert "ica-warn" not in ok_card and "<dt>ICA</dt><dd>ok</dd>" in ok_card
        assert 'loading="lazy"' in text and "http" not in text.replace("http-equiv", "")


def test_each_card_shows_its_held_out_score_and_verdict(built):
    every = built.evaluation
    for name in built.layers:
        text = (built.out / "gallery" / name / "index.html").read_text(encoding="utf-8")
        rows = every[every["layer"] == name]
        cards = re.findall(r'<article class="card" id="n(\d+)"[^>]* data-auroc="([^"]*)" data-holds="([01])"', text)
        assert [int(n) for n, _, _ in cards] == rows["neuron"].tolist()
        assert [holds == "1" for _, _, holds in cards] == rows["label_holds"].tolist()
        lines = re.findall(r'<p class="heldout">(.*?)</p>', text)
        assert len(lines) == len(rows)
        for line, row in zip(lines, rows.itertuples()):
            if np.isnan(row.auroc):
                assert "AUROC</span> – (chance –)" in line and "no label" in line
                continue
            assert f"AUROC</span> {row.auroc:.2f} (chance {row.auroc_chance:.2f})" in line
            assert ("label holds" if row.label_holds else "label does not hold") in line
            assert f"selectivity q = {row.selectivity_q:.2g}" in line
        assert f"only labels that hold on held-out images ({int(rows['label_holds'].sum())})" in text


def test_card_image_rows_are_the_stored_components_and_patches(built):
    name, neuron = "conv1_2", 2  # rf 5
    store = IcaReader(built.out / "ica" / f"{name}.zarr")
    patches = PatchReader(built.out / "patches" / f"{name}.zarr")
    with Image.open(built.out / "gallery" / name / "cards" / f"n{neuron:04d}.png") as img:
        strip = np.asarray(img.convert("RGB"))
    tile, gap = gallery.TILE, gallery.GAP
    assert strip.shape == (3 * tile + 2 * gap, max(store.n_components, N_PATCHES) * (tile + gap) - gap, 3)
    gray_tile = images.resize_tile(store.components("gray", [neuron])[0, 0], tile)
    np.testing.assert_array_equal(strip[:tile, :tile], gray_tile)
    uint8_tile = images.resize_tile(store.components("uint8", [neuron])[0, 1], tile)
    np.testing.assert_array_equal(strip[tile + gap:2 * tile + gap, tile + gap:2 * tile + gap], uint8_tile)
    patch = images.resize_tile(patches.top([neuron], 1)[0, 0], tile)
    np.testing.assert_array_equal(strip[2 * (tile + gap):, :tile], patch)


def test_heatmap_pixels_are_the_matrix_in_its_colour_map(built):
    sim = readers.read_similarity(built.out / "similarity" / "conv2_1.zarr")
    with Image.open(built.out / "gallery" / "conv2_1" / "pearson.png") as img:
        pixels = np.asarray(img.convert("RGB"))
    assert pixels.shape[:2] == sim.pearson.shape
    cmap = colormaps[style.PEARSON_CMAP]
    for i, j in [(0, 1), (2, 5), (4, 4)]:
        want = np.asarray(cmap((sim.pearson[i, j] + 1) / 2, bytes=True)[:3])
        np.testing.assert_array_equal(pixels[i, j], want)
    dead = np.flatnonzero(sim.excluded)[0]
    np.testing.assert_array_equal(pixels[dead, 0], [0xD9, 0xD9, 0xD9])


def test_index_lists_layers_in_network_order(built):
    text = (built.out / "gallery" / "index.html").read_text(encoding="utf-8")
    linked = re.findall(r'<tr><td><a href="([^/]+)/index.html">', text)
    assert linked == built.layers
    assert (built.out / "gallery" / "assets" / "gallery.js").exists()


def test_layer_gallery_refuses_mismatched_stores(built, tmp_path):
    out = built.out
    with pytest.raises(ValueError, match="neurons"):
        gallery.build_layer_gallery(
            "conv1_1", out / "metrics" / "all_layers.csv", out / "model" / "layers.csv",
            out / "ica" / "conv1_2.zarr", out / "patches" / "conv1_2.zarr", out / "similarity" / "conv1_2.zarr",
            tmp_path / "conv1_1", run="x")
    assert not (tmp_path / "conv1_1").exists()


# --- in a real browser ------------------------------------------------------------------------

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: install Debian's chromium (apt-get install -y chromium)"
)


def browse(url: str, profile: Path, *extra: str) -> tuple[str, list[str]]:
    """Open ``url`` in headless chromium; return its DOM (or stdout) and its console messages."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", "--hide-scrollbars", f"--user-data-dir={profile}",
        "--enable-logging=stderr", "--v=0", *extra, url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return done.stdout, console


def card_order(dom: str) -> list[tuple[int, bool]]:
    """(neuron, hidden) of every card, in DOM order."""
    cards = re.findall(r"<article ([^>]*)>", dom)
    return [(int(re.search(r'data-neuron="(\d+)"', a).group(1)), " hidden" in f" {a}") for a in cards]


@needs_chromium
def test_index_loads_without_console_errors(built, tmp_path):
    dom, console = browse((built.out / "gallery" / "index.html").as_uri(), tmp_path / "p", "--dump-dom")
    assert console == []
    assert dom.count('/index.html">cards</a>') == len(built.layers)


@needs_chromium
def test_layer_page_lists_every_neuron_and_sorts_by_mf(built, tmp_path):
    name = "conv1_2"
    page = built.out / "gallery" / name / "index.html"
    rows = built.metrics[built.metrics["layer"] == name]
    dom, console = browse(page.as_uri(), tmp_path / "p1", "--dump-dom")
    assert console == []
    order = card_order(dom)
    assert [n for n, _ in order] == rows["neuron"].tolist()
    assert f"{len(rows)} of {len(rows)} neurons shown" in dom

    dom, console = browse(page.as_uri() + "#sort=mf-desc", tmp_path / "p2", "--dump-dom")
    assert console == []
    # expected: by the MF degree written on the card (6 significant digits), ties by neuron
    mf = {n: float(f"{v:.6g}") for n, v in zip(rows["neuron"], rows["mf"])}
    want = sorted(mf, key=lambda n: (-mf[n], n))
    assert [n for n, _ in card_order(dom)] == want
    assert want != rows["neuron"].tolist()  # the fake data do need reordering


@needs_chromium
def test_layer_page_filters_by_facet_and_mf_range(built, tmp_path):
    name = "conv2_1"  # has SF and dead neurons
    rows = built.metrics[built.metrics["layer"] == name]
    page = built.out / "gallery" / name / "index.html"
    dom, console = browse(page.as_uri() + "#sort=mf-asc&facet=SF&min=0.1&max=0.25", tmp_path / "p", "--dump-dom")
    assert console == []
    mf_norm = {n: float(f"{v:.6g}") for n, v in zip(rows["neuron"], rows["mf_norm"])}
    shown = sorted((n for n, f in zip(rows["neuron"], rows["facet"]) if f == "SF" and 0.1 <= mf_norm[n] <= 0.25),
                   key=lambda n: (float(f"{rows.set_index('neuron').at[n, 'mf']:.6g}"), n))
    order = card_order(dom)
    assert [n for n, hidden in order if not hidden] == shown
    assert len(order) == len(rows)
    assert f"{len(shown)} of {len(rows)} neurons shown" in dom


@needs_chromium
def test_layer_page_filters_on_labels_that_hold(built, tmp_path):
    name = "conv2_1"
    rows = built.evaluation[built.evaluation["layer"] == name]
    page = built.out / "gallery" / name / "index.html"
    dom, console = browse(page.as_uri() + "#sort=auroc-desc&holds=1", tmp_path / "p", "--dump-dom")
    assert console == []
    auroc = {n: float(f"{v:.6g}") for n, v in zip(rows["neuron"], rows["auroc"]) if not np.isnan(v)}
    holding = sorted((n for n, holds in zip(rows["neuron"], rows["label_holds"]) if holds),
                     key=lambda n: (-auroc[n], n))
    order = card_order(dom)
    assert [n for n, hidden in order if not hidden] == holding
    assert 0 < len(holding) < len(rows)  # the fake run has labels that do not hold: they are hidden
    assert f"{len(holding)} of {len(rows)} neurons shown" in dom


@needs_chromium
def test_similarity_page_highlights_the_linked_neuron(built, tmp_path):
    page = built.out / "gallery" / "conv1_1" / "similarity.html"
    dom, console = browse(page.as_uri() + "#n4", tmp_path / "p", "--dump-dom")
    assert console == []
    rows = re.findall(r'<div class="hl-row"([^>]*)>', dom)
    assert len(rows) == 2 and all("hidden" not in r and "top: " in r for r in rows)
    # neuron 4 of 6: the highlight starts 4/6 of the way down the heatmap
    assert all(re.search(r"top: 66\.66", r) for r in rows)


@needs_chromium
def test_screenshot_of_a_layer_page(built, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / "gallery-layer-conv1_2.png"
    page = built.out / "gallery" / "conv1_2" / "index.html"
    _, console = browse(page.as_uri() + "#sort=mf-desc", tmp_path / "p", "--window-size=1280,1600",
                        f"--screenshot={target}")
    assert console == []
    with Image.open(target) as img:
        assert img.size == (1280, 1600)
        pixels = np.asarray(img.convert("L"), dtype=float)
    assert pixels.std() > 10  # not blank: cards, text and images were rendered
