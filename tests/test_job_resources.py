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
