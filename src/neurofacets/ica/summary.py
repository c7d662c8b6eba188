"""Fit counts per status of a run's ICA stores: ``python -m neurofacets.ica summary results/<run>``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..pathlike import PathLike
from ..readers import layer_order
from .fit import STATUS
from .store import IcaReader


def status_counts(ica_dir: PathLike) -> pd.DataFrame:
    """Fits per status for every ``*.zarr`` ICA store in ``ica_dir`` (one row per layer).

    Columns: ``layer``, ``neurons``, ``fits``, one column per status name (counts), and
    ``not_converged_pct`` (share of all fits, percent). Layers are in the order of
    ``model/layers.csv`` beside ``ica_dir`` when it exists, else by name.
    """
    ica_dir = Path(ica_dir)
    stores = sorted(p for p in ica_dir.glob("*.zarr") if p.is_dir())
    if not stores:
        raise FileNotFoundError(f"no ICA stores (*.zarr) in {ica_dir}")
    layers_csv = ica_dir.parent / "model" / "layers.csv"
    if layers_csv.exists():
        order = {name: i for i, name in enumerate(layer_order(layers_csv))}
        stores.sort(key=lambda p: (order.get(p.stem, len(order)), p.stem))
    rows = []
    for path in stores:
        reader = IcaReader(path)
        codes = reader.status_codes
        names = reader.status_names or dict(STATUS)
        row = {"layer": path.stem, "neurons": codes.shape[0], "fits": codes.size}
        for code, name in sorted(names.items()):
            row[name] = int((codes == code).sum())
        rows.append(row)
    table = pd.DataFrame(rows).fillna(0)
    total = table.drop(columns="layer").sum().to_dict()
    table = pd.concat([table, pd.DataFrame([{"layer": "all", **total}])], ignore_index=True)
    for name in STATUS.values():
        if name not in table:
            table[name] = 0
    table = table[["layer", "neurons", "fits", *STATUS.values()]].astype({n: int for n in ["neurons", "fits", *STATUS.values()]})
    table["not_converged_pct"] = 100.0 * table["not_converged"] / table["fits"].where(table["fits"] > 0)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``summary <run folder or ica folder>`` prints `status_counts`."""
    parser = argparse.ArgumentParser(prog="python -m neurofacets.ica", description="ICA store tools")
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summary", help="fits per status, per layer and in all")
    summary.add_argument("run", help="results/<run> (or its ica/ folder)")
    args = parser.parse_args(argv)
    folder = Path(args.run)
    ica_dir = folder / "ica" if (folder / "ica").is_dir() else folder
    table = status_counts(ica_dir)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    return 0
