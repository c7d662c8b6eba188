"""Figures of the paper (neurofacets.figures): files, panels and the numbers they draw."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakerun import figure_inputs, make_fake_run
from PIL import Image

from neurofacets import readers
from neurofacets.evaluation import stack_evaluation_summaries
from neurofacets.figures import FIGURES, build_figure, distributions, facets, images, similarity, style, write_tables
from neurofacets.ica import IcaReader, read_neuron_ica
from neurofacets.patches import read_neuron_patches
from neurofacets.readers import read_evaluation_summaries

EXAMPLES = 2
PAPER_FIGURES = [stem for stem in FIGURES if stem.startswith(("fig", "app"))]


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return make_fake_run(tmp_path_factory.mktemp("run"))


def inputs_of(fake):
    return figure_inputs(fake)


def metrics_of(fake):
    return readers.read_metrics(fake.out / "metrics" / "all_layers.csv", fake.layers)


def expected_axes(stem: str, fake) -> int:
    """Panels each figure must have, counted from the fake run's ground truth."""
    m = fake.metrics
    n_layers = len(fake.layers)
    if stem in ("fig1_sparsity_flatness", "fig2_mf_distribution", "fig3_mf_sf_counts", "fig5_similarity"):
        return 2
    if stem == "appA_distributions":
        return 2 * n_layers  # flatness and sparsity panel per layer
    if stem == "appC_heatmaps":
        return 2 * n_layers + 2  # two heatmaps per layer + one colour bar per block
    if stem == "appB_ica_by_mf":
        return sum(min(5, int(((m["layer"] == name) & (m["facet"] != "dead")).sum())) for name in fake.layers)
    if stem == "fig4_facet_examples":  # 4 image panels per shown neuron
        rows = sum(min(EXAMPLES, int(((m["layer"] == name) & (m["facet"] == facet)).sum()))
                   for name in fake.layers for facet in ("SF", "MF"))
        return 4 * rows
    raise AssertionError(stem)


def check_pdf(path):
    data = path.read_bytes()
    assert data.startswith(b"%PDF-"), path
    assert data.rstrip().endswith(b"%%EOF"), path
    assert len(data) > 2000, path


def check_png(path, min_size=(200, 100)):
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size[0] >= min_size[0] and img.size[1] >= min_size[1], img.size
        pixels = np.asarray(img.convert("L"), dtype=float)
    assert pixels.std() > 5, f"{path} looks blank"


@pytest.mark.parametrize("stem", PAPER_FIGURES)
def test_every_figure_writes_valid_files_with_expected_panels(fake, tmp_path, stem):
    outputs = [tmp_path / f"{stem}.pdf", tmp_path / f"{stem}.png"]
    fig = build_figure(stem, inputs_of(fake), outputs, dpi=80, options={"examples_per_layer": EXAMPLES})
    check_pdf(outputs[0])
    check_png(outputs[1])
    assert len(fig.axes) == expected_axes(stem, fake)
    # A figure is drawn from its own inputs only: leave every other input out.
    only_needed = {name: value for name, value in inputs_of(fake).items() if name in FIGURES[stem].inputs}
    assert len(FIGURES[stem].draw(only_needed, {"examples_per_layer": EXAMPLES}).axes) == len(fig.axes)


def test_svg_and_wrong_outputs(fake, tmp_path):
    build_figure("fig3_mf_sf_counts", inputs_of(fake), [tmp_path / "fig3_mf_sf_counts.svg"], dpi=72)
    assert b"<svg" in (tmp_path / "fig3_mf_sf_counts.svg").read_bytes()[:500]
    with pytest.raises(ValueError, match="not named"):
        build_figure("fig3_mf_sf_counts", inputs_of(fake), [tmp_path / "other.pdf"], dpi=72)
    with pytest.raises(ValueError, match="unsupported figure format"):
        build_figure("fig3_mf_sf_counts", inputs_of(fake), [tmp_path / "fig3_mf_sf_counts.jpg"], dpi=72)
    with pytest.raises(ValueError, match="unknown figure"):
        build_figure("fig9", inputs_of(fake), [tmp_path / "fig9.pdf"], dpi=72)
    with pytest.raises(ValueError, match="needs the inputs"):
        build_figure("fig4_facet_examples", {"metrics": inputs_of(fake)["metrics"]},
                     [tmp_path / "fig4_facet_examples.pdf"], dpi=72)
    assert not (tmp_path / "fig4_facet_examples.pdf").exists()


