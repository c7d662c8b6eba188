"""The real DAG end to end on tiny data: random weights, 32 px probe images, three layers."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import snakemake

from neurofacets.store import read_layer

pytestmark = pytest.mark.e2e


def test_second_call_has_nothing_to_do(tiny_run):
    result = snakemake(tiny_run, "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_extraction_outputs(tiny_run):
    out = tiny_run / "results" / "tiny"
    images = pd.read_csv(out / "dataset" / "images.csv")
    assert len(images) == 12 * 4 and images["shard"].nunique() == 2
    layers = pd.read_csv(out / "model" / "layers.csv")
    assert layers["layer"].tolist() == ["conv1_1", "conv2_2", "conv3_1"]
    shards = sorted((out / "activations").glob("shard-*.zarr"))
    acts = read_layer(shards, "conv3_1")
    assert acts.image_id.tolist() == images["image_id"].tolist()
    assert not list((out / "activations").glob(".*tmp*"))  # no temporary left behind


def test_every_store_records_its_shards_config_digest(tiny_run):
    """Provenance: a store derived from the activations carries the shards' config digest
    (the sections run, model, extraction), so a store is traced to the extraction that made it."""
    out = tiny_run / "results" / "tiny"
    stores = sorted(p for p in out.rglob("*.zarr") if (p / "zarr.json").is_file())
    digests = {p.relative_to(out).as_posix(): json.loads((p / "zarr.json").read_text())["attributes"].get("config_digest")
               for p in stores}
    shard_digest = digests["activations/shard-000.zarr"]
    kinds = {name.split("/")[0] for name in digests}
    assert {"activations", "topk", "cof", "similarity", "rdm", "patches", "ica"} <= kinds
    assert {name: d for name, d in digests.items() if d != shard_digest} == {}


def test_failed_job_leaves_nothing_that_looks_complete(tiny_run):
    """A shard job that fails leaves no shard store; the rerun rebuilds it."""
    out = tiny_run / "results" / "tiny" / "activations"
    shutil.rmtree(out / "shard-001.zarr")
    result = snakemake(tiny_run, str(out.relative_to(tiny_run) / "shard-001.zarr"),
                       "--config", "extraction={'device': 'cuda:7'}")
    assert result.returncode != 0 and "CUDA is not available" in result.stderr + result.stdout
    assert not (out / "shard-001.zarr").exists()
    assert not list(out.glob(".shard-001*"))
    rerun = snakemake(tiny_run, str(out.relative_to(tiny_run) / "shard-001.zarr"))
    assert rerun.returncode == 0 and (out / "shard-001.zarr").exists()


def test_dataset_without_wordnet_classes_skips_the_semantics_stage(tiny_run):
    """The probe classes are no WordNet ids: the checkpoint says so and nothing else of the stage exists."""
    out = tiny_run / "results" / "tiny"
    log = (out / "logs" / "semantics_hierarchy.log").read_text()
    assert "semantics stage skipped" in log and "no WordNet ids" in log
    assert pd.read_csv(out / "semantics" / "hierarchy.csv").empty
    assert sorted(p.name for p in (out / "semantics").iterdir()) == ["hierarchy.csv"]
    assert not (out / "figures" / "semantic_facets.pdf").exists()


def test_evaluation_stage_outputs(tiny_run):
    """The evaluation stage ran on the real DAG: a table per layer, every layer's rows, a summary,
    and one neuron's held-out AUROC recomputed from the stored activations with scikit-learn."""
    import json

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from neurofacets.cof import load_labels
    from neurofacets.evaluation import content_order, split_halves
    from neurofacets.readers import EVALUATION_COLUMNS, EVALUATION_SUMMARY_COLUMNS

    out = tiny_run / "results" / "tiny"
    layers = ["conv1_1", "conv2_2", "conv3_1"]
    summary = pd.read_csv(out / "evaluation" / "summary.csv")
    assert list(summary.columns) == list(EVALUATION_SUMMARY_COLUMNS) and summary["layer"].tolist() == layers
    every = pd.read_csv(out / "evaluation" / "all_layers.csv")
    assert {"facet_0", "facet_1"} <= set(every.columns)
    table = pd.read_csv(out / "evaluation" / "conv2_2.csv")
    assert list(table.columns) == list(EVALUATION_COLUMNS)  # the probes have no hierarchy: no concept columns
    assert len(table) == 128 and summary.loc[1, "median_auroc"] == pytest.approx(table["auroc"].median())
    labels = load_labels(out / "dataset" / "images.csv", out / "dataset" / "classes.csv").level("class")
    acts = read_layer(sorted((out / "activations").glob("shard-*.zarr")), "conv2_2")
    codes = labels.codes(acts.image_id)
    half = split_halves(codes, content_order(acts.content_key, acts.image_id), 0)
    neuron = int(table["auroc"].first_valid_index())
    scores = []
    for h in (0, 1):
        label = json.loads(table.loc[neuron, f"top_classes_{h}"])
        y = np.isin(np.array(labels.names)[codes[half == 1 - h]], label)
        if y.any() and not y.all():
            scores.append(roc_auc_score(y, acts.max[half == 1 - h, neuron]))
    assert table.loc[neuron, "auroc"] == pytest.approx(np.mean(scores))
    assert table["label_holds"].equals(table["label_q"] < 0.05)
    assert (out / "logs" / "evaluate_layer" / "conv2_2.log").read_text().count("median held-out AUROC") == 1


def undocumented_columns(out) -> list[str]:
    """``file: column`` of every CSV of the run folder ``out`` that the outputs reference
    (`readers.OUTPUT_TABLES`, docs/reference/outputs.md) does not list, files it lacks included."""
    import re

    from neurofacets import readers

    layers = pd.read_csv(out / "model" / "layers.csv")["layer"].tolist()
    tables = {entry.path: entry for entry in readers.OUTPUT_TABLES}
    found = []
    for path in sorted(out.rglob("*.csv")):
        pattern = str(path.relative_to(out))
        for layer in sorted(layers, key=len, reverse=True):
            pattern = re.sub(rf"(^|/){re.escape(layer)}\.csv$", r"\1{layer}.csv", pattern)
        entry = tables.get(pattern)
        if entry is None:
            found.append(f"{pattern}: not in the outputs reference")
            continue
        listed = {*entry.columns, *entry.optional, *(layers if "<layer>" in entry.columns else ())}
        found += [f"{pattern}: {column}" for column in pd.read_csv(path, nrows=0).columns if column not in listed]
    return found


def test_the_outputs_reference_lists_every_column_of_the_run(tiny_run):
    assert undocumented_columns(tiny_run / "results" / "tiny") == []


def test_the_tutorial_page_shows_what_a_run_writes(tiny_run, tmp_path):
    """docs/tutorial.md (generated from the default run) has the tree, column names and card
    parts that tools/tutorial.py generates from the tiny run: regenerate it when a stage
    changes what a run writes (`python tools/tutorial.py results/demo`)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tutorial", Path(__file__).resolve().parents[1] / "tools" / "tutorial.py")
    tutorial = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tutorial)
    page = tmp_path / "tutorial.md"
    assert tutorial.main([str(tiny_run / "results" / "tiny"), "--out", str(page)]) == 0
    generated, committed = (tutorial.structure(p.read_text(encoding="utf-8")) for p in (page, tutorial.PAGE))
    assert generated["tree"] and generated["card"]
    assert generated == committed, "docs/tutorial.md is stale: python tools/tutorial.py results/demo"
