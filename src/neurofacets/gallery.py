"""A static HTML gallery of every neuron: ``results/{run}/gallery/index.html``.

No server and no network: the pages work from ``file://``. Layout::

    gallery/index.html              every layer: headline numbers, distributions, links
    gallery/overview-mf.png         MF degree per layer (Fig. 2 at screen size)
    gallery/overview-facets.png     fractions of MF / SF / dead neurons per layer (Fig. 3)
    gallery/assets/gallery.css      shared style
    gallery/assets/gallery.js       sorting, filtering, heatmap highlighting (vanilla JS)
    gallery/{layer}/index.html      one card per neuron, sortable and filterable
    gallery/{layer}/similarity.html the layer's Pearson and Euclidean heatmaps + neighbours
    gallery/{layer}/overview.png    the layer's MF degree, sparsity and flatness histograms
    gallery/{layer}/pearson.png     heatmaps, one pixel per neuron pair
    gallery/{layer}/euclidean.png
    gallery/{layer}/cards/nNNNN.png one image per neuron: gray ICs / uint8 ICs / top patches

Thumbnails: one composite PNG per neuron (3 rows of tiles). ``<img loading="lazy">``
only defers ``<img>`` elements, not CSS backgrounds, so a per-layer sprite sheet would
make the browser fetch and decode the whole layer's sheet (512 neurons x 24 tiles of
40 px: about 20 megapixels, 80 MB decoded) before painting the first card. One image per
card is fetched only when the card scrolls into view, and keeps the file count at one
per neuron (4224 for VGG16) instead of one per tile (100 000).

The sort/filter state of a layer page is kept in the URL fragment
(``index.html#sort=mf-desc&facet=MF,SF&min=0.2``), so views can be linked and tested;
``#n12`` is the anchor of neuron 12's card.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize, to_hex
from PIL import Image

from . import __version__
from .figures import distributions, facets, style
from .figures.images import mosaic
from .readers import (
    IcaReader,
    PatchReader,
    layer_order,
    parse_top_classes,
    read_metrics,
    read_similarity,
    read_similarity_summary,
)
from .semantics.display import NeuronConcept, neuron_concepts
from .store import atomic_output
from .summary import summarize_run

logger = logging.getLogger("neurofacets.gallery")
# Files of the package this module reads (write_assets); provenance.script_code_digest hashes them.
PACKAGE_DATA = ("gallery_assets/*",)

ASSETS = ("gallery.css", "gallery.js")
TILE = 40  # px per IC / patch tile in a card image
GAP = 2  # px between tiles
BLOCK = 16  # neurons read from a store at once (conv5 patches: 16 x 8 x 196^2 x 3 = 15 MB)
CLASSES_SHOWN = 5  # top classes written on a card (all of them in its tooltip)


def _fmt(value: float, digits: int = 3) -> str:
    """A number for display; an en dash for missing values, ∞ for an infinite MF degree."""
    if value is None or np.isnan(value):
        return "–"
    if np.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}f}"


def _attr(value: float) -> str:
    """A number for a ``data-`` attribute: empty when missing (JS: no value), ``Infinity``
    for the +inf MF degree of a perfectly even CoF row (JS ``parseFloat`` reads it)."""
    if value is None or np.isnan(value):
        return ""
    if np.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return f"{value:.6g}"


def _card_name(neuron: int, width: int) -> str:
    return f"n{neuron:0{width}d}.png"


def neuron_strip(
    gray: np.ndarray,
    ics_uint8: np.ndarray,
    patches: np.ndarray,
    tile: int = TILE,
    columns: int | None = None,
) -> np.ndarray:
    """One card image: row 1 gray ICs (signed), row 2 uint8 ICs, row 3 top patches.

    Parameters
    ----------
    gray
        (comps, rf, rf) float ICs.
    ics_uint8
        (comps, rf, rf, 3) uint8 ICs.
    patches
        (m, rf, rf, 3) uint8, the patches to show (may be empty).
    tile
        Tile size in pixels (every IC and patch is resized to it).
    columns
        Tiles per row (default: the longest row).
    """
    rows = [list(gray), list(ics_uint8), list(patches)]
    width = columns if columns is not None else max(len(r) for r in rows)
    return mosaic(rows, tile, gap=GAP, columns=max(width, 1))


def write_card_images(
    ica: IcaReader,
    patches: PatchReader,
    out_dir: str | Path,
    n_patches: int,
    tile: int = TILE,
) -> tuple[int, int, int]:
    """Write ``out_dir/nNNNN.png`` for every neuron; return (name width, image width, height).

    Stores are read ``BLOCK`` neurons at a time so memory stays small for any layer.
    """
    if ica.n_neurons != patches.n_neurons:
        raise ValueError(f"ICA store has {ica.n_neurons} neurons, patch store {patches.n_neurons}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = ica.n_neurons
    width = max(4, len(str(n - 1)))
    n_patches = min(n_patches, patches.k)
    columns = max(ica.n_components, n_patches, 1)
    shape = None
    for start in range(0, n, BLOCK):
        block = slice(start, min(n, start + BLOCK))
        pictures = dict(ica.iter_components(range(block.start, block.stop)))  # all modes at once
        tops = patches.top(block, n_patches) if n_patches else None
        for i, neuron in enumerate(range(block.start, block.stop)):
            counted = min(int(patches.n_counted[neuron]), n_patches)
            shown = tops[i, :counted] if tops is not None and counted else np.zeros((0, 1, 1, 3), np.uint8)
            strip = neuron_strip(pictures[neuron]["gray"], pictures[neuron]["uint8"], shown, tile, columns)
            shape = strip.shape
            # compress_level 3: about 1.2x faster over a VGG16 gallery than the default 6
            # at the same size (benchmarks/figures.py): zlib effort buys little on photos.
            Image.fromarray(strip).save(out_dir / _card_name(neuron, width), compress_level=3)
    if shape is None:
        raise ValueError("the layer has no neurons")
    return width, shape[1], shape[0]


def neighbours(matrix: np.ndarray, count: int, largest: bool) -> list[list[tuple[int, float]]]:
    """Per row, the ``count`` other neurons with the largest (or smallest) finite values.

    Ties go to the lower neuron number; the diagonal and NaN entries are skipped.
    """
    values = np.array(matrix, dtype=float)
    np.fill_diagonal(values, np.nan)
    result = []
    for row in values:
        finite = np.flatnonzero(np.isfinite(row))
        key = -row[finite] if largest else row[finite]
        order = finite[np.lexsort((finite, key))][:count]
        result.append([(int(j), float(row[j])) for j in order])
    return result


def heatmap_image(matrix: np.ndarray, cmap_name: str, norm: Normalize) -> np.ndarray:
    """A matrix as a uint8 RGB image, one pixel per cell, NaN in the missing colour."""
    cmap = style.colormap(cmap_name)
    return cmap(norm(np.ma.masked_invalid(np.asarray(matrix, dtype=float))), bytes=True)[..., :3]


def css_gradient(cmap_name: str, stops: int = 9) -> str:
    """A CSS ``linear-gradient`` that draws the colour scale of a colormap."""
    cmap = mpl.colormaps[cmap_name]
    parts = [f"{to_hex(cmap(x))} {100 * x:.0f}%" for x in np.linspace(0, 1, stops)]
    return f"linear-gradient(to right, {', '.join(parts)})"


def _page(title: str, body: str, depth: int) -> str:
    """A complete HTML page; ``depth`` = folders below ``gallery/`` (for the asset links)."""
    up = "../" * depth
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n"
        # An empty data: icon: otherwise the browser asks file:// for favicon.ico and logs an error.
        "<link rel=\"icon\" href=\"data:,\">\n"
        f"<link rel=\"stylesheet\" href=\"{up}assets/gallery.css\">\n"
        f"<script src=\"{up}assets/gallery.js\" defer></script>\n"
        f"</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _crumbs(run: str, layers: Sequence[str], layer: str, page: str) -> str:
    i = layers.index(layer)
    links = ["<a href=\"../index.html\">all layers</a>"]
    if i > 0:
        links.append(f"<a href=\"../{html.escape(layers[i - 1])}/{page}\">← {html.escape(layers[i - 1])}</a>")
    if i < len(layers) - 1:
        links.append(f"<a href=\"../{html.escape(layers[i + 1])}/{page}\">{html.escape(layers[i + 1])} →</a>")
    other = ("similarity.html", "similarity heatmaps") if page == "index.html" else ("index.html", "neuron cards")
    links.append(f"<a href=\"{other[0]}\">{other[1]} of {html.escape(layer)}</a>")
    return f"<nav class=\"crumbs\">run {html.escape(run)} · {' '.join(links)}</nav>"


def _concept_html(concept: NeuronConcept | None) -> tuple[str, str]:
    """(data attribute, paragraph) of a card's concept; empty without a hierarchy."""
    if concept is None:
        return "", ""
    terms = html.escape(" ".join(concept.terms))
    label = html.escape(concept.label) if concept.label else "none covers the share"
    path = html.escape(" › ".join(concept.path))
    return (f" data-concept=\"{terms}\"",
            f"<p class=\"concept\" title=\"{path}\"><span class=\"label\">concept:</span> {label} "
            f"<span class=\"sfacet {html.escape(concept.facet)}\">{html.escape(concept.facet)}</span></p>\n")


