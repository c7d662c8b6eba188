"""The headline numbers of a run per layer (``results/{run}/summary.csv``), to compare runs.

One row per layer in network order: neuron counts, fractions of MF / SF / dead neurons
(of all the layer's neurons, so they sum to 1), mean and maximum MF degree (raw and the
mean normalised), mean sparsity and flatness (non-dead neurons), and the mean neuronal
similarity and dissimilarity of ``similarity/summary.csv``. A perfectly even CoF row has
an MF degree of +inf (see [`neurofacets.metrics`][]); like upstream's means, ``mean_mf``
and ``max_mf`` are over the finite values (``mean_mf_norm`` counts it as 1). ``depth`` places the layer
between 0 (first analysed layer) and 1 (last) so runs of different networks line up.

Every row also says how many images the run analysed of how many entries its dataset listed
(``n_images``, ``n_images_listed``): a ``dataset.images_per_class`` cap, refused files and
decoding failures make the first smaller.

A layer whose neurons are all dead (they never fired) has ``n_dead = n_neurons``,
``frac_dead = 1``, ``n_mf = n_sf = 0`` and NaN means (there is nothing to average): that is
what marks it in the table; `write_summary` also logs a warning naming it
(``layer X: all N neurons dead``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .bootstrap import with_intervals
from .pathlike import PathLike
from .readers import (
    DEAD,
    MF,
    SF,
    SUMMARY_COLUMNS,
    SUMMARY_HEADLINE_COLUMNS,
    layer_order,
    read_image_counts,
    read_metrics,
    read_similarity_summary,
    read_summary_draws,
)
from .store import write_csv

logger = logging.getLogger(__name__)


def summarize_run(
    metrics: pd.DataFrame, similarity_summary: pd.DataFrame, layers: Sequence[str], run: str,
    preprocessing: str = "", image_counts: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """The per-layer summary table (`SUMMARY_COLUMNS`) of one run.

    Parameters
    ----------
    metrics
        ``metrics/all_layers.csv`` (as read by [`neurofacets.readers.read_metrics`][]).
    similarity_summary
        ``similarity/summary.csv``.
    layers
        The run's layers in network order; a layer without metrics is an error.
    run
        The run's name, written in the ``run`` column.
    preprocessing
        [`neurofacets.config.preprocessing_label`][] of the run, written in every row, so
        that a comparison of runs can say when they saw different pixels.
    image_counts
        ``(n_images, n_images_listed)`` ([`neurofacets.readers.read_image_counts`][]),
        written in every row: fewer images analysed than listed (a cap, refused files) is in
        the table. None leaves both columns empty (a table shown, not written: the gallery).
    """
    if not run:
        raise ValueError("run name must not be empty")
    layers = list(layers)
    present = set(metrics["layer"])
    missing = [name for name in layers if name not in present]
    if missing:
        raise ValueError(f"metrics have no rows for layers {missing}")
    sim = similarity_summary.set_index("layer")
    n_images, n_listed = image_counts if image_counts is not None else (None, None)
    rows = []
    by_layer = dict(tuple(metrics.groupby("layer", sort=False)))  # one pass: called once per bootstrap draw
    for index, name in enumerate(layers):
        table = by_layer[name]
        live = table[table["facet"] != DEAD]
        n = len(table)
        counts = {facet: int((table["facet"] == facet).sum()) for facet in (MF, SF, DEAD)}
        mf = live["mf"].to_numpy(dtype=float)
        mf = mf[np.isfinite(mf)]
        rows.append({
            "run": run,
            "layer": name,
            "layer_index": index,
            "depth": index / (len(layers) - 1) if len(layers) > 1 else 0.0,
            "n_neurons": n,
            "n_mf": counts[MF],
            "n_sf": counts[SF],
            "n_dead": counts[DEAD],
            "frac_mf": counts[MF] / n,
            "frac_sf": counts[SF] / n,
            "frac_dead": counts[DEAD] / n,
            "mean_mf": float(mf.mean()) if mf.size else np.nan,
            "max_mf": float(mf.max()) if mf.size else np.nan,
            "mean_mf_norm": float(live["mf_norm"].mean()) if len(live) else np.nan,
            "mean_sparsity": float(live["sparsity"].mean()) if len(live) else np.nan,
            "mean_flatness": float(live["flatness"].mean()) if len(live) else np.nan,
            "mean_similarity": float(sim.at[name, "mean_similarity"]) if name in sim.index else np.nan,
            "mean_dissimilarity": float(sim.at[name, "mean_dissimilarity"]) if name in sim.index else np.nan,
            "n_excluded": int(sim.at[name, "n_excluded"]) if name in sim.index else -1,
            "preprocessing": preprocessing,
            "n_images": n_images,
            "n_images_listed": n_listed,
        })
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def write_summary(
    metrics_csv: PathLike,
    similarity_summary_csv: PathLike,
    layers_csv: PathLike,
    output: PathLike,
    run: str,
    preprocessing: str = "",
    *,
    images_csv: PathLike,
    dataset_skipped_csv: PathLike,
    extraction_skipped_csv: PathLike,
    draws_csv: PathLike | None = None,
) -> pd.DataFrame:
    """Read a run's tables, write ``summary.csv`` atomically and return it.

    ``images_csv``, ``dataset_skipped_csv`` and ``extraction_skipped_csv`` give the images
    analysed and listed (`neurofacets.readers.read_image_counts`); when fewer were
    analysed than listed the log says so. ``draws_csv`` (``bootstrap/summary_draws.csv``) gives
    the 95 % intervals of `neurofacets.readers.SUMMARY_HEADLINE_COLUMNS`
    (`neurofacets.bootstrap.with_intervals`); None leaves them empty.
    """
    layers = layer_order(layers_csv)
    metrics = read_metrics(metrics_csv, layers)
    present = [name for name in layers if name in set(metrics["layer"])]
    counts = read_image_counts(images_csv, dataset_skipped_csv, extraction_skipped_csv)
    if counts[0] < counts[1]:
        logger.warning("run %s analysed %d of the %d entries its dataset listed (the others, with the reason: "
                       "%s, %s)", run, *counts, dataset_skipped_csv, extraction_skipped_csv)
    summary = summarize_run(metrics, read_similarity_summary(similarity_summary_csv, layers), present, run,
                            preprocessing, counts)
    if draws_csv is not None:
        summary = with_intervals(summary, read_summary_draws(draws_csv), SUMMARY_HEADLINE_COLUMNS)
    for row in summary[summary["n_dead"] == summary["n_neurons"]].itertuples(index=False):
        logger.warning("layer %s: all %d neurons dead (no positive activation on any image): its row of %s has "
                       "frac_dead 1, no MF or SF neuron and NaN means", row.layer, row.n_neurons, output)
    write_csv(output, summary, float_format="%.6g")
    logger.info("summary of run %s: %d layers -> %s", run, len(summary), output)
    return summary
