"""Memory requests of the rules: hand-worked values of the formulas in job_resources."""

import pytest

from neurofacets.job_resources import (
    ICA_MB,
    ICA_WORKER_MB,
    extract_mem_mb,
    job_mem_mb,
    per_thread_mem_mb,
)


def test_job_request_holds_two_snakemake_processes_and_the_script_with_margin():
    # (2 x 250 + 200) x 1.25 = 875, rounded up to 50 MB
    assert job_mem_mb(200) == 900
    assert job_mem_mb(0) == 650  # 625 -> 650
    with pytest.raises(ValueError, match="script_mb"):
        job_mem_mb(-1)


def test_ica_request_grows_with_its_workers():
    ica = per_thread_mem_mb(ICA_MB, ICA_WORKER_MB)
    assert ica(None, threads=4) == job_mem_mb(ICA_MB + 4 * ICA_WORKER_MB)
    assert ica(None, threads=32) - ica(None, threads=1) >= 31 * ICA_WORKER_MB
    with pytest.raises(ValueError):
        per_thread_mem_mb(-1, 10)


def test_extract_request_by_device_workers_and_batch():
    tiny = {"workers": 0, "batch_size": 8, "image_size": 32}
    # 2000 + 40 MB x (32/224)^2 x 8 images = 2006.5; (500 + 2006.5) x 1.25 = 3133 -> 3150
    assert extract_mem_mb(tiny, on_gpu=False) == 3150
    gpu = {"workers": 12, "batch_size": 256, "image_size": 224}
    # 2000 + 12 x 400 = 6800 (the maps live on the GPU); (500 + 6800) x 1.25 = 9125 -> 9150
    assert extract_mem_mb(gpu, on_gpu=True) == 9150
    assert extract_mem_mb(gpu, on_gpu=False) == job_mem_mb(6800 + 40 * 256)


def test_evaluate_request_from_the_shards_metadata(tmp_path):
    import numpy as np

    from neurofacets.job_resources import (
        ENCODE_SCRIPT_MB,
        EVALUATE_BYTES_PER_ENTRY,
        EVALUATE_WORK_MB,
        evaluate_mem_mb,
        job_mem_mb,
    )
    from neurofacets.store import write_activation_shard

    shards = []
    for s, n in enumerate((30, 25)):
        ids = np.arange(n) + 100 * s
        path = tmp_path / f"shard-{s:03d}.zarr"
        write_activation_shard(path, ids, {"conv1_1": (np.ones((n, 9), np.float32), np.zeros((n, 9), np.int32), (2, 2))})
        shards.append(path)
    want = job_mem_mb(ENCODE_SCRIPT_MB + EVALUATE_WORK_MB + EVALUATE_BYTES_PER_ENTRY * 55 * 9 / 1e6)
    assert evaluate_mem_mb(shards, "conv1_1") == want
    # before the shards exist: the default data size
    assert evaluate_mem_mb([tmp_path / "missing.zarr"], "conv1_1", default=1000) == job_mem_mb(
        ENCODE_SCRIPT_MB + EVALUATE_WORK_MB + 1000)


def test_bootstrap_request_from_the_shards_and_stores_metadata(tmp_path):
    import numpy as np
    import xarray as xr

    from neurofacets.job_resources import (
        BOOTSTRAP_BLOCK_MB,
        BOOTSTRAP_WORK_MB,
        ENCODE_SCRIPT_MB,
        FIGURE_SCRIPT_MB,
        bootstrap_draws_mem_mb,
        bootstrap_mem_mb,
        job_mem_mb,
    )
    from neurofacets.store import write_activation_shard, write_xarray_store

    shards = []
    for s, n in enumerate((30, 25)):
        path = tmp_path / f"shard-{s:03d}.zarr"
        write_activation_shard(path, np.arange(n) + 100 * s,
                               {"conv1_1": (np.ones((n, 9), np.float32), np.zeros((n, 9), np.int32), (2, 2))})
        shards.append(path)
    # the layer (55 x 9 float32, read twice), two uint8 (draws x images), five float64 (draws x neurons)
    data = min(BOOTSTRAP_BLOCK_MB, 2 * 4 * 55 * 9 / 1e6) + (2 * 200 * 55 + 6 * 8 * 200 * 9) / 1e6
    assert bootstrap_mem_mb(shards, "conv1_1", 200) == job_mem_mb(ENCODE_SCRIPT_MB + BOOTSTRAP_WORK_MB + data)
    assert bootstrap_mem_mb([tmp_path / "missing.zarr"], "conv1_1", 200, default=1000) == job_mem_mb(
        ENCODE_SCRIPT_MB + BOOTSTRAP_WORK_MB + 1000)
    store = tmp_path / "bootstrap" / "conv1_1.zarr"
    write_xarray_store(store, xr.Dataset({"sparsity": (("draw", "neuron"), np.zeros((200, 9)))}))
    assert bootstrap_draws_mem_mb([store], 200) == job_mem_mb(FIGURE_SCRIPT_MB + 2 * 6 * 8 * 200 * 9 / 1e6)
    assert bootstrap_draws_mem_mb([tmp_path / "none.zarr"], 200) == job_mem_mb(FIGURE_SCRIPT_MB + 1000)