def _card(row, card_file: str, size: tuple[int, int], similar: list[tuple[int, float]], ica_status: str,
          concept: NeuronConcept | None = None) -> str:
    neuron = int(row.neuron)
    concept_attr, concept_line = _concept_html(concept)
    facet = str(row.facet)
    classes = parse_top_classes(row.top_classes)
    all_classes = ", ".join(f"{name} ({count})" for name, count in classes)
    shown = ", ".join(f"{html.escape(name)} ({count})" for name, count in classes[:CLASSES_SHOWN])
    if len(classes) > CLASSES_SHOWN:
        shown += f", … {len(classes) - CLASSES_SHOWN} more"
    similar_links = ", ".join(f"<a href=\"#n{j}\">#{j}</a> {value:.2f}" for j, value in similar) or "–"
    p_text = "" if pd.isna(row.p_value) else f"<span class=\"p\">p = {row.p_value:.2g}</span>"
    # a fit that did not converge still has pictures, but not the ICs the method means: say so
    warn = ("<span class=\"ica-warn\" title=\"an ICA fit of this neuron did not converge\">ICA not converged</span>"
            if "not_converged" in (ica_status or "") else "")
    ica_class = " class=\"ica-warn\"" if warn else ""
    return (
        f"<article class=\"card\" id=\"n{neuron}\" data-neuron=\"{neuron}\" data-facet=\"{html.escape(facet)}\" "
        f"data-mf=\"{_attr(row.mf)}\" data-mf-norm=\"{_attr(row.mf_norm)}\" data-sparsity=\"{_attr(row.sparsity)}\" "
        f"data-flatness=\"{_attr(row.flatness if facet != 'dead' else np.nan)}\" data-p=\"{_attr(row.p_value)}\""
        f"{concept_attr}>\n"
        f"<h2><a href=\"#n{neuron}\">#{neuron}</a> "
        f"<span class=\"facet {html.escape(facet)}\">{html.escape(facet)}</span>"
        f"{p_text}{warn}</h2>\n"
        "<div class=\"strip-wrap\"><div class=\"strip-labels\" aria-hidden=\"true\"><span>gray</span>"
        "<span>uint8</span><span>patches</span></div>"
        f"<img class=\"strip\" loading=\"lazy\" decoding=\"async\" src=\"cards/{card_file}\" width=\"{size[0]}\" "
        f"height=\"{size[1]}\" alt=\"neuron {neuron}: gray ICs, uint8 ICs and top patches\"></div>\n"
        "<dl class=\"stats\">"
        f"<dt>MF degree</dt><dd>{_fmt(row.mf)}</dd><dt>normalised</dt><dd>{_fmt(row.mf_norm)}</dd>"
        f"<dt>sparsity</dt><dd>{_fmt(row.sparsity)}</dd>"
        f"<dt>flatness</dt><dd>{_fmt(row.flatness if facet != 'dead' else np.nan)}</dd>"
        f"<dt>counted</dt><dd>{int(row.n_counted)}</dd>"
        f"<dt>ICA</dt><dd{ica_class}>{html.escape((ica_status or '–').replace('_', ' '))}</dd></dl>\n"
        f"<p class=\"classes\" title=\"{html.escape(all_classes)}\"><span class=\"label\">top classes:</span> "
        f"{shown or 'none (dead neuron)'}</p>\n"
        f"{concept_line}"
        f"<p class=\"links\"><a href=\"similarity.html#n{neuron}\">row in the similarity heatmaps</a> · "
        f"<span class=\"label\">most similar:</span> {similar_links}</p>\n"
        "</article>"
    )