def test_same_data_give_identical_files(fake, tmp_path):
    # No dates or versions inside the files: rebuilding an unchanged figure changes nothing.
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        build_figure("fig3_mf_sf_counts", inputs_of(fake),
                     [tmp_path / name / "fig3_mf_sf_counts.pdf", tmp_path / name / "fig3_mf_sf_counts.png"], dpi=72)
    for suffix in ("pdf", "png"):
        assert (tmp_path / "a" / f"fig3_mf_sf_counts.{suffix}").read_bytes() == \
            (tmp_path / "b" / f"fig3_mf_sf_counts.{suffix}").read_bytes()


# --- the numbers drawn, against independent computations ------------------------------------


def test_fig1_curves_peak_at_the_layer_mean_of_normalised_values(fake):
    fig = distributions.plot_sparsity_flatness(metrics_of(fake), fake.layers)
    m = fake.metrics
    live = m[m["facet"] != "dead"]
    for ax, column in zip(fig.axes, ("sparsity", "flatness")):
        lo, hi = live[column].min(), live[column].max()
        assert len(ax.lines) == len(fake.layers)
        for line, name in zip(ax.lines, fake.layers):
            values = ((live.loc[live["layer"] == name, column] - lo) / (hi - lo)).to_numpy()
            x, y = line.get_data()
            assert line.get_label() == name
            step = x[1] - x[0]
            assert abs(x[np.argmax(y)] - values.mean()) <= step
            # height of a normal's peak: 1 / (sd sqrt(2 pi)), sd the ML (ddof=0) estimate
            assert y.max() == pytest.approx(1 / (values.std() * math.sqrt(2 * math.pi)), rel=1e-3)


def test_fig2_medians_and_raw_numbers(fake):
    fig = distributions.plot_mf_distribution(metrics_of(fake), fake.layers)
    m = fake.metrics
    live = m[m["facet"] != "dead"]
    ax_layers, ax_all = fig.axes
    medians = [line for line in ax_layers.lines if line.get_gid() == "median"]
    got = sorted(float(line.get_ydata()[0]) for line in medians)
    want = sorted(float(np.median(live.loc[live["layer"] == name, "mf_norm"])) for name in fake.layers)
    assert got == pytest.approx(want)
    text = " ".join(t.get_text() for t in ax_all.texts)
    assert f"max {live['mf'].max():.2f}" in text and f"mean {live['mf'].mean():.2f}" in text
    assert [t.get_text() for t in ax_layers.get_xticklabels()] == fake.layers


def test_fig3_fractions_and_top_neurons(fake):
    fig = facets.plot_mf_sf_counts(metrics_of(fake), fake.layers)
    m = fake.metrics
    ax_frac, ax_mf = fig.axes
    lines = {line.get_label(): line.get_ydata() for line in ax_frac.lines}
    for facet in ("MF", "SF", "dead"):
        want = [np.mean(m.loc[m["layer"] == name, "facet"] == facet) for name in fake.layers]
        np.testing.assert_allclose(lines[style.FACET_LABELS[facet]], want)
    top = {line.get_label(): np.asarray(line.get_ydata(), float) for line in ax_mf.lines}
    for i, name in enumerate(fake.layers):
        rows = m[m["layer"] == name]
        mf_rows, sf_rows = rows[rows["facet"] == "MF"], rows[rows["facet"] == "SF"]
        want_mf = mf_rows["mf_norm"].max() if len(mf_rows) else np.nan
        want_sf = sf_rows["mf_norm"].min() if len(sf_rows) else np.nan
        np.testing.assert_allclose(top["top MF neuron (highest)"][i], want_mf)
        np.testing.assert_allclose(top["top SF neuron (lowest)"][i], want_sf)


