"""A neuron's concept as the gallery and the neuron picture show it.

``semantics/{layer}.csv`` gives each neuron's concept and semantic facet;
``semantics/hierarchy.csv`` gives the concept's ancestors, so the gallery can filter by a
concept *and everything under it* (``dog.n.01`` finds the neurons whose concept is
``dog.n.01``, ``hound.n.01``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..pathlike import PathLike
from ..readers import read_semantics_table
from .hierarchy import read_class_hierarchy


@dataclass(frozen=True)
class NeuronConcept:
    """What a card says about one neuron's concept.

    Attributes
    ----------
    name
        The concept's name, ``dog.n.01``; empty without a concept.
    label
        ``dog.n.01 (87 %)``; empty without a concept.
    facet
        Semantic facet: ``SF``, ``concept``, ``MF`` or ``dead``.
    path
        Names from the root down to the concept along its canonical path (for a tooltip).
    terms
        Lower-case search terms, no spaces: for the concept and every ancestor, its name,
        its id and (for WordNet names) the lemma before ``.n.``.
    """

    name: str
    label: str
    facet: str
    path: tuple[str, ...]
    terms: tuple[str, ...]


def search_term(text: str) -> str:
    """How the gallery compares a concept query: lower case, blanks as underscores."""
    return "_".join(str(text).strip().lower().split())


def neuron_concepts(semantics_csv: PathLike, hierarchy_csv: PathLike) -> dict[int, NeuronConcept]:
    """``{neuron: NeuronConcept}`` of one layer."""
    table = read_semantics_table(semantics_csv)
    hierarchy = read_class_hierarchy(hierarchy_csv).hierarchy
    parent = hierarchy.canonical_parent
    out = {}
    for row in table.itertuples(index=False):
        node = hierarchy.index.get(row.concept) if row.concept else None
        if row.concept and node is None:
            raise ValueError(f"{semantics_csv}: neuron {row.neuron}'s concept {row.concept!r} is not in {hierarchy_csv}")
        path, terms = [], set()
        if node is not None:
            for ancestor in hierarchy.ancestors(node):
                name = hierarchy.names[ancestor]
                terms |= {search_term(name), search_term(hierarchy.nodes[ancestor]), search_term(name.split(".n.")[0])}
            step = node
            while step >= 0:
                path.append(hierarchy.names[step])
                step = int(parent[step])
        out[int(row.neuron)] = NeuronConcept(str(row.concept_name), str(row.concept_label), str(row.semantic_facet),
                                             tuple(reversed(path)), tuple(sorted(terms)))
    return out


def neuron_concept_row(semantics_csv: PathLike, neuron: int) -> dict[str, object]:
    """One neuron's row of ``semantics/{layer}.csv`` as a dict (for the neuron picture)."""
    table = read_semantics_table(semantics_csv)
    rows = table[table["neuron"] == neuron]
    if len(rows) != 1:
        raise KeyError(f"neuron {neuron} is not (once) in {semantics_csv}")
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rows.iloc[0].to_dict().items()}


def concept_text(row: dict[str, object]) -> str:
    """``concept: dog.n.01 (87 %), depth 13 · semantic facet: concept``, for the neuron picture."""
    facet = row.get("semantic_facet") or "?"
    if row.get("concept_label"):
        return f"concept: {row['concept_label']}, depth {int(row['concept_depth'])} · semantic facet: {facet}"
    return f"concept: none covers the share · semantic facet: {facet}"
