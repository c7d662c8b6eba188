"""No process-wide state is changed by importing the package or left changed after a job:
the warnings filter, torch's backend flags, ``nn.Module.register_parameter``."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from neurofacets.extract import cuda_numerics, iterate_activations, make_loader
from neurofacets.logs import log_to
from neurofacets.models import build_model, meta_model, select_layers


def _backend_flags():
    return (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)


def test_importing_the_package_leaves_the_warnings_filter_alone():
    code = ("import warnings; before = list(warnings.filters); import neurofacets; "
            "assert warnings.filters == before, warnings.filters[:3]")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_log_to_silences_the_snakemake_timestamp_warning_only_inside(tmp_path):
    before = list(warnings.filters)
    with log_to(tmp_path / "job.log"):
        assert len(warnings.filters) > len(before)
    assert warnings.filters == before


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_backend_flags_same_before_and_after_an_extraction(tmp_path, device):
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA here")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)).save(paths[-1])
    model = build_model("vgg11", seed=0)
    layers = select_layers(model, "vgg11", ["conv1_1"])
    loader = make_loader(range(3), paths, image_size=32, resize=36, batch_size=2, workers=0)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = False, True
    before = _backend_flags()
    try:
        batches = list(iterate_activations(model, layers, loader, torch.device(device), progress=False,
                                           autotune=True))
        assert len(batches) == 2
        assert _backend_flags() == before
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = before[:2]


def test_cuda_numerics_sets_the_flags_inside_and_restores_them_after_an_error():
    before = _backend_flags()
    with pytest.raises(KeyError), cuda_numerics(autotune=not before[0]):
        assert _backend_flags() == (not before[0], False, False)
        raise KeyError("job failed")
    assert _backend_flags() == before


def test_register_parameter_is_the_original_after_a_model_build_that_raises(tmp_path, monkeypatch):
    (tmp_path / "broken_net.py").write_text(
        "import torch\n\n"
        "def make():\n"
        "    torch.nn.Linear(2, 2)  # registers parameters under the patch\n"
        "    raise ValueError('broken factory')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    original = nn.Module.register_parameter
    with pytest.raises(RuntimeError, match="broken factory"):
        meta_model("python:broken_net:make")
    assert nn.Module.register_parameter is original
    assert meta_model("vgg11").features[0].weight.device.type == "meta"
    assert nn.Module.register_parameter is original
