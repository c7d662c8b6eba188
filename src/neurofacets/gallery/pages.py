"""The gallery's HTML pages: what each page shows, formatted here, laid out by Jinja2 templates.

Python decides the content (which neurons, which numbers and how they are written, which
links); the templates in ``templates/`` hold the markup. Every value a template prints is
escaped with `html.escape` (``&``, ``<``, ``>``, ``"`` and ``'``), by the
environment's ``finalize`` hook; autoescaping is on as well, so what a macro returns
(``markupsafe.Markup``) is not escaped twice. Only ``{{ value }}`` goes through
``finalize``: templates print values one by one and never combine untrusted strings with
``~`` or ``|join`` (those would escape with markupsafe's entities, ``&#34;`` instead of
``&quot;``, and so change the pages' bytes).

Whitespace: ``trim_blocks`` and ``lstrip_blocks`` are on, so a line holding only a tag
leaves nothing in the page; a comment with a right strip marker at the end of a template
line joins it to the next, so a long line of a page can be written over several.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence
from dataclasses import dataclass

import jinja2
import markupsafe
import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.colors import to_hex

from .. import __version__
from ..figures import style
from ..readers import DEAD, FACETS, parse_top_classes
from ..semantics.display import NeuronConcept
from .images import card_name

# Files of the package this module reads; provenance.script_code_digest hashes them.
PACKAGE_DATA = ("templates/*.html.j2",)

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


def css_gradient(cmap_name: str, stops: int = 9) -> str:
    """A CSS ``linear-gradient`` that draws the colour scale of a colormap."""
    cmap = mpl.colormaps[cmap_name]
    parts = [f"{to_hex(cmap(x))} {100 * x:.0f}%" for x in np.linspace(0, 1, stops)]
    return f"linear-gradient(to right, {', '.join(parts)})"


def _escape(value: object) -> markupsafe.Markup:
    """The ``finalize`` hook: escape a printed value as `html.escape` does."""
    if isinstance(value, markupsafe.Markup):  # a macro's output, escaped when it was rendered
        return value
    return markupsafe.Markup(html.escape(str(value)))


@functools.cache
def _environment() -> jinja2.Environment:
    """The Jinja2 environment of the gallery templates (built once; it holds no run data)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("neurofacets.gallery", "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"], default=True),
        finalize=_escape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _render(template: str, **context: object) -> str:
    return _environment().get_template(template).render(**context)


@dataclass(frozen=True)
class _Navigation:
    """What a layer page's navigation line links to: the layers before and after it."""

    run: str
    layer: str
    previous: str | None
    next: str | None


def _navigation(run: str, layers: Sequence[str], layer: str) -> _Navigation:
    i = list(layers).index(layer)
    return _Navigation(run, layer, layers[i - 1] if i > 0 else None, layers[i + 1] if i < len(layers) - 1 else None)


@dataclass(frozen=True)
class _ConceptView:
    """A card's concept line: the synset terms the filter matches, label, path, semantic facet."""

    terms: str
    label: str
    path: str
    facet: str


@dataclass(frozen=True)
class _HeldOutView:
    """A card's evaluation line (``evaluation/all_layers.csv``): the held-out AUROC of its label
    against chance, whether the label holds, its selectivity q and the two halves' verdicts."""

    verdict: str  # "holds", "fails" or "none" (no score: a dead neuron)
    auroc: str
    chance: str
    q: str
    halves: str
    concepts: str | None  # "concepts agree" / "concepts differ"; None where a half has no concept


def _halves_text(first: str, second: str) -> str:
    """The facets of the two halves: ``MF on both halves``, or ``halves MF / SF``."""
    if first == second:
        return f"{first} on both halves"
    return f"halves {first or '–'} / {second or '–'}"