def render_layer_page(
    run: str,
    layers: Sequence[str],
    layer: str,
    table: pd.DataFrame,
    card_width: int,
    card_size: tuple[int, int],
    similar: Sequence[list[tuple[int, float]]],
    ica_status: Sequence[str] | None = None,
    concepts: dict[int, NeuronConcept] | None = None,
) -> str:
    """The HTML of ``gallery/{layer}/index.html``: controls, overview and one card per neuron.

    ``ica_status`` (per neuron, see :attr:`neurofacets.ica.IcaReader.status`) is shown
    on each card; ``concepts`` (per neuron, :func:`neurofacets.semantics.display.neuron_concepts`)
    too, with a filter by concept.
    """
    counts = {facet: int((table["facet"] == facet).sum()) for facet in ("MF", "SF", "dead")}
    checkboxes = "".join(
        f"<label><input type=\"checkbox\" name=\"facet\" value=\"{facet}\" checked> "
        f"{style.FACET_LABELS[facet]} ({counts[facet]})</label>"
        for facet in ("MF", "SF", "dead")
    )
    cards = "\n".join(
        _card(row, _card_name(int(row.neuron), card_width), card_size, similar[int(row.neuron)],
              "" if ica_status is None else str(ica_status[int(row.neuron)]),
              None if concepts is None else concepts.get(int(row.neuron)))
        for row in table.itertuples(index=False)
    )
    concept_filter = _concept_filter(concepts)
    body = f"""<header class="page">
{_crumbs(run, layers, layer, "index.html")}
<h1>{html.escape(layer)}: {len(table)} neurons</h1>
<p class="note">{counts['MF']} multi-faceted, {counts['SF']} single-faceted, {counts['dead']} dead.
Each card shows the neuron's independent components (top row: gray, signed around mid-grey;
middle row: uint8 colour) and its best receptive-field patches (bottom row, best first), its MF degree
(flatness / sparsity of its class counts; normalised over all layers), the p-value of that MF degree
within the layer, and the classes of its top images with their counts.</p>
<img class="overview" src="overview.png"
 alt="distributions of MF degree, sparsity and flatness in {html.escape(layer)}">
</header>
<main>
<form id="controls">
<label>sort by <select id="sort">
<option value="neuron-asc">neuron number</option>
<option value="mf-desc">MF degree, high to low</option>
<option value="mf-asc">MF degree, low to high</option>
<option value="sparsity-desc">sparsity, high to low</option>
<option value="flatness-desc">flatness, high to low</option>
<option value="p-asc">p-value, low to high</option>
</select></label>
<fieldset><legend>facet</legend>{checkboxes}</fieldset>
<fieldset><legend>normalised MF degree</legend>
<label>from <input type="number" id="mf-min" min="0" max="1" step="0.05"></label>
<label>to <input type="number" id="mf-max" min="0" max="1" step="0.05"></label></fieldset>
{concept_filter}<output id="shown">{len(table)} of {len(table)} neurons shown</output>
</form>
<section id="cards">
{cards}
</section>
</main>"""
    return _page(f"{layer} · neurofacets gallery · {run}", body, depth=1)


