"""Every figure of the paper (docs/reference/figures.md) as a function of the run's tables and stores.

Each figure has a pure plotting function that takes data and returns a
`matplotlib.figure.Figure` (unit-tested without files), and an entry in
`FIGURES` that reads exactly the inputs the figure needs: the inputs its entry in the
table of figures (`neurofacets.figure_table.FIGURE_TABLE`) names. The workflow calls
`build_figure` with the rule's named inputs; Tables 2-3 are written by
`write_tables`.

Modules: `style` (the shared look),
`images` (IC and patch tiles), `distributions` (Fig. 1, 2, App. A),
`facets` (Fig. 3, 4, Tables 2-3, App. B), `similarity` (Fig. 5, App. C),
`compare` (runs side by side), `semantics` (semantic facets, beyond the paper),
`evaluation` (held-out scores, split halves and selectivity of the neurons' labels, beyond
the paper).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from ..config import schema_default
from ..figure_table import FIGURE_TABLE
from ..pathlike import PathLike
from ..readers import (
    MF,
    SF,
    layer_order,
    present_layers,
    read_beside_control,
    read_evaluation,
    read_evaluation_summaries,
    read_evaluation_summary,
    read_metrics,
    read_semantics_summaries,
    read_semantics_summary,
    read_similarity_summary,
    read_summaries,
)
from ..store import write_csv
from . import compare, distributions, evaluation, facets, semantics, similarity, style

logger = logging.getLogger(__name__)

Inputs = Mapping[str, Any]
#: How a figure is drawn: (named inputs, options) -> figure.
DrawFunction = Callable[[Inputs, Mapping[str, Any]], Figure]


@dataclass(frozen=True)
class FigureSpec:
    """A figure target: the named inputs it reads and how it is drawn from them."""

    stem: str
    inputs: tuple[str, ...]
    draw: DrawFunction


def _metrics(inputs: Inputs) -> tuple[pd.DataFrame, list[str]]:
    layers = layer_order(inputs["layers"])
    return read_metrics(inputs["metrics"], layers), layers


def _present(metrics: pd.DataFrame, layers: list[str]) -> list[str]:
    """The network-order layers that have metrics (a run may analyse a subset)."""
    return present_layers(metrics, layers)


def _fig1(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    metrics, layers = _metrics(inputs)
    return distributions.plot_sparsity_flatness(metrics, _present(metrics, layers), read_summaries([inputs["summary"]]))


def _fig2(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    metrics, layers = _metrics(inputs)
    return distributions.plot_mf_distribution(metrics, _present(metrics, layers), read_summaries([inputs["summary"]]))


def _fig3(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    metrics, layers = _metrics(inputs)
    return facets.plot_mf_sf_counts(metrics, _present(metrics, layers), read_summaries([inputs["summary"]]))


def _fig4(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    metrics, layers = _metrics(inputs)
    return facets.plot_facet_examples(
        metrics, _present(metrics, layers), inputs["ica"], inputs["patches"],
        examples_per_layer=int(options.get("examples_per_layer", schema_default("figures.examples_per_layer"))),
        n_patches=int(options.get("n_patches", 8)),
    )


def _fig5(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    layers = layer_order(inputs["layers"])
    summary = read_similarity_summary(inputs["similarity_summary"], layers)
    present = [name for name in layers if name in set(summary["layer"])]
    return similarity.plot_similarity_summary(summary, present)


def _app_a(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    metrics, layers = _metrics(inputs)
    return distributions.plot_distributions_appendix(metrics, _present(metrics, layers))


def _app_b(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    metrics, layers = _metrics(inputs)
    return facets.plot_ica_by_mf(metrics, _present(metrics, layers), inputs["ica"],
                                 per_layer=int(options.get("per_layer", 5)), patch_stores=inputs["patches"])


def _app_c(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    layers = layer_order(inputs["layers"])
    stores = {Path(p).stem: p for p in inputs["similarity"]}
    return similarity.plot_heatmaps(stores, [name for name in layers if name in stores])


def _compare(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    return compare.plot_compare_runs(read_summaries(list(inputs["summaries"])))


def _compare_facets(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    return compare.plot_compare_facets(read_summaries(list(inputs["summaries"])))


def _semantic_facets(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    layers = layer_order(inputs["layers"])
    summary = read_semantics_summary(inputs["semantics_summary"], layers)
    return semantics.plot_semantic_facets(summary, [name for name in layers if name in set(summary["layer"])])


def _compare_semantic_facets(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    return semantics.plot_compare_semantic_facets(read_semantics_summaries(list(inputs["semantics_summaries"])))


def _evaluation(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    summary = read_evaluation_summary(inputs["evaluation_summary"])  # its rows are the layers in network order
    layers = summary["layer"].tolist()
    return evaluation.plot_evaluation(summary, read_evaluation(inputs["evaluation"], layers), layers)


def _compare_evaluation(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    return evaluation.plot_compare_evaluation(
        read_evaluation_summaries(list(inputs["evaluation_summaries"])))


def _beside_control(inputs: Inputs, options: Mapping[str, Any]) -> Figure:
    return compare.plot_beside_control(read_beside_control(inputs["beside"]))


# stem -> drawing function; the stems, their inputs and everything else about a figure are in
# the table of figures (neurofacets.figure_table), which the workflow's rules are made from.
_DRAW: dict[str, DrawFunction] = {
    "fig1_sparsity_flatness": _fig1,
    "fig2_mf_distribution": _fig2,
    "fig3_mf_sf_counts": _fig3,
    "fig4_facet_examples": _fig4,
    "fig5_similarity": _fig5,
    "appA_distributions": _app_a,
    "appB_ica_by_mf": _app_b,
    "appC_heatmaps": _app_c,
    "compare_runs": _compare,
    "compare_facets": _compare_facets,
    "semantic_facets": _semantic_facets,
    "compare_semantic_facets": _compare_semantic_facets,
    "evaluation": _evaluation,
    "compare_evaluation": _compare_evaluation,
    "beside_control": _beside_control,
}


def _registry(draw: Mapping[str, DrawFunction]) -> dict[str, FigureSpec]:
    """One `FigureSpec` per entry of the table of figures, in its order.

    Raises ValueError where the table and the drawing functions disagree (a figure without a
    drawing function, or a drawing function for no figure).
    """
    stems = [figure.stem for figure in FIGURE_TABLE]
    undrawn = [stem for stem in stems if stem not in draw]
    unlisted = sorted(set(draw) - set(stems))
    if undrawn or unlisted:
        raise ValueError(
            f"the table of figures (neurofacets.figure_table) and the drawing functions disagree: "
            f"no drawing function for {undrawn}, not in the table: {unlisted}"
        )
    return {figure.stem: FigureSpec(figure.stem, tuple(figure.inputs), draw[figure.stem]) for figure in FIGURE_TABLE}


FIGURES: dict[str, FigureSpec] = _registry(_DRAW)


def build_figure(
    stem: str,
    inputs: Inputs,
    outputs: Sequence[PathLike],
    dpi: int,
    options: Mapping[str, Any] | None = None,
) -> Figure:
    """Draw figure ``stem`` from its named inputs and write it to every output path.

    Parameters
    ----------
    stem
        A key of `FIGURES` (e.g. ``"fig3_mf_sf_counts"``).
    inputs
        Named input paths (the rule's ``input:``); lists for per-layer stores.
    outputs
        Files to write, the format taken from each suffix (pdf, png, svg).
    dpi
        Resolution of PNGs and of rasterised parts (images, heatmaps) in PDF and SVG.
    options
        Figure options (``examples_per_layer``, ``n_patches``, ``per_layer``).
    """
    if stem not in FIGURES:
        raise ValueError(f"unknown figure {stem!r}; known: {sorted(FIGURES)}")
    spec = FIGURES[stem]
    missing = [name for name in spec.inputs if name not in inputs]
    if missing:
        raise ValueError(f"figure {stem} needs the inputs {missing}")
    wrong = [str(p) for p in outputs if Path(p).stem != stem]
    if wrong:
        raise ValueError(f"outputs {wrong} are not named {stem}.<format>")
    fig = spec.draw(inputs, options or {})
    style.save_figure(fig, outputs, dpi)
    logger.info("figure %s: %d axes -> %s", stem, len(fig.axes), ", ".join(map(str, outputs)))
    return fig


def write_tables(
    metrics_csv: PathLike,
    layers_csv: PathLike,
    sf_output: PathLike,
    mf_output: PathLike,
    per_layer: int = 1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tables 2 and 3: the top SF and MF neurons of each layer, as CSV (see `facets.top_neurons`)."""
    layers = layer_order(layers_csv)
    metrics = read_metrics(metrics_csv, layers)
    present = _present(metrics, layers)
    tables = tuple(facets.top_neurons(metrics, present, facet, per_layer) for facet in (SF, MF))
    for table, path in zip(tables, (sf_output, mf_output)):
        write_csv(path, table, float_format="%.6g")
    logger.info("tables: %d SF and %d MF neurons", len(tables[0]), len(tables[1]))
    return tables


__all__ = ["FIGURES", "FigureSpec", "build_figure", "write_tables"]
