"""Receptive-field geometry of a layer as stored in ``model/layers.csv``.

Kept apart from `neurofacets.models` so that the stages that only read the table
(patches, ICA) do not import torch (about 0.9 GB per process and per ICA worker).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import pandas as pd

from .readers import read_layers


@dataclass(frozen=True)
class LayerGeometry:
    """Map size and receptive field of one layer at a given input size.

    The unit at map position (r, c) is centred on input pixel ``(start + r*jump,
    start + c*jump)`` and sees the ``rf x rf`` box around that centre. ``kind``: ``conv``,
    ``channels_last`` or ``tokens`` (`neurofacets.models`); ``field``: how ``rf`` was
    found: ``measured`` on the graph, or for tokens ``token patch + <m> px (attention: whole
    image)``, the patch box with its context margin (the true field of a token is the whole image).
    """

    layer: str
    module: str
    channels: int
    height: int
    width: int
    rf: int
    jump: int
    start: float
    kind: str = "conv"
    field: str = "measured"


def read_layer_geometry(layers_csv: str, layer: str) -> LayerGeometry:
    """One layer's row of ``model/layers.csv``.

    Raises
    ------
    KeyError
        If the layer is not (exactly once) in the table.
    """
    table = read_layers(layers_csv)
    missing = {f.name for f in fields(LayerGeometry) if f.name not in ("kind", "field")} - set(table.columns)
    if missing:
        raise ValueError(f"{layers_csv} lacks the columns {sorted(missing)}")
    rows = table[table["layer"] == layer]
    if len(rows) != 1:
        raise KeyError(f"layer {layer!r} is not (once) in {layers_csv}; it has {list(table['layer'])}")
    row = rows.iloc[0]
    return LayerGeometry(layer, str(row["module"]), int(row["channels"]), int(row["height"]),
                         int(row["width"]), int(row["rf"]), int(row["jump"]), float(row["start"]),
                         str(row.get("kind", "conv")), str(row.get("field", "measured")))


def geometry_table(geometry: Sequence[LayerGeometry]) -> pd.DataFrame:
    """``model/layers.csv``: one row per layer in network order."""
    return pd.DataFrame([g.__dict__ for g in geometry])