def _concept_filter(concepts: dict[int, NeuronConcept] | None) -> str:
    """The concept filter of the controls, offering the layer's concepts by frequency."""
    if not concepts:
        return ""
    names = pd.Series([c.name for c in concepts.values() if c.name]).value_counts()
    options = "".join(f"<option value=\"{html.escape(name)}\">{count} neurons</option>"
                      for name, count in names.items())
    return ("<label title=\"neurons whose concept is this one or below it\">concept "
            "<input type=\"search\" id=\"concept\" list=\"concepts\" placeholder=\"e.g. dog.n.01\"></label>"
            f"<datalist id=\"concepts\">{options}</datalist>\n")


def render_similarity_page(
    run: str,
    layers: Sequence[str],
    layer: str,
    table: pd.DataFrame,
    excluded: np.ndarray,
    euclidean_max: float,
    similar: Sequence[list[tuple[int, float]]],
    nearest: Sequence[list[tuple[int, float]]],
) -> str:
    """The HTML of ``gallery/{layer}/similarity.html``: both heatmaps and a neighbour table."""
    n = len(table)
    figures = []
    for name, title, cmap, lo, hi in (
        ("pearson", "Similarity: Pearson correlation of CoF rows", style.PEARSON_CMAP, "−1", "1"),
        ("euclidean", "Dissimilarity: Euclidean distance of CoF rows", style.EUCLIDEAN_CMAP, "0",
         f"{euclidean_max:.3g}"),
    ):
        figures.append(
            f"<figure class=\"heatmap\" data-neurons=\"{n}\"><div class=\"hm-wrap\">"
            f"<img src=\"{name}.png\" width=\"{n}\" height=\"{n}\" alt=\"{title} heatmap of {html.escape(layer)}\">"
            "<div class=\"hl-row\" hidden></div><div class=\"hl-col\" hidden></div></div>"
            f"<figcaption><b>{title}.</b> Row and column i are neuron i. {lo}"
            f"<span class=\"scale\" style=\"background: {css_gradient(cmap)}\"></span>{hi}; "
            "grey: excluded neuron. Click a row to select that neuron.</figcaption></figure>"
        )
    rows = []
    for row in table.itertuples(index=False):
        neuron = int(row.neuron)
        if excluded[neuron]:
            sim_text = near_text = "excluded (constant CoF row)"
        else:
            sim_text = ", ".join(f"<a href=\"#n{j}\">#{j}</a> {v:.2f}" for j, v in similar[neuron]) or "–"
            near_text = ", ".join(f"<a href=\"#n{j}\">#{j}</a> {v:.3g}" for j, v in nearest[neuron]) or "–"
        rows.append(
            f"<tr id=\"n{neuron}\"><td><a href=\"index.html#n{neuron}\">#{neuron}</a></td>"
            f"<td>{html.escape(str(row.facet))}</td><td>{_fmt(row.mf_norm, 2)}</td>"
            f"<td>{sim_text}</td><td>{near_text}</td></tr>"
        )
    body = f"""<header class="page">
{_crumbs(run, layers, layer, "similarity.html")}
<h1>{html.escape(layer)}: neuronal similarity</h1>
<p class="note">Each neuron is described by its CoF row (how many of its top images come from each class).
Similarity is the Pearson correlation between two rows, dissimilarity their Euclidean distance.
Excluded for a constant row (e.g. dead): {int(excluded.sum())} of {n} neurons.
Select a neuron (click a heatmap row or a link) to highlight its row and column; its card is one click away.</p>
</header>
<main class="similarity">
<div class="heatmaps">
{''.join(figures)}
</div>
<table class="neighbours">
<thead><tr><th>neuron</th><th>facet</th><th>MF (norm.)</th><th>most correlated (Pearson r)</th>
<th>nearest (Euclidean d)</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
</main>"""
    return _page(f"{layer} similarity · neurofacets gallery · {run}", body, depth=1)


