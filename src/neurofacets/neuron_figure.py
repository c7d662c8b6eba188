"""One picture per neuron: its independent components beside its top patches.

``neurons/{layer}/{neuron}.png`` shows, for one neuron,

- left: its first ``top_patches`` receptive-field patches (rank order, row by row);
- right: its ICs in three rows, one per mode, strongest component first:
  ``gray`` (each component scaled from its own min to max, black to white),
  ``rgb`` (each channel's unit-variance source shown as ``0.5 + s / 6`` clipped to
  [0, 1], i.e. +-3 standard deviations span the channel's range, so channel
  contrasts stay comparable) and ``uint8`` (the stored 8-bit image as is);
  a component that does not exist (degenerate fit, see [`neurofacets.ica`][]) is an
  empty panel;
- title: layer, neuron, MF degree, its p-value (normal and empirical), the number of
  counted top images and each fit's status; below: the top classes with their counts and,
  where the run has a class hierarchy, the neuron's concept (`neurofacets.semantics`).

It is built on demand from the patch store, the ICA store and ``metrics/{layer}.csv``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from .ica import read_neuron_ica
from .patches import PatchReader
from .pathlike import PathLike
from .readers import parse_top_classes, read_metrics
from .semantics.display import concept_text, neuron_concept_row
from .store import atomic_output

logger = logging.getLogger(__name__)

#: Standard deviations of a unit-variance source that span the display range in mode rgb.
RGB_DISPLAY_SIGMAS = 3.0


def read_metrics_row(metrics_csv: PathLike, neuron: int) -> dict[str, Any]:
    """The row of ``metrics/{layer}.csv`` for one neuron, as a dict."""
    table = read_metrics(metrics_csv, all_layers=False).drop(columns="layer_index")
    rows = table[table["neuron"] == neuron]
    if len(rows) != 1:
        raise KeyError(f"neuron {neuron} is not (once) in {metrics_csv}")
    return rows.iloc[0].to_dict()


def rgb_display(component: np.ndarray) -> np.ndarray:
    """Float RGB IC (rf, rf, 3) -> displayable [0, 1] image (``0.5 + s / (2 * 3)``, clipped)."""
    return np.clip(0.5 + component / (2 * RGB_DISPLAY_SIGMAS), 0.0, 1.0)


def _fmt(value: Any, spec: str) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(value) else format(value, spec)


def _blank(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def draw_neuron(
    patches_path: PathLike,
    ica_path: PathLike,
    metrics_csv: PathLike,
    neuron: int,
    out_path: PathLike,
    *,
    top_patches: int = 16,
    dpi: int = 150,
    semantics_csv: PathLike | None = None,
) -> None:
    """Draw one neuron's picture (see the module docstring) into the PNG ``out_path``.

    Parameters
    ----------
    patches_path, ica_path
        ``patches/{layer}.zarr`` and ``ica/{layer}.zarr``.
    metrics_csv
        ``metrics/{layer}.csv`` (columns neuron, n_counted, mf, p_value, p_empirical, top_classes).
    neuron
        Channel index within the layer.
    out_path
        PNG to write (atomically).
    top_patches
        Patches shown (the first ones of the rank order).
    dpi
        Resolution.
    semantics_csv
        ``semantics/{layer}.csv`` when the run has a class hierarchy: the concept is shown.
    """
    patch_store = PatchReader(patches_path)
    neurons = patch_store.n_neurons
    if not 0 <= neuron < neurons:
        raise IndexError(f"neuron {neuron} out of range: the layer has {neurons}")
    fig = neuron_figure(
        patch_store.neuron(neuron),
        read_neuron_ica(ica_path, neuron, patches_path),
        read_metrics_row(metrics_csv, neuron),
        layer=str(patch_store.attrs.get("layer", "?")),
        neuron=neuron,
        top_patches=top_patches,
        dpi=dpi,
        concept=None if semantics_csv is None else concept_text(neuron_concept_row(semantics_csv, neuron)),
    )
    with atomic_output(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    logger.info("wrote %s", out_path)


def neuron_figure(
    patches: np.ndarray,
    ics: dict[str, Any],
    metrics: dict[str, Any],
    *,
    layer: str,
    neuron: int,
    top_patches: int = 16,
    dpi: int = 150,
    concept: str | None = None,
) -> Figure:
    """Build one neuron's picture.

    Parameters
    ----------
    patches
        uint8 (n_counted, rf, rf, 3), rank order.
    ics
        [`neurofacets.ica.read_neuron_ica`][] of the neuron.
    metrics
        The neuron's row of ``metrics/{layer}.csv`` (`read_metrics_row`).
    layer, neuron
        For the title.
    top_patches
        Patches shown.
    dpi
        Resolution.
    concept
        A line naming the neuron's concept (`neurofacets.semantics.display.concept_text`).
    """
    if top_patches < 1:
        raise ValueError(f"top_patches must be >= 1, got {top_patches}")
    patches = patches[:top_patches]
    n_components = ics["gray"].shape[0]

    grid_side = math.ceil(math.sqrt(top_patches))
    # square panels: the patch grid is grid_side cells tall, the IC block 3 rows in that height
    panel_height = 2.8  # inches
    ic_width = n_components * grid_side / 3
    fig = Figure(figsize=(panel_height * (1 + ic_width / grid_side) / 0.96 + 0.3, panel_height / 0.62), dpi=dpi)
    outer = fig.add_gridspec(1, 2, width_ratios=[grid_side, ic_width], wspace=0.06,
                             left=0.02, right=0.98, top=0.78, bottom=0.16)
    left = outer[0].subgridspec(grid_side, grid_side, wspace=0.05, hspace=0.05)
    for i in range(grid_side * grid_side):
        ax = fig.add_subplot(left[i // grid_side, i % grid_side])
        _blank(ax)
        if i < len(patches):
            ax.imshow(patches[i], interpolation="nearest")
        if i == 0:
            ax.set_title(f"top {len(patches)} patches", fontsize=7, loc="left")

    right = outer[1].subgridspec(3, n_components, wspace=0.05, hspace=0.12)
    modes = [("gray", ics["gray"]), ("rgb", ics["rgb"]), ("uint8", ics["uint8"])]
    for row, (mode, components) in enumerate(modes):
        for j in range(n_components):
            ax = fig.add_subplot(right[row, j])
            _blank(ax)
            component = components[j]
            finite = np.all(np.isfinite(component)) if mode != "uint8" else np.all(np.isfinite(ics["rgb"][j]))
            if finite:
                if mode == "gray":
                    ax.imshow(component, cmap="gray", vmin=component.min(), vmax=component.max(), interpolation="nearest")
                elif mode == "rgb":
                    ax.imshow(rgb_display(component), interpolation="nearest")
                else:
                    ax.imshow(component, interpolation="nearest")
            if j == 0:
                ax.set_ylabel(mode, fontsize=8)
            if row == 0:
                ax.set_title(f"IC {j + 1}", fontsize=7)

    status = ", ".join(f"{fit} {rec['status']} ({rec['n_iter']} it)" for fit, rec in ics["fits"].items())
    fig.suptitle(
        f"{layer} neuron {neuron}: MF degree {_fmt(metrics.get('mf'), '.3f')}, "
        f"p = {_fmt(metrics.get('p_value'), '.3g')} (q {_fmt(metrics.get('q_value'), '.3g')}; "
        f"empirical {_fmt(metrics.get('p_empirical'), '.3g')}), "
        f"{int(metrics.get('n_counted', len(patches)))} counted top images",
        fontsize=9, x=0.02, ha="left", y=0.97,
    )
    fig.text(0.02, 0.86, f"ICA fits: {status}", fontsize=6.5, ha="left")
    failed = [fit for fit, rec in ics["fits"].items() if rec["status"] == "not_converged"]
    if failed:  # the pictures are kept, but they are not the ICs the method means
        fig.text(0.98, 0.86, f"NOT CONVERGED: {', '.join(failed)}", fontsize=7, ha="right", color="#b00020",
                 fontweight="bold")
    classes = parse_top_classes(metrics.get("top_classes"))
    shown = "; ".join(f"{name} ({count})" for name, count in classes[:10]) or "none"
    more = f" ... +{len(classes) - 10} more" if len(classes) > 10 else ""
    # "\$": a class name with "$" is text, not a (possibly broken) TeX formula; parse_math=False
    # would not do, matplotlib's line wrapping measures the text as TeX all the same
    fig.text(0.02, 0.05, f"top classes: {shown}{more}".replace("$", r"\$"), fontsize=7, ha="left",
             wrap=True)
    if concept:
        fig.text(0.02, 0.105, concept.replace("$", r"\$"), fontsize=7, ha="left")

    return fig