def test_tables_match_a_brute_force_ranking(fake, tmp_path):
    sf, mf = write_tables(fake.out / "metrics" / "all_layers.csv", fake.out / "model" / "layers.csv",
                          tmp_path / "t2.csv", tmp_path / "t3.csv", per_layer=2)
    m = fake.metrics
    for table, facet, ascending in ((sf, "SF", True), (mf, "MF", False)):
        want = []
        for name in fake.layers:
            rows = m[(m["layer"] == name) & (m["facet"] == facet)]
            ranked = sorted(rows.itertuples(), key=lambda r: ((r.mf if ascending else -r.mf), r.neuron))[:2]
            want += [(name, rank + 1, r.neuron, r.mf, r.p_value) for rank, r in enumerate(ranked)]
        got = list(table[["layer", "rank", "neuron", "mf", "p_value"]].itertuples(index=False, name=None))
        assert got == want
    written = pd.read_csv(tmp_path / "t3.csv")
    assert list(written.columns) == list(facets.TABLE_COLUMNS)
    assert written["mf"].tolist() == pytest.approx(mf["mf"].tolist(), rel=1e-5)


def test_top_mf_neuron_with_infinite_degree_ranks_first():
    # A CoF row spread evenly over every class has sparsity 0 and MF degree +inf upstream.
    metrics = pd.DataFrame({
        "layer": ["a"] * 4, "neuron": [0, 1, 2, 3], "mf": [0.5, np.inf, 0.9, np.nan],
        "mf_norm": [0.0, 1.0, 1.0, np.nan], "facet": ["SF", "MF", "MF", "dead"],
        "p_value": [0.1, np.nan, 0.2, np.nan], "p_empirical": [0.1, 0.0, 0.2, np.nan],
        "sparsity": [0.8, 0.0, 0.5, np.nan], "flatness": [0.4, 1.0, 0.45, -1.0],
        "n_counted": [5, 5, 5, 0], "top_classes": ['[["x", 5]]', '[["x", 1], ["y", 1]]', '[["x", 3], ["y", 2]]', "[]"],
    })
    assert facets.top_neurons(metrics, ["a"], "MF", 2)["neuron"].tolist() == [1, 2]
    assert facets.top_neurons(metrics, ["a"], "SF", 5)["neuron"].tolist() == [0]
    fig = distributions.plot_mf_distribution(metrics, ["a"])
    assert "max 0.90" in " ".join(t.get_text() for t in fig.axes[1].texts)


def test_fig4_tiles_are_the_stored_components_and_patches(fake):
    metrics = metrics_of(fake)
    fig = facets.plot_facet_examples(metrics, fake.layers, inputs_of(fake)["ica"], inputs_of(fake)["patches"],
                                     examples_per_layer=1, n_patches=3, tile=12)
    first_sf = facets.top_neurons(metrics, fake.layers, "SF", 1).iloc[0]
    ics = read_neuron_ica(fake.out / "ica" / f"{first_sf.layer}.zarr", int(first_sf.neuron))
    rf = ics["uint8"].shape[1]
    assert 12 % rf == 0  # rf 3: nearest enlargement repeats each pixel 4 times
    factor = 12 // rf
    row = fig.axes[:4]
    uint8_mosaic = row[2].images[0].get_array()
    first_ic = ics["uint8"][0]
    np.testing.assert_array_equal(uint8_mosaic[:12, :12], first_ic.repeat(factor, 0).repeat(factor, 1))
    patch_mosaic = row[3].images[0].get_array()
    best_patch = read_neuron_patches(fake.out / "patches" / f"{first_sf.layer}.zarr", int(first_sf.neuron))[0]
    np.testing.assert_array_equal(patch_mosaic[:12, :12], best_patch.repeat(factor, 0).repeat(factor, 1))
    assert patch_mosaic.shape[1] == 3 * 12 + 2  # 3 patches, 1 px gaps
    label = row[0].get_ylabel()
    assert f"#{int(first_sf.neuron)}" in label and f"MF {first_sf.mf_norm:.2f}" in label