def _layer_overview(table: pd.DataFrame, layer: str, path: Path) -> None:
    """Histograms of the layer's normalised MF degree (by facet), sparsity and flatness."""
    live = table[table["facet"] != "dead"]
    with style.paper_style():
        fig = style.new_figure(style.DOUBLE_COLUMN, 1.9)
        axes = fig.subplots(1, 3)
        bins = np.linspace(0, 1, 26)
        data = [live.loc[live["facet"] == f, "mf_norm"].dropna().to_numpy() for f in ("SF", "MF")]
        axes[0].hist(data, bins=bins, stacked=True, color=[style.FACET_COLORS["SF"], style.FACET_COLORS["MF"]],
                     label=["SF", "MF"])
        axes[0].legend(loc="upper right")
        axes[0].set_xlabel("MF degree (normalised)")
        axes[0].set_ylabel("neurons")
        for ax, column, color in ((axes[1], "sparsity", style.SPARSITY_COLOR),
                                  (axes[2], "flatness", style.FLATNESS_COLOR)):
            values = live[column].dropna().to_numpy(dtype=float)
            if values.size:
                ax.hist(values, bins=25, color=color, alpha=0.8)
            ax.set_xlabel(column)
        fig.suptitle(f"{layer}: {len(live)} live neurons", x=0.01, ha="left")
        style.save_figure(fig, [path], dpi=100)


