"""The evaluation summaries of runs as a Markdown table, for the docs (docs/controls.md).

Runs with the same layers (e.g. a trained and an untrained VGG16) share a row per layer; each
cell holds the runs' values joined by `` / `` in the order given::

    python -m neurofacets.evaluation_table results/vgg16 results/vgg16-random

prints the table that docs/controls.md shows, so the table there is generated, not copied.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .readers import read_evaluation_summary

#: (header, how a row's cell is computed) in table order.
COLUMNS = (
    ("held-out AUROC (chance)", lambda r: f"{r['median_auroc']:.2f} ({r['median_auroc_chance']:.2f})"),
    ("labels that hold %", lambda r: f"{100 * r['frac_label_holds']:.0f}"),
    ("concept AUROC (chance)",
     lambda r: f"{r['median_concept_auroc']:.2f} ({r['median_concept_auroc_chance']:.2f})"),
    ("split-half rho of MF", lambda r: f"{r['mf_rho']:.2f}"),
    ("kappa of MF/SF", lambda r: f"{r['facet_kappa']:.2f}"),
    ("selective at q < 0.05 %", lambda r: f"{100 * r['frac_selective_true']:.1f}"),
    ("selective with permuted labels %", lambda r: f"{100 * r['frac_selective_permuted']:.1f}"),
)


def _cell(row: pd.Series, compute) -> str:
    text = compute(row)
    return "-" if "nan" in text else text


def evaluation_markdown(summaries: Sequence[pd.DataFrame]) -> str:
    """One Markdown table: a row per layer, each cell the runs' values joined by `` / ``.

    Parameters
    ----------
    summaries
        ``evaluation/summary.csv`` of each run ([`neurofacets.readers.read_evaluation_summary`][]),
        all with the same layers in the same order.
    """
    if not summaries:
        raise ValueError("no evaluation summaries given")
    layers = summaries[0]["layer"].tolist()
    for table in summaries[1:]:
        if table["layer"].tolist() != layers:
            raise ValueError(f"the runs' layers differ: {layers} and {table['layer'].tolist()}")
    lines = ["| layer | " + " | ".join(header for header, _ in COLUMNS) + " |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for i, layer in enumerate(layers):
        cells = [" / ".join(_cell(table.iloc[i], compute) for table in summaries) for _, compute in COLUMNS]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="results/<run> folders, in the order of the cells")
    args = parser.parse_args(argv)
    print(evaluation_markdown([read_evaluation_summary(run / "evaluation" / "summary.csv") for run in args.runs]), end="")


if __name__ == "__main__":
    main()