def test_appB_picks_neurons_spread_over_the_mf_ranking(fake):
    m = fake.metrics
    chosen = facets.spread_neurons(metrics_of(fake), "conv1_2", 3)
    live = m[(m["layer"] == "conv1_2") & (m["facet"] != "dead")].sort_values(["mf", "neuron"])
    # 8 live neurons, 3 picks: ranks 0, 3.5 -> 4 (numpy rounds half to even) and 7
    assert chosen["neuron"].tolist() == live["neuron"].iloc[[0, 4, 7]].tolist()


def test_appC_heatmaps_show_the_stored_matrices(fake):
    stores = {name: fake.out / "similarity" / f"{name}.zarr" for name in fake.layers}
    fig = similarity.plot_heatmaps(stores, fake.layers)
    heatmaps = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert len(heatmaps) == 2 * len(fake.layers)
    panels = [(kind, name) for kind in ("euclidean", "pearson") for name in fake.layers]
    for ax, (kind, name) in zip(heatmaps, panels):
        stored = getattr(readers.read_similarity(stores[name]), kind)
        shown = ax.images[0].get_array()
        np.testing.assert_array_equal(np.ma.getmaskarray(shown), np.isnan(stored))
        np.testing.assert_allclose(shown.filled(np.nan), stored)
        assert ax.images[0].get_rasterized()
    assert heatmaps[-1].images[0].norm.vmin == -1 and heatmaps[-1].images[0].norm.vmax == 1


def test_fig5_draws_the_similarity_summary(fake):
    summary = pd.read_csv(fake.out / "similarity" / "summary.csv")
    fig = similarity.plot_similarity_summary(summary.iloc[::-1], fake.layers)  # any row order
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), summary["mean_similarity"])
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), summary["mean_dissimilarity"])


# --- the evaluation (held-out scores, split halves, selectivity) ---------------------------------


def _evaluation_tables(fake):
    summary = readers.read_evaluation_summary(fake.out / "evaluation" / "summary.csv")
    return summary, readers.read_evaluation(fake.out / "evaluation" / "all_layers.csv", fake.layers)


def _solid(ax):
    return [line for line in ax.lines if line.get_linestyle() == "-"]


def test_evaluation_figure_draws_held_out_auroc_halves_and_selectivity(fake, tmp_path):
    outputs = [tmp_path / "evaluation.pdf", tmp_path / "evaluation.png"]
    fig = build_figure("evaluation", inputs_of(fake), outputs, dpi=80)
    check_pdf(outputs[0])
    check_png(outputs[1])
    assert len(fig.axes) == 3
    summary, every = _evaluation_tables(fake)
    ax_auroc, ax_halves, ax_selective = fig.axes
    assert [t.get_text() for t in ax_auroc.get_xticklabels()] == fake.layers
    # (a) per layer the median of the neurons' held-out AUROC, its interquartile band, the chance median dashed;
    # the fake run has a class hierarchy: the concepts' too
    for line, band, column in zip(_solid(ax_auroc), ax_auroc.collections, ("auroc", "concept_auroc")):
        per_layer = every.groupby("layer", sort=False)[column]
        np.testing.assert_allclose(line.get_ydata(), per_layer.median().reindex(fake.layers))
        quartiles = per_layer.quantile([0.25, 0.75]).unstack().reindex(fake.layers)
        corners = band.get_paths()[0].vertices
        np.testing.assert_allclose(corners[:, 1].min(), quartiles[0.25].min())
        np.testing.assert_allclose(corners[:, 1].max(), quartiles[0.75].max())
    dashed = [line for line in ax_auroc.lines if line.get_linestyle() == "--"]
    np.testing.assert_allclose(dashed[0].get_ydata(), summary["median_auroc_chance"])
    np.testing.assert_allclose(dashed[1].get_ydata(), summary["median_concept_auroc_chance"])
    assert len(_solid(ax_auroc)) == 2 and len(ax_auroc.collections) == 2
    # (b) split-half rho and kappas, NaN where undefined (a layer with one facet)
    assert [line.get_label() for line in ax_halves.lines[:3]] == [
        "MF degree (Spearman rho)", "MF/SF facet (Cohen's kappa)", "semantic facet (Cohen's kappa)"]
    for line, column in zip(ax_halves.lines, ("mf_rho", "facet_kappa", "semantic_facet_kappa")):
        np.testing.assert_allclose(line.get_ydata(), summary[column])
    # (c) selective with the true and with permuted labels, and the 5 % level
    np.testing.assert_allclose(ax_selective.lines[0].get_ydata(), summary["frac_selective_true"])
    np.testing.assert_allclose(ax_selective.lines[1].get_ydata(), summary["frac_selective_permuted"])
    np.testing.assert_allclose(ax_selective.lines[2].get_ydata(), summary["frac_label_holds"])
    assert ax_selective.lines[3].get_ydata()[0] == pytest.approx(0.05)


