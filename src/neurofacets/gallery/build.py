"""Building the gallery's folders: read a layer's stores, write its pictures and pages atomically.

`build_layer_gallery` writes ``gallery/{layer}/`` (one job per layer),
`build_gallery_index` the index page, its overviews and the shared assets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
from matplotlib.colors import Normalize
from PIL import Image

from ..figures import distributions, facets, style
from ..ica import IcaReader
from ..patches import PatchReader
from ..pathlike import PathLike
from ..readers import layer_order, read_evaluation, read_metrics, read_similarity, read_similarity_summary
from ..semantics.display import neuron_concepts
from ..similarity import neighbours
from ..store import atomic_output
from ..summary import summarize_run
from .images import TILE, heatmap_image, write_card_images, write_layer_overview
from .pages import render_index_page, render_layer_page, render_similarity_page

logger = logging.getLogger(__name__)
# Files of the package this module reads (write_assets); provenance.script_code_digest hashes them.
PACKAGE_DATA = ("assets/*",)

ASSETS = ("gallery.css", "gallery.js")


def build_layer_gallery(
    layer: str,
    metrics_csv: PathLike,
    layers_csv: PathLike,
    ica_store: PathLike,
    patch_store: PathLike,
    similarity_store: PathLike,
    output_dir: PathLike,
    *,
    run: str,
    n_patches: int = 8,
    n_neighbours: int = 3,
    tile: int = TILE,
    semantics_csv: PathLike | None = None,
    hierarchy_csv: PathLike | None = None,
    evaluation_csv: PathLike | None = None,
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
    evaluation_csv
        ``evaluation/all_layers.csv``: each card then shows its neuron's held-out AUROC against
        chance, whether its label holds, its selectivity q and the two halves' verdicts, and the
        page filters on the labels that hold.
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
    evaluation = None
    if evaluation_csv is not None:
        every = read_evaluation(evaluation_csv, layers)
        evaluation = every[every["layer"] == layer].reset_index(drop=True)
        if evaluation["neuron"].tolist() != list(range(len(table))):
            raise ValueError(f"{evaluation_csv} does not hold the {len(table)} neurons of {layer}")
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
        write_layer_overview(table, layer, tmp / "overview.png")
        (tmp / "index.html").write_text(
            render_layer_page(run, with_pages, layer, table, width, tuple(size), similar, ica.status, concepts,
                              evaluation),
            encoding="utf-8")
        (tmp / "similarity.html").write_text(
            render_similarity_page(run, with_pages, layer, table, sim.excluded, euclidean_max, similar, nearest),
            encoding="utf-8")
    logger.info("gallery of %s: %d neuron cards -> %s", layer, len(table), output_dir)
    return Path(output_dir)


def write_assets(assets_dir: PathLike) -> Path:
    """Copy the gallery's CSS and JS (package data) into ``assets_dir`` atomically."""
    source = resources.files("neurofacets.gallery").joinpath("assets")
    with atomic_output(assets_dir) as tmp:
        tmp.mkdir()
        for name in ASSETS:
            (tmp / name).write_bytes(source.joinpath(name).read_bytes())
    return Path(assets_dir)


def build_gallery_index(
    metrics_csv: PathLike,
    layers_csv: PathLike,
    similarity_summary_csv: PathLike,
    index_html: PathLike,
    assets_dir: PathLike,
    *,
    run: str,
    layer_dirs: Sequence[PathLike] = (),
) -> Path:
    """Write ``gallery/index.html``, its overview images and the shared assets.

    ``layer_dirs`` (the per-layer galleries, built by `build_layer_gallery`) must
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
