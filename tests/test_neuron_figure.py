"""Per-neuron picture: what each panel shows, the text, the PNG file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr
from matplotlib.image import imread

from neurofacets.ica import FitSettings, read_neuron_ica, write_ica_store
from neurofacets.neuron_figure import (
    draw_neuron,
    neuron_figure,
    read_metrics_row,
    rgb_display,
)

RF, K, NEURONS, N_COMP = 10, 12, 3, 3


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """Patch store (neuron 2 has only 1 patch: degenerate ICs), ICA store, metrics table."""
    tmp = tmp_path_factory.mktemp("neuron_figure")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:RF, 0:RF]
    patches = np.zeros((NEURONS, K, RF, RF, 3), dtype=np.uint8)
    for n in range(NEURONS):
        for i in range(K):
            wave = np.sin(x * rng.uniform(0.3, 1.5) + rng.uniform(0, 6)) + np.cos(y * rng.uniform(0.3, 1.5))
            noise = rng.laplace(size=(RF, RF, 3)) * 0.3
            patches[n, i] = np.clip((wave[..., None] + noise + 2.5) * 50, 0, 255).astype(np.uint8)
    counts = [K, 7, 1]
    root = zarr.open_group(str(tmp / "patches.zarr"), mode="w", zarr_format=3)
    root.create_array("patches", shape=patches.shape, chunks=(1, K, RF, RF, 3), dtype="uint8")[:] = patches
    root.create_array("n_counted", shape=(NEURONS,), dtype="int32")[:] = counts
    root.attrs.update({"layer": "conv2_1", "layout": "patches", "created": "t0"})
    write_ica_store(tmp / "ica.zarr", tmp / "patches.zarr", FitSettings(n_components=N_COMP, max_iter=200))
    # forced: neuron 1's fits stop after one iteration (and one restart), so they do not converge
    write_ica_store(tmp / "ica-capped.zarr", tmp / "patches.zarr",
                    FitSettings(n_components=N_COMP, max_iter=1, tol=1e-12, restarts=1))
    pd.DataFrame(
        {
            "layer": "conv2_1",
            "neuron": range(NEURONS),
            "n_counted": counts,
            "sparsity": [0.9, 0.8, np.nan],
            "flatness": [0.5, 0.3, -1.0],
            "mf": [0.5556, 0.375, np.nan],
            "p_value": [0.0123, 0.5, np.nan],
            "q_value": [0.0246, 0.5, np.nan],
            "p_empirical": [0.02, 0.5, np.nan],
            "q_empirical": [0.04, 0.5, np.nan],
            "top_classes": ['[["tabby cat", 5], ["dog: spaniel", 4], ["car", 3]]', '[["car", 7]]', "[]"],
        }
    ).to_csv(tmp / "metrics.csv", index=False)
    return tmp, patches


def test_rgb_display_maps_three_sigmas_to_the_range():
    values = np.array([[[-3.0, 0.0, 3.0], [1.5, -1.5, 9.0]]])
    assert rgb_display(values).tolist() == [[[0.0, 0.5, 1.0], [0.75, 0.25, 1.0]]]


def test_panels_show_the_patches_and_the_three_modes(stores):
    tmp, patches = stores
    ics = read_neuron_ica(tmp / "ica.zarr", 0)
    metrics = read_metrics_row(tmp / "metrics.csv", 0)
    fig = neuron_figure(patches[0], ics, metrics, layer="conv2_1", neuron=0, top_patches=9)
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(shown) == 9 + 3 * N_COMP
    for i in range(9):  # rank order, row by row
        assert np.array_equal(shown[i], patches[0, i])
    for j in range(N_COMP):
        assert np.array_equal(shown[9 + j], ics["gray"][j])
        np.testing.assert_array_equal(shown[9 + N_COMP + j], rgb_display(ics["rgb"][j]))
        assert np.array_equal(shown[9 + 2 * N_COMP + j], ics["uint8"][j])
    title = fig._suptitle.get_text()
    assert "conv2_1 neuron 0" in title and "MF degree 0.556" in title and "p = 0.0123 (q 0.0246" in title
    assert "12 counted" in title
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "tabby cat (5); dog: spaniel (4); car (3)" in texts and "gray ok" in texts
    assert "NOT CONVERGED" not in texts


def test_a_fit_that_did_not_converge_is_named_in_red(stores):
    tmp, patches = stores
    ics = read_neuron_ica(tmp / "ica-capped.zarr", 1)
    assert {rec["status"] for rec in ics["fits"].values()} == {"not_converged"}
    assert all(rec["attempts"] == 2 for rec in ics["fits"].values())
    fig = neuron_figure(patches[1, :7], ics, read_metrics_row(tmp / "metrics.csv", 1), layer="conv2_1", neuron=1)
    warning = [t for t in fig.texts if t.get_text().startswith("NOT CONVERGED")]
    assert len(warning) == 1 and warning[0].get_text() == "NOT CONVERGED: gray, red, green, blue"
    assert warning[0].get_color() == "#b00020"
    assert sum(1 for ax in fig.axes if ax.images) == 7 + 3 * N_COMP  # the pictures are kept


def test_degenerate_neuron_draws_empty_ic_panels(stores):
    tmp, patches = stores
    ics = read_neuron_ica(tmp / "ica.zarr", 2)
    assert ics["fits"]["gray"]["status"] == "too_few_patches"
    fig = neuron_figure(patches[2, :1], ics, read_metrics_row(tmp / "metrics.csv", 2), layer="conv2_1", neuron=2)
    assert sum(1 for ax in fig.axes if ax.images) == 1  # the one patch, no IC
    assert "MF degree n/a" in fig._suptitle.get_text()
    assert "top classes: none" in " ".join(t.get_text() for t in fig.texts)


def test_draw_neuron_writes_a_png(stores):
    tmp, _ = stores
    out = tmp / "neurons" / "conv2_1" / "1.png"
    draw_neuron(tmp / "patches.zarr", tmp / "ica.zarr", tmp / "metrics.csv", 1, out, dpi=50)
    image = imread(out)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > image.shape[0]
    assert image.std() > 0.05  # not blank
    assert [p.name for p in out.parent.iterdir()] == ["1.png"]
    with pytest.raises(IndexError, match="out of range"):
        draw_neuron(tmp / "patches.zarr", tmp / "ica.zarr", tmp / "metrics.csv", 3, tmp / "x.png")
