"""Run summary (neurofacets.summary) and the cross-run comparison figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakerun import dataset_tables, flatness, gini, make_fake_run

from neurofacets.figures import build_figure
from neurofacets.figures.compare import plot_compare_runs
from neurofacets.readers import SUMMARY_COLUMNS, SUMMARY_HEADLINE_COLUMNS, interval_columns, read_summaries
from neurofacets.summary import summarize_run, write_summary


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return make_fake_run(tmp_path_factory.mktemp("run"))


def write(fake, path, run="fake", **counts):
    out = fake.out
    return write_summary(out / "metrics" / "all_layers.csv", out / "similarity" / "summary.csv",
                         out / "model" / "layers.csv", path, run,
                         **dataset_tables(Path(path).parent / f"{Path(path).stem}-dataset", **counts))


def test_images_analysed_of_images_listed(fake, tmp_path, caplog):
    """summary.csv: n_images = images.csv rows less the decoding failures, n_images_listed = those
    rows and the dataset's skipped ones (refused files, images over the cap); the log says so."""
    with caplog.at_level("WARNING", logger="neurofacets"):
        table = write(fake, tmp_path / "capped.csv", n_images=10, n_refused=2, n_capped=30, failed=(3, 7))
    written = pd.read_csv(tmp_path / "capped.csv")
    intervals = interval_columns(SUMMARY_HEADLINE_COLUMNS)
    assert list(written.columns) == list(SUMMARY_COLUMNS) and list(SUMMARY_COLUMNS)[-len(intervals) - 2:] == [
        "n_images", "n_images_listed", *intervals]
    assert written[list(intervals)].isna().all().all()  # no draws given: no intervals
    assert (written["n_images"] == 8).all() and (written["n_images_listed"] == 42).all()
    assert pd.api.types.is_integer_dtype(written["n_images"]) and table["n_images"].tolist() == [8] * len(table)
    assert "run fake analysed 8 of the 42 entries its dataset listed" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="neurofacets"):
        write(fake, tmp_path / "all.csv", n_images=10)
    assert (pd.read_csv(tmp_path / "all.csv")[["n_images", "n_images_listed"]] == 10).all().all()
    assert "analysed" not in caplog.text
    # a decoding failure of an image the table does not have is an error, not a count
    with pytest.raises(ValueError, match=r"image ids \['12'\] are not in"):
        write(fake, tmp_path / "bad.csv", n_images=10, failed=(12,))


def test_intervals_from_the_bootstrap_draws(fake, tmp_path):
    """Each headline number's interval: the point plus the draws' 2.5th and 97.5th percentile
    deviations from their median (neurofacets.bootstrap.interval), clipped to the number's range."""
    out = fake.out
    draws_csv = out / "bootstrap" / "summary_draws.csv"
    table = write_summary(out / "metrics" / "all_layers.csv", out / "similarity" / "summary.csv",
                          out / "model" / "layers.csv", tmp_path / "summary.csv", "fake",
                          **dataset_tables(tmp_path / "dataset"), draws_csv=draws_csv)
    draws = pd.read_csv(draws_csv)
    for row in table.itertuples(index=False):
        for column in SUMMARY_HEADLINE_COLUMNS:
            values = draws.loc[draws["layer"] == row.layer, column].to_numpy()
            point = getattr(row, column)
            low, high = point + np.percentile(values - np.median(values), [2.5, 97.5])
            upper = np.inf if column == "mean_mf" else 1.0  # every headline number is >= 0
            low, high = np.clip([low, high], 0, upper)
            assert getattr(row, f"{column}_ci_low") == pytest.approx(low, abs=1e-12)
            assert getattr(row, f"{column}_ci_high") == pytest.approx(high, abs=1e-12)
    written = pd.read_csv(tmp_path / "summary.csv")
    assert written[list(interval_columns(SUMMARY_HEADLINE_COLUMNS))].notna().all().all()