def test_evaluation_figure_without_a_hierarchy_draws_no_concepts(fake):
    from neurofacets.figures import evaluation

    summary, every = _evaluation_tables(fake)
    every = every.drop(columns=[c for c in readers.EVALUATION_CONCEPT_COLUMNS if c in every])
    summary = summary.assign(median_concept_auroc=np.nan, median_concept_auroc_chance=np.nan,
                             semantic_facet_kappa=np.nan)
    fig = evaluation.plot_evaluation(summary, every, fake.layers)
    assert len(_solid(fig.axes[0])) == 1 and len(fig.axes[0].collections) == 1
    assert [line.get_label() for line in fig.axes[1].lines[:2]] == ["MF degree (Spearman rho)",
                                                                    "MF/SF facet (Cohen's kappa)"]
    assert "semantic facet (Cohen's kappa)" not in [line.get_label() for line in fig.axes[1].lines]


def test_the_figure_s_significance_level_is_the_evaluation_s():
    from neurofacets import evaluation as stage
    from neurofacets.figures import evaluation

    assert evaluation.Q_SIGNIFICANT == stage.Q_SIGNIFICANT


def _other_run(fake, tmp_path, run, **changes):
    summary = pd.read_csv(fake.out / "evaluation" / "summary.csv").assign(run=run, **changes)
    path = tmp_path / run / "evaluation" / "summary.csv"
    path.parent.mkdir(parents=True)
    summary.to_csv(path, index=False)
    return path


def test_compare_evaluation_lines_up_the_runs_and_stacks_their_summaries(fake, tmp_path):
    from neurofacets.figures import evaluation

    mine = fake.out / "evaluation" / "summary.csv"
    other = _other_run(fake, tmp_path, "other", median_auroc=0.6, mf_rho=0.1)
    outputs = [tmp_path / "compare_evaluation.pdf", tmp_path / "compare_evaluation.png"]
    fig = build_figure("compare_evaluation", {"evaluation_summaries": [mine, other]}, outputs, dpi=80)
    check_pdf(outputs[0])
    check_png(outputs[1])
    assert len(fig.axes) == 4
    summary = pd.read_csv(mine)
    auroc = fig.axes[0]
    np.testing.assert_allclose(auroc.lines[0].get_ydata(), summary["median_auroc"])
    np.testing.assert_allclose(auroc.lines[1].get_ydata(), 0.6)
    chance = [line for line in auroc.lines if line.get_linestyle() == "--" and len(line.get_ydata())]
    np.testing.assert_allclose(chance[0].get_ydata(), summary["median_auroc_chance"])
    np.testing.assert_allclose(fig.axes[2].lines[1].get_ydata(), 0.1)
    np.testing.assert_allclose(fig.axes[3].lines[0].get_ydata(), summary["facet_kappa"])
    assert [t.get_text() for t in auroc.get_xticklabels()] == fake.layers  # the same layers: named

    # runs of different layers line up on relative depth
    deeper = _other_run(fake, tmp_path, "deeper", layer=["a", "b", "c"], depth=[0.0, 0.5, 1.0])
    fig = evaluation.plot_compare_evaluation(read_evaluation_summaries([mine, deeper]))
    assert fig.axes[0].get_xlabel().startswith("relative depth")
    np.testing.assert_allclose(fig.axes[0].lines[1].get_xdata(), [0.0, 0.5, 1.0])

    table = stack_evaluation_summaries([mine, other], tmp_path / "tables" / "compare_evaluation.csv")
    written = readers.read_evaluation_summary  # each run's rows as written, stacked in the order given
    stacked = pd.read_csv(tmp_path / "tables" / "compare_evaluation.csv")
    assert list(stacked.columns) == list(readers.EVALUATION_SUMMARY_COLUMNS)
    assert stacked["run"].tolist() == ["fake"] * 3 + ["other"] * 3 and len(table) == 6
    np.testing.assert_allclose(stacked["median_auroc"].iloc[:3], written(mine)["median_auroc"], rtol=1e-5)
    with pytest.raises(ValueError, match=r"runs \['fake'\] appear in more than one"):
        read_evaluation_summaries([mine, mine])
    with pytest.raises(ValueError, match="no evaluation summary"):
        read_evaluation_summaries([])