def _held_out_view(row) -> _HeldOutView:
    """A row of ``evaluation/all_layers.csv`` (``itertuples``) as its card shows it."""
    agrees = getattr(row, "concept_agrees", np.nan)
    return _HeldOutView(
        verdict="none" if pd.isna(row.auroc) else ("holds" if row.label_holds else "fails"),
        auroc=_fmt(row.auroc, 2),
        chance=_fmt(row.auroc_chance, 2),
        q="–" if pd.isna(row.selectivity_q) else f"{row.selectivity_q:.2g}",
        halves=_halves_text(str(row.facet_0), str(row.facet_1)),
        concepts=None if pd.isna(agrees) else ("concepts agree" if agrees else "concepts differ"),
    )


@dataclass(frozen=True)
class _CardView:
    """One neuron's card, every number formatted (``data``: for the script, ``shown``: to read)."""

    neuron: int
    facet: str
    data: dict[str, str]
    shown: dict[str, str]
    p_value: str | None
    ica: str
    ica_failed: bool
    image: str
    classes: list[tuple[str, int]]
    more_classes: int
    classes_title: str
    concept: _ConceptView | None
    held_out: _HeldOutView | None
    similar: list[tuple[int, str]]


def _concept_view(concept: NeuronConcept | None) -> _ConceptView | None:
    if concept is None:
        return None
    return _ConceptView(terms=" ".join(concept.terms), label=concept.label or "none covers the share",
                        path=" › ".join(concept.path), facet=concept.facet)


def _card_view(row, image: str, similar: list[tuple[int, float]], ica_status: str,
               concept: NeuronConcept | None, evaluation_row=None) -> _CardView:
    """A row of the metrics table (``itertuples``) as its card shows it, with the neuron's row
    of the evaluation table (``itertuples``), if any."""
    facet = str(row.facet)
    flatness = row.flatness if facet != DEAD else np.nan  # a dead neuron has no class counts
    classes = parse_top_classes(row.top_classes)
    return _CardView(
        neuron=int(row.neuron),
        facet=facet,
        data={"mf": _attr(row.mf), "mf_norm": _attr(row.mf_norm), "sparsity": _attr(row.sparsity),
              "flatness": _attr(flatness), "p": _attr(row.p_value),
              **({} if evaluation_row is None else {"auroc": _attr(evaluation_row.auroc),
                                                     "holds": "1" if evaluation_row.label_holds else "0"})},
        shown={"mf": _fmt(row.mf), "mf_norm": _fmt(row.mf_norm), "sparsity": _fmt(row.sparsity),
               "flatness": _fmt(flatness), "counted": str(int(row.n_counted))},
        p_value=None if pd.isna(row.p_value) else f"{row.p_value:.2g}",
        ica=(ica_status or "–").replace("_", " "),
        ica_failed="not_converged" in (ica_status or ""),
        image=image,
        classes=classes[:CLASSES_SHOWN],
        more_classes=max(len(classes) - CLASSES_SHOWN, 0),
        classes_title=", ".join(f"{name} ({count})" for name, count in classes),
        concept=_concept_view(concept),
        held_out=None if evaluation_row is None else _held_out_view(evaluation_row),
        similar=[(j, f"{value:.2f}") for j, value in similar],
    )