def test_hand_worked_summary():
    # Layer a: MF degrees 0.2 (SF), 0.4 (MF), dead. Layer b: 0.1 (SF), 0.3 (SF).
    metrics = pd.DataFrame({
        "layer": ["a", "a", "a", "b", "b"],
        "neuron": [0, 1, 2, 0, 1],
        "mf": [0.2, 0.4, np.nan, 0.1, 0.3],
        "mf_norm": [1 / 3, 1.0, np.nan, 0.0, 2 / 3],
        "facet": ["SF", "MF", "dead", "SF", "SF"],
        "sparsity": [0.9, 0.8, np.nan, 0.95, 0.85],
        "flatness": [0.18, 0.32, -1.0, 0.095, 0.255],
    })
    sim = pd.DataFrame({"layer": ["b", "a"], "mean_similarity": [0.1, 0.5],
                        "mean_dissimilarity": [7.0, 3.0], "n_excluded": [0, 1]})
    table = summarize_run(metrics, sim, ["a", "b"], "hand")
    assert list(table.columns) == list(SUMMARY_COLUMNS)
    s = table.set_index("layer")
    a, b = s.loc["a"], s.loc["b"]
    assert (a.n_neurons, a.n_mf, a.n_sf, a.n_dead) == (3, 1, 1, 1)
    assert (a.frac_mf, a.frac_sf, a.frac_dead) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert a.mean_mf == pytest.approx(0.3) and a.max_mf == pytest.approx(0.4)
    assert a.mean_mf_norm == pytest.approx((1 / 3 + 1) / 2)
    assert a.mean_sparsity == pytest.approx(0.85) and a.mean_flatness == pytest.approx(0.25)  # dead left out
    assert (a.mean_similarity, a.mean_dissimilarity, a.n_excluded) == (0.5, 3.0, 1)
    assert (b.frac_mf, b.frac_sf, b.mean_mf, b.max_mf) == (0.0, 1.0, pytest.approx(0.2), pytest.approx(0.3))
    assert (a.layer_index, a.depth, b.layer_index, b.depth) == (0, 0.0, 1, 1.0)
    assert (s["run"] == "hand").all()


def test_infinite_mf_is_left_out_of_mean_and_max():
    metrics = pd.DataFrame({"layer": ["a"] * 3, "neuron": [0, 1, 2], "mf": [0.2, np.inf, 0.4],
                            "mf_norm": [0.0, 1.0, 1.0], "facet": ["SF", "MF", "MF"],
                            "sparsity": [0.9, 0.0, 0.8], "flatness": [0.18, 1.0, 0.32]})
    sim = pd.DataFrame({"layer": ["a"], "mean_similarity": [0.0], "mean_dissimilarity": [1.0], "n_excluded": [0]})
    row = summarize_run(metrics, sim, ["a"], "r").iloc[0]
    assert row.mean_mf == pytest.approx(0.3) and row.max_mf == pytest.approx(0.4)
    assert row.frac_mf == pytest.approx(2 / 3)


def test_summary_of_fake_run_against_its_cof_rows(fake, tmp_path):
    table = write(fake, tmp_path / "summary.csv")
    written = pd.read_csv(tmp_path / "summary.csv")
    assert written["layer"].tolist() == fake.layers
    np.testing.assert_allclose(written["mean_mf"], table["mean_mf"], rtol=1e-5)
    sim = pd.read_csv(fake.out / "similarity" / "summary.csv").set_index("layer")
    threshold = None
    per_layer_mf = {}
    for name in fake.layers:  # recompute MF from the CoF rows with the docs/methods.md formulas
        rows = fake.cof[name]
        live = rows.sum(axis=1) > 0
        per_layer_mf[name] = np.array([flatness(r) / gini(r) for r in rows[live]])
    threshold = np.concatenate(list(per_layer_mf.values())).mean()
    for name, row in zip(fake.layers, written.itertuples()):
        mf = per_layer_mf[name]
        n = len(fake.cof[name])
        assert row.n_neurons == n
        assert row.frac_mf == pytest.approx(np.sum(mf > threshold) / n, abs=1e-6)
        assert row.frac_sf == pytest.approx(np.sum(mf <= threshold) / n, abs=1e-6)
        assert row.frac_dead == pytest.approx((n - len(mf)) / n, abs=1e-6)
        assert row.mean_mf == pytest.approx(mf.mean(), rel=1e-5)
        assert row.max_mf == pytest.approx(mf.max(), rel=1e-5)
        assert row.mean_similarity == pytest.approx(sim.at[name, "mean_similarity"], rel=1e-5)
        assert row.mean_dissimilarity == pytest.approx(sim.at[name, "mean_dissimilarity"], rel=1e-5)
        assert row.n_excluded == sim.at[name, "n_excluded"]


