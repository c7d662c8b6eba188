"""Per-neuron metrics of CoF rows: Gini sparsity, flatness, MF degree, p-values, facets.

Definitions are docs/methods.md. Conventions for the cases the definitions leave open:

- A *dead* row (all zero) has sparsity NaN, flatness -1, mf NaN, p-values NaN, facet
  ``dead``; dead neurons are left out of every fit, mean and normalisation.
- A row spread perfectly evenly over all N classes has Gini exactly 0 (computed in exact
  integer arithmetic for counts), so its MF degree is ``+inf``: the most multi-faceted a
  row can be. It counts as ``MF`` under any threshold, gets ``mf_norm`` 1, and is left out
  of the normal fits and means (which need finite values) but not of empirical ranks.
- The facet compares a neuron's MF degree with a mean exactly ([`exceeds_mean`][]): a
  neuron is ``MF`` when ``mf > mean`` holds for the real numbers the floats stand for, not
  for the rounded mean, so neurons that all share one MF degree are all ``SF``.
- A layer whose neurons are all dead is reported (logging.warning) by
  [`all_layers_table`][]: its means are NaN and it has no MF or SF neuron.
"""

from __future__ import annotations

import json
import logging
import math
from fractions import Fraction

import numpy as np
import pandas as pd

from .readers import DEAD, METRIC_COLUMNS, MF, SF

logger = logging.getLogger(__name__)

FLATNESS_EPS = 1e-7  # the paper's constant added to every CoF entry before the entropy
DEAD_FLATNESS = -1.0  # the paper's flatness of an all-zero row


