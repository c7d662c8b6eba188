"""Memory requests of the rules, from measured needs (evaluated while Snakemake plans).

A job's memory is what all of its processes hold at their peak, together: that is what a
cluster's cgroup limit counts. On a cluster each job runs Snakemake twice (the batch
script's and the job step's, each parsing the workflow: `SNAKEMAKE_MB` each, now
that parsing imports no torch) and the rule's script (a Python interpreter with its
imports and its data). The numbers are measured (docs/benchmarks/encoding.md, "Cluster jobs"); each
request adds `MARGIN` on top. Run locally, the requests only matter under
``--resources mem_mb=...``, and are then generous by one Snakemake process.

This module imports nothing heavy: it is imported while the workflow is parsed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from .pathlike import PathLike

SNAKEMAKE_MB = 250  # one Snakemake process that parsed this workflow (measured ~215 MB)
MARGIN = 1.25  # on top of the measured peak


def job_mem_mb(script_mb: float) -> int:
    """Memory request (MB) of a job whose script peaks at ``script_mb``."""
    if script_mb < 0:
        raise ValueError(f"script_mb must be >= 0, got {script_mb}")
    return int(math.ceil((2 * SNAKEMAKE_MB + script_mb) * MARGIN / 50) * 50)


def per_thread_mem_mb(base_mb: float, thread_mb: float):
    """A ``mem_mb`` callable for rules whose workers each hold ``thread_mb`` beyond ``base_mb``."""
    if base_mb < 0 or thread_mb < 0:
        raise ValueError(f"base_mb and thread_mb must be >= 0, got {base_mb}, {thread_mb}")

    def mem_mb(wildcards, threads: int) -> int:
        return job_mem_mb(base_mb + thread_mb * threads)

    return mem_mb


# Scripts' peak memory (MB) beyond the two Snakemake processes, from the rules' benchmark
# files (max_rss) of the default run (VGG16, 13 layers, 288 images at 224 px) after parsing
# and the visualize stage stopped importing torch; docs/benchmarks/encoding.md, "Cluster jobs".
ENCODE_SCRIPT_MB = 200  # interpreter + numpy, pandas, xarray, zarr, scipy: measured 155-165
FIGURE_SCRIPT_MB = 450  # matplotlib figures and tables: measured up to 427
GALLERY_LAYER_MB = 600  # one layer's gallery cards: measured up to 503 (512 neurons)
LAYERS_MB = 1800  # receptive fields measured on the graph (torch): 1700
WEIGHTS_MB = 900  # download + convert the weights (torch): 789
PATCHES_MB, PATCHES_THREAD_MB = 300, 50  # main process + each decoding thread
ICA_MB, ICA_WORKER_MB = 250, 350  # main process + each worker process (~180 imports + one fit)
EXTRACT_MB = 2000  # torch, a VGG16-size model with its loaded weights, 1 worker (measured 2942 at 224 px, batch 16)
EXTRACT_WORKER_MB = 400  # each DataLoader worker: decoding and 4 prefetched batches
EXTRACT_CPU_IMAGE_MB = 40  # CPU device: a VGG16 forward's maps per 224-px image in the batch


def extract_mem_mb(extraction: dict, on_gpu: bool) -> int:
    """Memory request (MB) of one ``extract`` job (host memory; the GPU's is its own)."""
    script = EXTRACT_MB + EXTRACT_WORKER_MB * extraction["workers"]
    if not on_gpu:
        scale = (extraction["image_size"] / 224) ** 2
        script += EXTRACT_CPU_IMAGE_MB * scale * extraction["batch_size"]
    return job_mem_mb(script)


def _array_shape(store: Path, *parts: str) -> list[int] | None:
    """Shape of a zarr v3 array from its ``zarr.json`` (no zarr import); None if absent."""
    try:
        meta = json.loads(store.joinpath(*parts, "zarr.json").read_text())
    except FileNotFoundError:
        return None
    return [int(n) for n in meta["shape"]]


def encode_topk_data_mb(shard_paths: Sequence[PathLike], layer: str, top_k: int) -> float | None:
    """What ``encode_topk`` holds (MB) beyond its interpreter, from the shards' metadata.

    With every shard's top-k candidates present and large enough (the merge, one shard at
    a time): the running top k and one shard's candidates, 16 bytes per entry (int64 id,
    float32 value, int32 argmax), about three times over (the parts, their concatenation,
    the sort): flat in the number of images and shards. Otherwise the whole layer as read:
    float32 max + int32 argmax and the copies made while reading, 4.5x the float32 matrix.
    None while a shard does not exist yet.
    """
    matrix_entries = largest = 0
    merge = True
    for path in shard_paths:
        store = Path(path)
        full = _array_shape(store, layer, "max")
        if full is None:
            return None
        matrix_entries += full[0] * full[1]
        cand = _array_shape(store, layer, "topk", "value")
        if cand is None or cand[1] < min(top_k, full[0]):
            merge = False
        else:
            largest = max(largest, cand[0] * (top_k + cand[1]))
    return 3 * 16 * largest / 1e6 if merge else 4.5 * 4 * matrix_entries / 1e6


def encode_topk_mem_mb(shard_paths: Sequence[PathLike], layer: str, top_k: int,
                       default: int = 4000) -> int:
    """Memory request (MB) of ``encode_topk`` for one layer (`encode_topk_data_mb`).

    ``default`` MB of data while the shards do not exist yet (Snakemake asks again when
    the job is ready to run).
    """
    data_mb = encode_topk_data_mb(shard_paths, layer, top_k)
    return job_mem_mb(ENCODE_SCRIPT_MB + (default if data_mb is None else data_mb))


#: What ``evaluate_layer`` holds per (image, neuron) of the layer, in bytes: the layer as read
#: (float32 max + int32 argmax and the copies made while reading, as ``encode_topk``'s whole-layer
#: path: 18) and one half's copy for its top-k selection (4); docs/benchmarks/evaluation.md.
EVALUATE_BYTES_PER_ENTRY = 22
EVALUATE_WORK_MB = 300  # the held-out scorer's blocks of 64 neurons and the chance draws


def evaluate_mem_mb(shard_paths: Sequence[PathLike], layer: str, default: int = 4000) -> int:
    """Memory request (MB) of ``evaluate_layer`` for one layer, from the shards' metadata.

    ``default`` MB of data while the shards do not exist yet (Snakemake asks again when the
    job is ready to run).
    """
    entries = 0
    for path in shard_paths:
        shape = _array_shape(Path(path), layer, "max")
        if shape is None:
            return job_mem_mb(ENCODE_SCRIPT_MB + EVALUATE_WORK_MB + default)
        entries += shape[0] * shape[1]
    return job_mem_mb(ENCODE_SCRIPT_MB + EVALUATE_WORK_MB + EVALUATE_BYTES_PER_ENTRY * entries / 1e6)


#: What ``bootstrap_layer`` holds beyond its interpreter: one block of neurons' float32
#: activations as read (`neurofacets.bootstrap.VALUES_BLOCK_BYTES`, twice: the shards' parts
#: and their concatenation), the two uint8 (draws x images) multiplicity matrices, and six float64
#: (draws x neurons) arrays (`neurofacets.bootstrap.LAYER_VARIABLES`); `BOOTSTRAP_WORK_MB` holds one block's resampled CoF counts
#: (`neurofacets.bootstrap.COF_BLOCK_ENTRIES` int32, three at a time, and the metrics' int64
#: and float64 copies of one) or the label test's working arrays (`neurofacets.bootstrap.LABEL_BLOCK_ENTRIES`
#: float64, about ten), the labels and the store's encoding (docs/benchmarks/evaluation.md).
BOOTSTRAP_BLOCK_MB = 2 * 256
BOOTSTRAP_WORK_MB = 350


def _layer_shape(shard_paths: Sequence[PathLike], layer: str) -> tuple[int, int] | None:
    """(images, neurons) of ``layer`` over the shards from their metadata; None while one is missing."""
    images = neurons = 0
    for path in shard_paths:
        shape = _array_shape(Path(path), layer, "max")
        if shape is None:
            return None
        images, neurons = images + shape[0], shape[1]
    return images, neurons


def bootstrap_mem_mb(shard_paths: Sequence[PathLike], layer: str, resamples: int, default: int = 4000) -> int:
    """Memory request (MB) of ``bootstrap_layer`` for one layer, from the shards' metadata.

    ``default`` MB of data while the shards do not exist yet (Snakemake asks again when the
    job is ready to run).
    """
    shape = _layer_shape(shard_paths, layer)
    if shape is None:
        return job_mem_mb(ENCODE_SCRIPT_MB + BOOTSTRAP_WORK_MB + default)
    images, neurons = shape
    block = min(BOOTSTRAP_BLOCK_MB, 2 * 4 * images * neurons / 1e6)
    draws_mb = (2 * resamples * images + 6 * 8 * resamples * neurons) / 1e6
    return job_mem_mb(ENCODE_SCRIPT_MB + BOOTSTRAP_WORK_MB + block + draws_mb)


def bootstrap_draws_mem_mb(store_paths: Sequence[PathLike], resamples: int) -> int:
    """Memory request (MB) of ``bootstrap_draws``: every layer's six (draws x neurons) float64 arrays."""
    neurons = 0
    for path in store_paths:
        shape = _array_shape(Path(path), "sparsity")
        if shape is None:
            return job_mem_mb(FIGURE_SCRIPT_MB + 1000)
        neurons += shape[1]
    return job_mem_mb(FIGURE_SCRIPT_MB + 2 * 6 * 8 * resamples * neurons / 1e6)
