# Helpers shared by every stage: run folder, layer and shard lists, code digests.
# Parsing imports nothing heavy (no torch, no pandas): on a cluster every job parses the
# workflow twice, and what parsing holds counts against the job's memory request.
import json

from neurofacets.config import check_config, labels_path
from neurofacets.dataset_state import dataset_state
from neurofacets.job_resources import (
    bootstrap_draws_mem_mb,
    bootstrap_mem_mb,
    ENCODE_SCRIPT_MB,
    FIGURE_SCRIPT_MB,
    GALLERY_LAYER_MB,
    ICA_MB,
    ICA_WORKER_MB,
    LAYERS_MB,
    PATCHES_MB,
    PATCHES_THREAD_MB,
    WEIGHTS_MB,
    encode_topk_mem_mb,
    evaluate_mem_mb,
    extract_mem_mb,
    job_mem_mb,
    per_thread_mem_mb,
)
from neurofacets.layer_table import configured_layer_names
from neurofacets.prepared_weights import prepared_weights_path
from neurofacets.provenance import run_provenance, without_performance_settings

check_config(config)


include: "code_digest.smk"


RUN = config["run"]
OUT = f"results/{RUN}"
LAYERS = configured_layer_names(config["model"]["arch"], config["model"]["layers"])
SHARDS = [f"{i:03d}" for i in range(config["extraction"]["shards"])]
# The sections the activations depend on: the extract job's config, and the provenance every
# store derived from the activations records (docs/design.md, "Provenance"). A change of them
# reruns the shards, hence everything after; as a param it adds no rerun of its own. The
# performance settings (extraction.workers) are left out: changing them reruns nothing.
EXTRACTION_CONFIG = without_performance_settings({k: config[k] for k in ("run", "model", "extraction")})
STORE_PROVENANCE = run_provenance(EXTRACTION_CONFIG)


wildcard_constraints:
    layer="|".join(LAYERS),
    shard=r"\d{3}",


def shard_stores(wildcards=None):
    """Every activation shard of the run."""
    return expand(f"{OUT}/activations/shard-{{shard}}.zarr", shard=SHARDS)


def per_layer(pattern):
    """`pattern` (with {OUT} filled in, {layer} left) expanded over the run's layers."""
    return expand(pattern, layer=LAYERS)


def all_targets():
    """What `snakemake` builds by default: every stage's final outputs."""
    return [
        f"{OUT}/model/layers.csv",
        *shard_stores(),
        *STAGE_TARGETS,
    ]


# Each stage appends its final outputs here (rules/*.smk are included after this file).
STAGE_TARGETS = []


def weights_file():
    """Where the configured weights are prepared: one file per (arch, source), shared by the
    runs that name the same source (neurofacets.prepared_weights)."""
    return prepared_weights_path(
        config["model"]["arch"],
        config["model"]["weights"],
        partial_weights=config["model"]["partial_weights"],
    )


def uses_gpu():
    """Whether extraction jobs should ask the scheduler for a GPU."""
    return 0 if config["extraction"]["device"] in ("cpu", "mps") else 1


def dataset_inputs(wildcards):
    """The files the image table depends on, per dataset format."""
    ds = config["dataset"]
    inputs = {}
    if ds["format"] == "probes":
        inputs["probes"] = f"{OUT}/dataset/probes"
    if ds["format"] == "csv":
        inputs["labels"] = str(labels_path(ds["labels"], ds["root"]))
    if ds["coarse_labels"]:
        inputs["coarse"] = ds["coarse_labels"]
    return inputs


def dataset_state_param(wildcards):
    """The state of the dataset's files (paths, sizes, times: neurofacets.dataset_state), a
    param of the dataset rule: a change reruns it. Computed when a call first plans the job,
    once per call: the runs of a multi-run config (modules, each with its own globals) share
    the workflow object, which holds the states by dataset."""
    states = workflow.__dict__.setdefault("neurofacets_dataset_states", {})
    key = json.dumps(config["dataset"], sort_keys=True)
    if key not in states:
        states[key] = dataset_state(config["dataset"]).as_param()
    return states[key]