# --- loading, style, tiles ----------------------------------------------------------------------


def test_read_metrics_orders_by_network_and_checks_layers(fake, tmp_path):
    shuffled = fake.metrics.sample(frac=1, random_state=1)
    shuffled.to_csv(tmp_path / "all.csv", index=False)
    table = readers.read_metrics(tmp_path / "all.csv", fake.layers)
    assert table["layer"].tolist() == fake.metrics["layer"].tolist()
    assert table["neuron"].tolist() == fake.metrics["neuron"].tolist()
    with pytest.raises(ValueError, match="not in the network's layer list"):
        readers.read_metrics(tmp_path / "all.csv", fake.layers[:2])
    shuffled.drop(columns="facet").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="lacks the columns"):
        readers.read_metrics(tmp_path / "bad.csv", fake.layers)
    with pytest.raises(FileNotFoundError):
        readers.read_metrics(tmp_path / "absent.csv")


def test_ica_status_names_the_fits_that_were_not_ok(fake):
    store = IcaReader(fake.out / "ica" / "conv2_1.zarr")
    assert store.status[0] == "ok"
    assert store.status[1] == "not_converged: red"
    assert store.status[3] == "too_few_patches"  # the dead neuron: every fit


def test_figures_frame_a_neuron_whose_fit_did_not_converge_in_red(fake):
    from matplotlib.figure import Figure

    store = IcaReader(fake.out / "ica" / "conv2_1.zarr")
    fig = Figure()
    marked, plain = fig.add_subplot(121), fig.add_subplot(122)
    for ax in (marked, plain):
        for spine in ax.spines.values():
            spine.set_visible(False)
    facets._mark_not_converged(marked, store, 1)  # neuron 1: red fit not converged
    facets._mark_not_converged(plain, store, 0)
    assert all(sp.get_visible() and sp.get_edgecolor()[:3] == (0.6901960784313725, 0.0, 0.12549019607843137)
               for sp in marked.spines.values())
    assert [t.get_text() for t in marked.texts] == ["ICA not converged"]
    assert not any(sp.get_visible() for sp in plain.spines.values()) and not plain.texts


