"""Layer names without torch: the stored table against the models, and a parse without torch."""

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torchvision
from conftest import HIDE_TORCH

from neurofacets import layer_table
from neurofacets.layer_table import configured_layer_names, load_table, pick_layers
from neurofacets.models import layer_names, layer_records

REPO = Path(__file__).resolve().parents[1]


def test_table_matches_every_installed_model():
    """The stored names are what the models give; a new torchvision needs a new table."""
    table = load_table()
    archs = sorted(torchvision.models.list_models(module=torchvision.models))
    assert table["torchvision"] == torchvision.__version__.split("+")[0], (
        "layer_names.json was made with another torchvision: python -m neurofacets.layer_table"
    )
    assert sorted(table["layers"]) == archs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for arch in archs:
            records = layer_records(arch)
            assert table["layers"][arch] == [r[0] for r in records] == layer_names(arch, "all"), arch
            assert table["modules"][arch] == [r[1] for r in records], arch
            assert table["kinds"][arch] == [r[2] for r in records], arch


def test_configured_names_select_in_network_order():
    assert configured_layer_names("vgg16", ["conv3_1", "conv1_2"]) == ["conv1_2", "conv3_1"]
    assert configured_layer_names("resnet18", "conv")[:2] == ["conv1", "layer1-0-conv1"]
    with pytest.raises(ValueError, match=r"\['conv9_9'\] are not layers of vgg16"):
        configured_layer_names("vgg16", ["conv9_9"])
    with pytest.raises(ValueError, match="not a torchvision"):
        configured_layer_names("vgg99", "conv")
    with pytest.raises(ValueError, match="neither 'conv'"):
        pick_layers(["a"], "x", "relu")


def test_other_torchvision_falls_back_to_the_model(monkeypatch):
    monkeypatch.setattr(layer_table, "torchvision_version", lambda: "0.0.1")
    monkeypatch.setattr(layer_table, "load_table", lambda: {"torchvision": "9", "layers": {"vgg16": ["bogus"]}})
    assert configured_layer_names("vgg16", ["conv5_3"]) == ["conv5_3"]


@pytest.mark.parametrize("config", ["tests/configs/tiny.yaml", "config/config.yaml"])
def test_parsing_the_workflow_does_not_import_torch(tmp_path, config):
    result = subprocess.run(
        [sys.executable, "-c", HIDE_TORCH, "-n", "--cores", "1", "-d", str(tmp_path),
         "-s", str(REPO / "Snakefile"), "--configfile", str(REPO / config)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "imported while parsing" not in result.stderr