def _concept_options(concepts: dict[int, NeuronConcept] | None) -> list[tuple[str, int]] | None:
    """The concept filter's choices, the layer's concepts by frequency (None: no filter)."""
    if not concepts:
        return None
    names = pd.Series([c.name for c in concepts.values() if c.name]).value_counts()
    return [(str(name), int(count)) for name, count in names.items()]


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
    evaluation: pd.DataFrame | None = None,
) -> str:
    """The HTML of ``gallery/{layer}/index.html``: controls, overview and one card per neuron.

    Parameters
    ----------
    run, layers, layer
        Run name, the layers with pages in network order (for the navigation), this layer.
    table
        The layer's rows of ``metrics/all_layers.csv``, neurons 0..n-1 in order.
    card_width, card_size
        Digits of the card image names (``cards/nNNNN.png``) and the images' (width, height).
    similar
        Per neuron, its most similar neurons as (neuron, Pearson r), best first.
    ica_status
        Per neuron (see [`neurofacets.ica.IcaReader.status`][]), shown on each card.
    concepts
        Per neuron (`neurofacets.semantics.display.neuron_concepts`), shown on each
        card, with a filter by concept.
    evaluation
        The layer's rows of ``evaluation/all_layers.csv``
        ([`neurofacets.readers.read_evaluation`][]), neurons 0..n-1 in order: each card shows
        its held-out AUROC against chance, whether its label holds, its selectivity q and the
        two halves' verdicts, and the page filters on the labels that hold.
    """
    counts = {facet: int((table["facet"] == facet).sum()) for facet in FACETS}
    if evaluation is not None and evaluation["neuron"].tolist() != table["neuron"].tolist():
        raise ValueError(f"the evaluation of {layer} does not hold its {len(table)} neurons in order")
    evaluation_rows = [None] * len(table) if evaluation is None else list(evaluation.itertuples(index=False))
    cards = [
        _card_view(row, card_name(int(row.neuron), card_width), similar[int(row.neuron)],
                   "" if ica_status is None else str(ica_status[int(row.neuron)]),
                   None if concepts is None else concepts.get(int(row.neuron)), scored)
        for row, scored in zip(table.itertuples(index=False), evaluation_rows)
    ]
    n_holding = None if evaluation is None else int(evaluation["label_holds"].sum())
    return _render(
        "layer.html.j2", root="../", nav=_navigation(run, layers, layer), n_neurons=len(table), counts=counts,
        facets=[{"value": facet, "label": style.FACET_LABELS[facet], "count": counts[facet]} for facet in FACETS],
        concept_options=_concept_options(concepts), n_holding=n_holding, cards=cards, image_size=tuple(card_size),
    )


@dataclass(frozen=True)
class _NeighbourRow:
    """A neuron's row of the similarity page's table."""

    neuron: int
    facet: str
    mf_norm: str
    excluded: bool
    similar: list[tuple[int, str]]
    nearest: list[tuple[int, str]]


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
    """The HTML of ``gallery/{layer}/similarity.html``: both heatmaps and a neighbour table.

    ``excluded`` marks the neurons without similarities (constant CoF rows);
    ``euclidean_max`` is the top of the Euclidean colour scale; ``similar`` and
    ``nearest`` give each neuron's (neuron, Pearson r) and (neuron, Euclidean d) neighbours.
    """
    rows = [
        _NeighbourRow(
            neuron=int(row.neuron), facet=str(row.facet), mf_norm=_fmt(row.mf_norm, 2),
            excluded=bool(excluded[int(row.neuron)]),
            similar=[(j, f"{v:.2f}") for j, v in similar[int(row.neuron)]],
            nearest=[(j, f"{v:.3g}") for j, v in nearest[int(row.neuron)]],
        )
        for row in table.itertuples(index=False)
    ]
    return _render(
        "similarity.html.j2", root="../", nav=_navigation(run, layers, layer), n_neurons=len(table),
        n_excluded=int(np.sum(excluded)), euclidean_max=f"{euclidean_max:.3g}", rows=rows,
        scales={"pearson": css_gradient(style.PEARSON_CMAP), "euclidean": css_gradient(style.EUCLIDEAN_CMAP)},
    )


def render_index_page(run: str, summary: pd.DataFrame) -> str:
    """The HTML of ``gallery/index.html``: a row per layer of ``summary`` (``summary.csv``)."""
    layers = [
        {"name": row.layer, "n_neurons": f"{row.n_neurons}",
         "mf": f"{100 * row.frac_mf:.0f}%", "sf": f"{100 * row.frac_sf:.0f}%", "dead": f"{100 * row.frac_dead:.0f}%",
         "mean_mf": _fmt(row.mean_mf), "max_mf": _fmt(row.max_mf),
         "mean_similarity": _fmt(row.mean_similarity), "mean_dissimilarity": _fmt(row.mean_dissimilarity, 2)}
        for row in summary.itertuples(index=False)
    ]
    return _render("index.html.j2", root="", run=run, version=__version__, layers=layers,
                   n_neurons=int(summary["n_neurons"].sum()))
