"""Several runs in one call (config `runs`), end to end on tiny data with WordNet classes.

Two untrained networks (VGG16 and AlexNet, random weights) on synthetic probe images whose
class folders are named by WordNet ids: each run is built under results/<run>/, its semantics
stage runs (the classes link to WordNet), and the comparison figures and table are drawn
under results/<top-level run>/.
"""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import WNIDS, controls_snakemake

pytestmark = pytest.mark.e2e


def test_each_run_is_built_and_compared(controls_run):
    out = controls_run / "results"
    for run, layers in (("vgg-random", ["conv1_1", "conv2_1"]), ("alex-random", ["features-0"])):
        assert (out / run / "summary.csv").exists()
        assert len(list((out / run / "activations").glob("shard-*.zarr"))) == 2  # extracted once, 2 shards
        for layer in layers:
            table = pd.read_csv(out / run / "semantics" / f"{layer}.csv")
            assert len(table) == {"conv1_1": 64, "conv2_1": 128, "features-0": 64}[layer]
        assert (out / run / "figures" / "semantic_facets.pdf").exists()
        assert (out / run / "tables" / "concepts.csv").exists()
        # the evaluation of each run, built for the comparison under runs_build: compare too
        assert (out / run / "evaluation" / "all_layers.csv").exists()
        assert (out / run / "figures" / "evaluation.pdf").exists()
        # runs_build: compare: nothing of the visualisation stage
        assert not (out / run / "ica").exists() and not (out / run / "gallery").exists()
    for stem in ("compare_runs", "compare_facets", "compare_semantic_facets", "compare_evaluation"):
        for fmt in ("pdf", "png"):
            assert (out / "ctl" / "figures" / f"{stem}.{fmt}").stat().st_size > 0
    table = pd.read_csv(out / "ctl" / "tables" / "compare_semantics.csv")
    assert table[["run", "layer"]].values.tolist() == [
        ["vgg-random", "conv1_1"], ["vgg-random", "conv2_1"], ["alex-random", "features-0"]]
    evaluation = pd.read_csv(out / "ctl" / "tables" / "compare_evaluation.csv")
    assert evaluation[["run", "layer"]].values.tolist() == table[["run", "layer"]].values.tolist()
    classes = pd.read_csv(out / "vgg-random" / "dataset" / "classes.csv")
    assert classes["wnid"].tolist() == WNIDS


def test_second_call_has_nothing_to_do(controls_run):
    result = controls_snakemake(controls_run, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr


def test_run_rules_are_prefixed_by_the_run(controls_run):
    result = controls_snakemake(controls_run, "--list-rules")
    rules = set(result.stdout.split())
    assert {"vgg_random__extract", "alex_random__semantics_layer", "compare_semantic_facets"} <= rules