def build_layer_gallery(
    layer: str,
    metrics_csv: str | Path,
    layers_csv: str | Path,
    ica_store: str | Path,
    patch_store: str | Path,
    similarity_store: str | Path,
    output_dir: str | Path,
    *,
    run: str,
    n_patches: int = 8,
    n_neighbours: int = 3,
    tile: int = TILE,
    semantics_csv: str | Path | None = None,
    hierarchy_csv: str | Path | None = None,
) -> Path:
    """Write ``gallery/{layer}/`` (pages, card images, heatmaps, overview) atomically.

    Parameters
    ----------
    layer
        The layer's name (a row of ``layers.csv`` with metrics in ``metrics_csv``).
    metrics_csv, layers_csv
        ``metrics/all_layers.csv`` (for facet and normalised MF) and ``model/layers.csv``.
    ica_store, patch_store, similarity_store
        The layer's ``ica``, ``patches`` and ``similarity`` stores.
    output_dir
        ``results/{run}/gallery/{layer}``.
    run
        Run name shown on the pages.
    n_patches
        Top patches per card (config ``figures.gallery_patches``).
    n_neighbours
        Most similar neurons linked from each card.
    semantics_csv, hierarchy_csv
        The layer's ``semantics/{layer}.csv`` and the run's ``semantics/hierarchy.csv``,
        when the run has a class hierarchy: each card then shows its neuron's concept and
        the page filters by concept.
    """
    if n_patches < 0 or n_neighbours < 0:
        raise ValueError("n_patches and n_neighbours must be >= 0")
    layers = layer_order(layers_csv)
    metrics = read_metrics(metrics_csv, layers)
    with_pages = [name for name in layers if name in set(metrics["layer"])]
    if layer not in with_pages:
        raise ValueError(f"layer {layer!r} has no metrics in {metrics_csv}")
    table = metrics[metrics["layer"] == layer].reset_index(drop=True)
    if not np.array_equal(table["neuron"].to_numpy(), np.arange(len(table))):
        raise ValueError(f"{metrics_csv}: neurons of {layer} are not numbered 0..{len(table) - 1}")
    ica, patches = IcaReader(ica_store), PatchReader(patch_store)
    sim = read_similarity(similarity_store)
    for what, count in (("ICA", ica.n_neurons), ("patch", patches.n_neurons), ("similarity", sim.n_neurons)):
        if count != len(table):
            raise ValueError(f"{what} store of {layer} has {count} neurons, the metrics {len(table)}")
    concepts = None
    if semantics_csv is not None and hierarchy_csv is not None:
        concepts = neuron_concepts(semantics_csv, hierarchy_csv)
        if sorted(concepts) != list(range(len(table))):
            raise ValueError(f"{semantics_csv} does not hold the {len(table)} neurons of {layer}")
    similar = neighbours(sim.pearson, n_neighbours, largest=True)
    nearest = neighbours(sim.euclidean, n_neighbours, largest=False)
    finite = sim.euclidean[np.isfinite(sim.euclidean)]
    euclidean_max = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    with atomic_output(output_dir) as tmp:
        tmp.mkdir()
        width, *size = write_card_images(ica, patches, tmp / "cards", n_patches, tile)
        Image.fromarray(heatmap_image(sim.pearson, style.PEARSON_CMAP, Normalize(-1, 1))).save(tmp / "pearson.png")
        Image.fromarray(heatmap_image(sim.euclidean, style.EUCLIDEAN_CMAP, Normalize(0, euclidean_max))).save(
            tmp / "euclidean.png")
        _layer_overview(table, layer, tmp / "overview.png")
        (tmp / "index.html").write_text(
            render_layer_page(run, with_pages, layer, table, width, tuple(size), similar, ica.status, concepts),
            encoding="utf-8")
        (tmp / "similarity.html").write_text(
            render_similarity_page(run, with_pages, layer, table, sim.excluded, euclidean_max, similar, nearest),
            encoding="utf-8")
    logger.info("gallery of %s: %d neuron cards -> %s", layer, len(table), output_dir)
    return Path(output_dir)