def test_read_summaries_checks_runs_and_columns(fake, tmp_path):
    write(fake, tmp_path / "a.csv", "a")
    write(fake, tmp_path / "b.csv", "b")
    both = read_summaries([tmp_path / "a.csv", tmp_path / "b.csv"])
    assert both["run"].unique().tolist() == ["a", "b"]
    with pytest.raises(ValueError, match="run names must differ"):
        read_summaries([tmp_path / "a.csv", tmp_path / "a.csv"])
    with pytest.raises(FileNotFoundError, match="compare_runs"):
        read_summaries([tmp_path / "a.csv", tmp_path / "absent.csv"])
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="summary.csv lacks the columns"):
        read_summaries([tmp_path / "bad.csv"])


def test_compare_figure_same_layers_and_different_depths(fake, tmp_path):
    a = write(fake, tmp_path / "a.csv", "a")
    b = a.assign(run="b", mean_mf=a["mean_mf"] * 2)
    b.to_csv(tmp_path / "b.csv", index=False)
    fig = build_figure("compare_runs", {"summaries": [tmp_path / "a.csv", tmp_path / "b.csv"]},
                       [tmp_path / "compare_runs.pdf", tmp_path / "compare_runs.png"], dpi=60)
    assert (tmp_path / "compare_runs.pdf").read_bytes().startswith(b"%PDF")
    assert len(fig.axes) == 4
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == fake.layers
    lines = {line.get_label(): line.get_ydata() for line in ax.lines}
    np.testing.assert_allclose(lines["b"], 2 * np.asarray(lines["a"]), rtol=1e-5)
    # A run with other layers (another network): x becomes the relative depth 0..1.
    c = a.iloc[:2].assign(run="c", layer=["x1", "x2"], depth=[0.0, 1.0])
    fig = plot_compare_runs(pd.concat([a, c]))
    xs = {line.get_label(): line.get_xdata() for line in fig.axes[0].lines}
    np.testing.assert_allclose(xs["c"], [0.0, 1.0])
    np.testing.assert_allclose(xs["a"], np.linspace(0, 1, len(fake.layers)))
    assert "relative depth" in fig.axes[0].get_xlabel()


def test_runs_preprocessed_differently_say_so_when_compared(fake, tmp_path, caplog):
    """summary.csv records each run's preprocessing; a comparison of runs that differ in it
    logs and prints a note naming each run's, and says nothing when they agree."""
    from neurofacets.config import preprocessing_label
    from neurofacets.figures.compare import preprocessing_note

    extraction = {"decode": "auto", "image_size": 224, "resize": 256, "crop_offset": "round",
                  "interpolation": "bilinear", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                  "precision": "fp32"}
    recipe = "resize 256, crop 224 (round), bilinear, mean 0.485,0.456,0.406, std 0.229,0.224,0.225"
    reference = preprocessing_label(extraction)
    assert reference == f"decode pil (reference), {recipe}, fp32"  # decode: auto is the reference
    fast = preprocessing_label({**extraction, "decode": "torchvision"})
    assert fast == f"decode torchvision (not the reference), {recipe}, fp32"
    bicubic = preprocessing_label({**extraction, "interpolation": "bicubic", "mean": [0.5] * 3, "std": [0.5] * 3})
    assert bicubic == "decode pil (reference), resize 256, crop 224 (round), bicubic, mean 0.5,0.5,0.5, std 0.5,0.5,0.5, fp32"
    out = fake.out
    a = write_summary(out / "metrics" / "all_layers.csv", out / "similarity" / "summary.csv",
                      out / "model" / "layers.csv", tmp_path / "a.csv", "a", reference,
                      **dataset_tables(tmp_path / "dataset"))
    assert (pd.read_csv(tmp_path / "a.csv")["preprocessing"] == reference).all()
    same = pd.concat([a, a.assign(run="b")])
    assert preprocessing_note(same) == ""
    differ = pd.concat([a, a.assign(run="b", preprocessing=fast)])
    note = preprocessing_note(differ)
    assert note == (f"runs preprocessed differently (a: {reference}; b: {fast}): compare statistics, "
                    "not neurons")
    with caplog.at_level("WARNING"):
        fig = plot_compare_runs(differ)
    assert note in caplog.text
    assert any("preprocessed differently" in t.get_text().replace("\n", " ") for t in fig.texts)
    assert not plot_compare_runs(same).texts