def _check_rows(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.ndim == 1:
        rows = rows[None, :]
    if rows.ndim != 2:
        raise ValueError(f"expected a 2-d (neurons, classes) array, got shape {rows.shape}")
    if rows.shape[1] < 2:
        raise ValueError(f"at least 2 classes are needed, got {rows.shape[1]}")
    if rows.size and (np.any(rows < 0) or not np.all(np.isfinite(rows))):
        raise ValueError("CoF rows must be finite and non-negative")
    return rows


def dead_rows(rows: np.ndarray) -> np.ndarray:
    """Boolean (neurons,): rows that are all zero (neurons never positively activated)."""
    return ~np.any(_check_rows(rows) > 0, axis=1)


def gini(rows: np.ndarray) -> np.ndarray:
    """Gini sparsity of each row (Zonoobi et al. 2011), NaN for all-zero rows.

    ``G = 1 - 2 sum_k (c_(k)/|c|_1) (N - k + 1/2)/N`` with ``c_(1) <= ... <= c_(N)``.

    Parameters
    ----------
    rows
        (neurons, N) or (N,) non-negative values. Integer counts are evaluated exactly
        (``G = (N |c|_1 - sum_k c_(k)(2N - 2k + 1)) / (N |c|_1)``) so an even row gives 0,
        not a rounding residue.

    Returns
    -------
    np.ndarray
        float64 (neurons,), in [0, 1 - 1/N].
    """
    rows = _check_rows(rows)
    n = rows.shape[1]
    ordered = np.sort(rows, axis=1)
    weights = 2 * (n - np.arange(1, n + 1)) + 1  # 2N - 2k + 1, k = 1..N
    if np.issubdtype(rows.dtype, np.integer):
        ordered = ordered.astype(np.int64)
        total = ordered.sum(axis=1)
        numerator = n * total - ordered @ weights.astype(np.int64)
        denominator = n * total
    else:
        ordered = ordered.astype(np.float64)
        total = ordered.sum(axis=1)
        numerator = n * total - ordered @ weights.astype(np.float64)
        denominator = n * total
    out = np.full(len(rows), np.nan)
    alive = total > 0
    out[alive] = numerator[alive] / denominator[alive]
    return out


def flatness(rows: np.ndarray) -> np.ndarray:
    """Spectral flatness of each row (paper eq. 1), -1 for all-zero rows.

    ``p = (c + 1e-7) / sum(c + 1e-7)``, ``H = -sum p log2 p / log2 N``, ``2**H - 1``,
    with N the row length (the number of classes), so the value lies in [0, 1].
    """
    rows = _check_rows(rows)
    n = rows.shape[1]
    # Sorted first so that rows holding the same counts in other classes give bit-identical
    # values (float sums depend on order), which keeps their MF ranks tied.
    shifted = np.sort(rows, axis=1).astype(np.float64) + FLATNESS_EPS
    p = shifted / shifted.sum(axis=1, keepdims=True)
    entropy = -(p * np.log2(p)).sum(axis=1) / np.log2(n)
    out = np.exp2(entropy) - 1.0
    out[dead_rows(rows)] = DEAD_FLATNESS
    return out


def mf_degree(sparsity: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """MF degree ``flatness / sparsity``; NaN where sparsity is NaN (dead), +inf where it is 0."""
    sparsity = np.asarray(sparsity, dtype=np.float64)
    flat = np.asarray(flat, dtype=np.float64)
    if sparsity.shape != flat.shape:
        raise ValueError(f"sparsity {sparsity.shape} and flatness {flat.shape} differ in shape")
    out = np.full(sparsity.shape, np.nan)
    alive = np.isfinite(sparsity)
    with np.errstate(divide="ignore"):
        out[alive] = flat[alive] / sparsity[alive]
    # flat > 0 always holds for a live row (entropy > 0 thanks to the 1e-7 constant), so a
    # zero sparsity gives +inf, never NaN.
    return out


def leave_one_out_p_values(mf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-sided p-values of each neuron's MF against the other neurons of its layer.

    For neuron i, the *others* are the non-dead neurons j != i (NaN = dead, left out).

    - ``p_value``: a normal with the mean and standard deviation (ddof=1) of the others'
      finite MF values; the upper tail ``P(X >= mf_i)`` if mf_i is above that mean, else
      the lower tail ``P(X <= mf_i)``. NaN when fewer than 2 finite others or their
      standard deviation is 0.
    - ``p_empirical``: the same tail as a rank fraction among the others: the fraction with
      ``mf_j >= mf_i`` (upper) or ``mf_j <= mf_i`` (lower). NaN without others.

    Parameters
    ----------
    mf
        (neurons,) MF degrees of one layer; NaN for dead neurons, +inf allowed.

    Returns
    -------
    p_value, p_empirical
        float64 (neurons,) each, NaN for dead neurons.
    """
    mf = np.asarray(mf, dtype=np.float64)
    if mf.ndim != 1:
        raise ValueError(f"mf must be 1-d, got shape {mf.shape}")
    alive = ~np.isnan(mf)
    finite = np.isfinite(mf)
    p_value = np.full(mf.shape, np.nan)
    p_empirical = np.full(mf.shape, np.nan)
    if not alive.any():
        return p_value, p_empirical

    # Leave-one-out mean and variance of the finite values, from the centred sums:
    # removing x_i (deviation d_i from the full mean m) gives mean m - d_i/(n-1) and sum of
    # squared deviations Q - d_i^2 n/(n-1). Neurons outside the finite set remove nothing.
    values = mf[finite]
    n = len(values)
    m = values.mean() if n else np.nan
    q = ((values - m) ** 2).sum() if n else np.nan
    d = np.where(finite, mf - m, 0.0)
    n_others = np.where(finite, n - 1, n)
    with np.errstate(divide="ignore", invalid="ignore"):
        loo_mean = np.where(finite, m - d / (n - 1), m)
        loo_q = np.where(finite, q - d**2 * n / (n - 1), q)
        loo_std = np.sqrt(np.clip(loo_q, 0.0, None) / (n_others - 1))
    from scipy import stats  # here, not at import: most jobs that import this module never test

    upper = mf > loo_mean
    fit_ok = alive & (n_others >= 2) & (loo_std > 0) & np.isfinite(loo_std)
    sf = stats.norm.sf(mf[fit_ok], loc=loo_mean[fit_ok], scale=loo_std[fit_ok])
    cdf = stats.norm.cdf(mf[fit_ok], loc=loo_mean[fit_ok], scale=loo_std[fit_ok])
    p_value[fit_ok] = np.where(upper[fit_ok], sf, cdf)

    # Empirical tails by ranks among the live neurons (+inf compares as the largest value).
    live = np.sort(mf[alive])
    n_live = len(live)
    at_least = n_live - np.searchsorted(live, mf, side="left")  # count of live >= mf_i (self included)
    at_most = np.searchsorted(live, mf, side="right")  # count of live <= mf_i (self included)
    others = n_live - 1
    if others > 0:
        # A mean exists only with a finite other; without one (all others +inf) the tail is
        # undefined and so is the empirical p.
        has_mean = np.isfinite(loo_mean)
        count = np.where(upper, at_least - 1, at_most - 1)
        ok = alive & has_mean
        p_empirical[ok] = count[ok] / others
    return p_value, p_empirical


def bh_q_values(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values of the finite p-values (`scipy.stats.false_discovery_control`).

    NaN p-values (dead neurons) stay NaN and do not count among the tests.
    """
    from scipy import stats  # here, not at import: most jobs that import this module never test

    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        q[finite] = stats.false_discovery_control(p[finite], method="bh")
    return q


def normalise_mf(mf: np.ndarray) -> np.ndarray:
    """Min-max normalisation of MF over the finite values; +inf -> 1, NaN (dead) stays NaN."""
    mf = np.asarray(mf, dtype=np.float64)
    out = np.full(mf.shape, np.nan)
    finite = np.isfinite(mf)
    out[mf == np.inf] = 1.0
    if finite.any():
        lo, hi = mf[finite].min(), mf[finite].max()
        out[finite] = (mf[finite] - lo) / (hi - lo) if hi > lo else 0.0
    return out


def _check_rule(rule: str | float) -> str | float:
    """``analysis.facet_threshold`` as a rule name or a finite float."""
    if isinstance(rule, (int, float)) and not isinstance(rule, bool):
        if not math.isfinite(rule):
            raise ValueError(f"analysis.facet_threshold: {rule!r} is not a finite number")
        return float(rule)
    if rule in ("global_mean", "layer_mean"):
        return rule
    raise ValueError(f"facet_threshold must be 'global_mean', 'layer_mean' or a number, got {rule!r}")


def facet_threshold(mf: np.ndarray, layers: np.ndarray, rule: str | float) -> np.ndarray:
    """The MF/SF threshold that applies to each neuron, as written in ``facet_threshold``.

    A mean is the float nearest to the exact mean (`math.fsum`); the facets compare
    with the exact mean itself ([`assign_facets`][]), so this column is for reading only.

    Parameters
    ----------
    mf
        (neurons,) MF degrees of all layers (NaN dead, +inf allowed).
    layers
        (neurons,) layer of each neuron.
    rule
        ``global_mean``: the mean finite MF of all layers; ``layer_mean``: the mean finite
        MF of the neuron's layer; a finite number: that number. NaN where the mean has no
        finite value to average.
    """
    mf = np.asarray(mf, dtype=np.float64)
    layers = np.asarray(layers)
    if mf.shape != layers.shape:
        raise ValueError(f"mf {mf.shape} and layers {layers.shape} differ in shape")
    rule = _check_rule(rule)
    finite = np.isfinite(mf)
    if isinstance(rule, float):
        return np.full(mf.shape, rule)

    def mean(values: np.ndarray) -> float:
        if not len(values):
            return np.nan
        total = _float_sum(values)
        return total / len(values) if math.isfinite(total) else float(_exact_sum(values) / len(values))

    if rule == "global_mean":
        return np.full(mf.shape, mean(mf[finite]))
    out = np.full(mf.shape, np.nan)
    for layer in pd.unique(layers):
        mine = layers == layer
        out[mine] = mean(mf[mine & finite])
    return out


#: Unit roundoff of float64 and the smallest positive float64, for the error bound of
#: [`exceeds_mean`][]'s fast test.
_UNIT_ROUNDOFF = 2.0**-53
_TINY = math.ulp(0.0)


def _float_sum(values: np.ndarray) -> float:
    """The float nearest to the exact sum of finite floats (`math.fsum`); inf on overflow."""
    try:
        return math.fsum(values.tolist())
    except OverflowError:
        return math.inf


def _exact_sum(values: np.ndarray) -> Fraction:
    """The exact sum of finite floats (each is p / 2**k): integers over a common power of two."""
    ratios = [value.as_integer_ratio() for value in values.tolist()]
    denominator = max(q for _, q in ratios)
    return Fraction(sum(p * (denominator // q) for p, q in ratios), denominator)


def exceeds_mean(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``values > mean(finite reference)``, decided exactly for the real numbers the floats are.

    ``+inf`` exceeds every mean, NaN none; without a finite reference value there is no
    mean and only ``+inf`` exceeds it. The comparison is ``n * v > S`` (n finite reference
    values summing to S). A vectorised float test settles it where the difference is
    larger than its rounding error; the rest (ties and near-ties, e.g. every neuron with
    the same MF degree, whose rounded mean can fall one ulp below them) is settled in exact
    rational arithmetic.

    Why the float test cannot err: with u = 2**-53, ``p = fl(n v)`` is within ``u |p|`` of
    ``n v`` and ``t = fsum(reference)`` (correctly rounded) within ``u |t|`` of S, plus at
    most one `_TINY` for subnormal results; so ``n v - S`` has the sign of ``p - t``
    whenever ``|p - t| > u (|p| + |t|) + _TINY``. The computed ``d = fl(p - t)`` has the
    sign of ``p - t``, ``|p - t| >= |d| / (1 + u)``, and the computed bound
    ``4 u (|p| + |t|) + 4 _TINY`` exceeds ``(1 + u)`` times that margin even after its own
    rounding; ``|d|`` above it decides. Overflow (``p`` or ``t`` infinite) goes to the exact
    path.

    Parameters
    ----------
    values
        (m,) float64 values to compare (NaN and +inf allowed).
    reference
        The values whose mean is the threshold; non-finite ones are left out.

    Returns
    -------
    numpy.ndarray
        bool (m,).
    """
    values = np.asarray(values, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    reference = reference[np.isfinite(reference)]
    out = values == np.inf
    n = len(reference)
    if n == 0:
        return out
    finite = np.isfinite(values)
    total = _float_sum(reference)
    undecided = finite.copy()
    if math.isfinite(total):
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = values * n
            difference = scaled - total
            bound = 4 * _UNIT_ROUNDOFF * (np.abs(scaled) + abs(total)) + 4 * _TINY
            sure = finite & (np.abs(difference) > bound)
        out[sure] = difference[sure] > 0
        undecided &= ~sure
    if undecided.any():
        exact_total = _exact_sum(reference)
        for i in np.flatnonzero(undecided):
            out[i] = Fraction(float(values[i])) * n > exact_total
    return out


def assign_facets(mf: np.ndarray, layers: np.ndarray, rule: str | float) -> np.ndarray:
    """Each neuron's facet under ``analysis.facet_threshold`` (docs/methods.md), decided exactly.

    ``MF`` where mf > threshold (for a mean: [`exceeds_mean`][], the exact mean of the
    finite MF of all layers or of the neuron's layer; for a number: that number), ``SF``
    otherwise, ``dead`` where mf is NaN. ``+inf`` is ``MF`` under any threshold, also where a
    mean has no finite value to average.

    Parameters
    ----------
    mf
        (neurons,) MF degrees of all layers (NaN dead, +inf allowed).
    layers
        (neurons,) layer of each neuron.
    rule
        ``global_mean``, ``layer_mean`` or a finite number.

    Returns
    -------
    numpy.ndarray
        object (neurons,) of ``MF``, ``SF``, ``dead``.
    """
    mf = np.asarray(mf, dtype=np.float64)
    layers = np.asarray(layers)
    if mf.shape != layers.shape:
        raise ValueError(f"mf {mf.shape} and layers {layers.shape} differ in shape")
    rule = _check_rule(rule)
    if isinstance(rule, float):
        above = (mf > rule) | (mf == np.inf)
    elif rule == "global_mean":
        above = exceeds_mean(mf, mf)
    else:
        above = np.zeros(mf.shape, dtype=bool)
        for layer in pd.unique(layers):
            mine = layers == layer
            above[mine] = exceeds_mean(mf[mine], mf[mine])
    out = np.where(above, MF, SF).astype(object)
    out[np.isnan(mf)] = DEAD
    return out


def facets(mf: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """``MF`` where mf > threshold or mf is +inf, ``SF`` otherwise, ``dead`` where mf is NaN.

    For a threshold given as numbers; a mean threshold is decided by [`assign_facets`][]
    against the exact mean, not its rounded value.
    """
    mf = np.asarray(mf, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = np.where((mf > threshold) | (mf == np.inf), MF, SF).astype(object)
    out[np.isnan(mf)] = DEAD
    return out


def dead_layers(table: pd.DataFrame) -> dict[str, int]:
    """``{layer: number of neurons}`` of the layers whose every neuron is dead (NaN mf), in table order."""
    mf = table["mf"].to_numpy(np.float64)
    dead = pd.Series(np.isnan(mf), index=table.index).groupby(table["layer"], sort=False).agg(["all", "size"])
    return {str(layer): int(row["size"]) for layer, row in dead.iterrows() if row["all"]}


def warn_dead_layers(table: pd.DataFrame, where: str) -> dict[str, int]:
    """Log a warning per layer whose every neuron is dead; return [`dead_layers`][].

    ``where`` says which output holds the consequence (e.g. ``metrics/all_layers.csv``).
    """
    found = dead_layers(table)
    for layer, n in found.items():
        logger.warning(
            "layer %s: all %d neurons dead (no positive activation on any image): no MF or SF neuron; "
            "its sparsity, flatness and MF degree are NaN in %s and the figures have nothing to draw for it",
            layer, n, where,
        )
    return found


#: The rank of the cut-off of ``top_classes``: a neuron lists the classes whose count is at least
#: its 5th largest (every class tied there included; its explanation, src/neurofacets/evaluation.py).
TOP_CLASSES = 5


def top_class_mask(rows: np.ndarray, n: int = TOP_CLASSES) -> np.ndarray:
    """bool (rows, columns): each row's top classes, every class tied at the cut-off included.

    A class is a top class when its count is positive and at least the row's ``n``-th largest
    count. Classes tied at the cut-off are all in, so the set depends on the counts alone,
    never on the column order (which follows the class names): a row may list more than
    ``n`` classes. A dead row lists none.
    """
    rows = _check_rows(rows)
    n = min(n, rows.shape[1])
    if rows.shape[1] == 0:
        return np.zeros(rows.shape, dtype=bool)
    cut = -np.partition(-rows, n - 1, axis=1)[:, n - 1]  # each row's n-th largest count
    return (rows > 0) & (rows >= cut[:, None])


def top_classes(rows: np.ndarray, names: list[str] | tuple[str, ...], n: int = TOP_CLASSES) -> list[str]:
    """Each row's top classes ([`top_class_mask`][]) as a JSON list of ``[name, count]`` pairs.

    ``[["tabby cat", 12], ["a;b", 3]]``, count descending, equal counts by name (then by class
    index, for classes that share a name), so the same counts under the same names give the same
    text whatever the class order; a dead row gives ``[]``. JSON carries any class name (``;``,
    ``:``, quotes, ``<script>``, unicode) unchanged; read it back with
    [`neurofacets.readers.parse_top_classes`][].
    """
    rows = _check_rows(rows)
    if len(names) != rows.shape[1]:
        raise ValueError(f"{len(names)} names for {rows.shape[1]} columns")
    listed = top_class_mask(rows, n)
    names = [str(name) for name in names]
    out = []
    for row, keep in zip(rows, listed):
        columns = sorted(np.flatnonzero(keep).tolist(), key=lambda c: (-int(row[c]), names[c], c))
        out.append(json.dumps([[names[c], int(row[c])] for c in columns], ensure_ascii=False))
    return out


def layer_metrics_table(layer: str, rows: np.ndarray, names: list[str] | tuple[str, ...]) -> pd.DataFrame:
    """The per-neuron metrics table of one layer (columns `METRIC_COLUMNS`).

    ``n_counted`` is the row sum (the number of counted top-k images).
    """
    rows = _check_rows(rows)
    sparsity = gini(rows)
    flat = flatness(rows)
    mf = mf_degree(sparsity, flat)
    p_value, p_empirical = leave_one_out_p_values(mf)
    return pd.DataFrame(
        {
            "layer": layer,
            "neuron": np.arange(len(rows)),
            "n_counted": rows.sum(axis=1).astype(np.int64),
            "sparsity": sparsity,
            "flatness": flat,
            "mf": mf,
            "p_value": p_value,
            "q_value": bh_q_values(p_value),
            "p_empirical": p_empirical,
            "q_empirical": bh_q_values(p_empirical),
            "top_classes": top_classes(rows, names),
        },
        columns=list(METRIC_COLUMNS),
    )


def all_layers_table(tables: list[pd.DataFrame], rule: str | float) -> pd.DataFrame:
    """Concatenate the layers' metrics and add ``mf_norm``, ``facet_threshold``, ``facet``.

    ``mf_norm`` is the min-max normalisation over the non-dead neurons of all layers;
    ``facet_threshold`` the threshold as a float ([`facet_threshold`][]), ``facet`` the
    exact decision ([`assign_facets`][]). A layer whose every neuron is dead is logged as a
    warning ([`warn_dead_layers`][]).
    """
    if not tables:
        raise ValueError("no metrics tables given")
    table = pd.concat(tables, ignore_index=True)
    missing = [c for c in METRIC_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"metrics tables lack columns {missing}")
    mf = table["mf"].to_numpy(np.float64)
    layers = table["layer"].to_numpy()
    table["mf_norm"] = normalise_mf(mf)
    table["facet_threshold"] = facet_threshold(mf, layers, rule)
    table["facet"] = assign_facets(mf, layers, rule)
    warn_dead_layers(table, "metrics/all_layers.csv")
    return table