def write_assets(assets_dir: str | Path) -> Path:
    """Copy the gallery's CSS and JS (package data) into ``assets_dir`` atomically."""
    source = resources.files("neurofacets").joinpath("gallery_assets")
    with atomic_output(assets_dir) as tmp:
        tmp.mkdir()
        for name in ASSETS:
            (tmp / name).write_bytes(source.joinpath(name).read_bytes())
    return Path(assets_dir)


def render_index_page(run: str, summary: pd.DataFrame) -> str:
    """The HTML of ``gallery/index.html``: a row per layer with its headline numbers."""
    rows = []
    for row in summary.itertuples(index=False):
        name = html.escape(row.layer)
        rows.append(
            f"<tr><td><a href=\"{name}/index.html\">{name}</a></td><td>{row.n_neurons}</td>"
            f"<td>{100 * row.frac_mf:.0f}%</td><td>{100 * row.frac_sf:.0f}%</td><td>{100 * row.frac_dead:.0f}%</td>"
            f"<td>{_fmt(row.mean_mf)}</td><td>{_fmt(row.max_mf)}</td>"
            f"<td>{_fmt(row.mean_similarity)}</td><td>{_fmt(row.mean_dissimilarity, 2)}</td>"
            f"<td><a href=\"{name}/index.html\">cards</a> · <a href=\"{name}/similarity.html\">heatmaps</a></td></tr>"
        )
    total = int(summary["n_neurons"].sum())
    body = f"""<header class="page">
<nav class="crumbs">neurofacets {html.escape(__version__)}</nav>
<h1>Neuron gallery of run {html.escape(run)}</h1>
<p class="note">{total} neurons in {len(summary)} layers. Open a layer to see every neuron as a card (its
independent components, best patches, MF degree, sparsity, flatness, facet and top classes), sortable and
filterable; or its similarity heatmaps. MF = multi-faceted (MF degree above the threshold), SF = single-faceted,
dead = never positively activated.</p>
</header>
<main>
<table class="layers">
<thead><tr><th>layer</th><th>neurons</th><th>MF</th><th>SF</th><th>dead</th><th>mean MF</th><th>max MF</th>
<th>mean similarity</th><th>mean dissimilarity</th><th>pages</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
<h2>Distributions over the layers</h2>
<p><img class="overview" src="overview-mf.png" alt="MF degree per layer and over all layers"></p>
<p><img class="overview" src="overview-facets.png" alt="fractions of MF and SF neurons per layer"></p>
</main>"""
    return _page(f"neurofacets gallery · {run}", body, depth=0)


def build_gallery_index(
    metrics_csv: str | Path,
    layers_csv: str | Path,
    similarity_summary_csv: str | Path,
    index_html: str | Path,
    assets_dir: str | Path,
    *,
    run: str,
    layer_dirs: Sequence[str | Path] = (),
) -> Path:
    """Write ``gallery/index.html``, its overview images and the shared assets.

    ``layer_dirs`` (the per-layer galleries, built by :func:`build_layer_gallery`) must
    exist: the index links to them.
    """
    missing = [str(d) for d in layer_dirs if not (Path(d) / "index.html").exists()]
    if missing:
        raise FileNotFoundError(f"layer galleries are missing: {missing}")
    layers = layer_order(layers_csv)
    metrics = read_metrics(metrics_csv, layers)
    present = [name for name in layers if name in set(metrics["layer"])]
    summary = summarize_run(metrics, read_similarity_summary(similarity_summary_csv, layers), present, run)
    index_html = Path(index_html)
    for name, plot in (("overview-mf.png", distributions.plot_mf_distribution),
                       ("overview-facets.png", facets.plot_mf_sf_counts)):
        style.save_figure(plot(metrics, present), [index_html.parent / name], dpi=100)
    write_assets(assets_dir)
    with atomic_output(index_html) as tmp:
        tmp.write_text(render_index_page(run, summary), encoding="utf-8")
    logger.info("gallery index of run %s: %d layers -> %s", run, len(present), index_html)
    return index_html


__all__ = [
    "build_gallery_index", "build_layer_gallery", "neighbours", "neuron_strip", "render_index_page",
    "render_layer_page", "render_similarity_page", "write_assets", "write_card_images",
]