def test_signed_display_and_tiles():
    x = np.array([[-2.0, 0.0], [1.0, 2.0]])
    gray = images.signed_to_uint8(x)
    np.testing.assert_array_equal(gray[..., 0], [[0, 128], [191, 255]])  # 0.5 + x / 4, times 255
    assert gray.shape == (2, 2, 3)
    assert (images.signed_to_uint8(np.full((2, 2), np.nan)) == 128).all()
    tile = images.resize_tile(np.arange(4, dtype=np.uint8).reshape(2, 2), 4)
    np.testing.assert_array_equal(tile[..., 0], [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    big = np.full((10, 10, 3), 200, np.uint8)
    assert (images.resize_tile(big, 5) == 200).all()
    m = images.mosaic([[big, big], [big]], 5, gap=1)
    assert m.shape == (11, 11, 3)
    assert (m[6:, 6:] == 255).all() and (m[:5, :5] == 200).all() and (m[5] == 255).all()
    assert images.grid_shape(8, 4) == (2, 4) and images.grid_shape(3, 4) == (1, 3)


def test_style_layer_axis_and_labels():
    assert style.layer_label("conv3_1") == "conv3_1"
    long = "layer4-1-downsample-0-conv"
    assert len(style.layer_label(long)) <= 16 and style.layer_label(long).endswith(long[-8:])
    assert len(set(style.layer_colors(13))) == 13
    with style.paper_style():
        fig = style.new_figure(3, 2)
        ax = fig.add_subplot()
        style.set_layer_axis(ax, [f"conv{i}" for i in range(13)])
    assert [t.get_text() for t in ax.get_xticklabels()][:2] == ["conv0", "conv1"]
    assert ax.get_xticklabels()[0].get_rotation() == 45


def test_docs_export_reduces_width_and_keeps_aspect(fake, tmp_path):
    from neurofacets.figures.docs import export_docs_figures

    build_figure("fig5_similarity", inputs_of(fake), [tmp_path / "figs" / "fig5_similarity.png"], dpi=150)
    with Image.open(tmp_path / "figs" / "fig5_similarity.png") as img:
        width, height = img.size
    assert width > 300
    (written,) = export_docs_figures(tmp_path / "figs", tmp_path / "docs", max_width=300)
    with Image.open(written) as img:
        assert img.size == (300, round(height * 300 / width))
    with pytest.raises(FileNotFoundError):
        export_docs_figures(tmp_path / "figs", tmp_path / "docs", stems=["fig9"])


# --- the rules, on the fake run (Snakemake end to end) ------------------------------------------

MY_RULES = [*PAPER_FIGURES, "evaluation", "figure_tables", "summary", "gallery_layer", "gallery_index"]


def _snakemake(workdir, *args):
    import subprocess
    import sys

    # targets and flags first: --allowed-rules and --configfile take every value after them
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *args, "--allowed-rules", *MY_RULES,
               "--configfile", "config/fake.yaml"]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=600)


@pytest.mark.e2e
def test_rules_build_each_target_alone_then_nothing_and_the_report(tmp_path):
    """The stage's rules on a fabricated run: upstream rules are not allowed, so the fake
    tables and stores stand in for their outputs (as on a run whose upstream is built)."""
    import shutil

    import yaml

    from neurofacets.readers import layer_order

    repo = Path(__file__).resolve().parents[1]
    for item in ("Snakefile", "rules", "workflow", "config", "envs"):
        (shutil.copytree if (repo / item).is_dir() else shutil.copy)(repo / item, tmp_path / item)
    fake = make_fake_run(tmp_path, run="fake")
    config = yaml.safe_load((repo / "tests" / "configs" / "tiny.yaml").read_text())
    config.update(run="fake", model={**config["model"], "layers": fake.layers})
    (tmp_path / "config" / "fake.yaml").write_text(yaml.safe_dump(config))
    assert layer_order(fake.out / "model" / "layers.csv") == fake.layers

    one = _snakemake(tmp_path, "results/fake/figures/fig3_mf_sf_counts.pdf")
    assert one.returncode == 0, one.stderr[-3000:]
    assert re.search(r"fig3_mf_sf_counts\s+1\s*\n\s*total\s+1\b", one.stdout + one.stderr)
    targets = [f"results/fake/figures/{stem}.{fmt}" for stem in [*PAPER_FIGURES, "evaluation"] for fmt in ("pdf", "png")]
    targets += ["results/fake/tables/table2_sf_neurons.csv", "results/fake/tables/table3_mf_neurons.csv",
                "results/fake/summary.csv", "results/fake/gallery/index.html"]
    everything = _snakemake(tmp_path, *targets)
    assert everything.returncode == 0, everything.stderr[-3000:]
    for target in targets:
        assert (tmp_path / target).stat().st_size > 0, target
    again = _snakemake(tmp_path, "-n", *targets)
    assert "Nothing to be done" in again.stdout + again.stderr
    report = _snakemake(tmp_path, "--report", "report.html", *targets)
    assert report.returncode == 0, report.stderr[-3000:]
    text = (tmp_path / "report.html").read_text(encoding="utf-8")
    for stem in [*PAPER_FIGURES, "evaluation"]:
        assert f"{stem}.png" in text
    assert "Conceptual encoding" in text and "table3_mf_neurons.csv" in text
