"""Configuration: the schema and the cross-key checks name the offending key."""

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from neurofacets.config import ConfigError, check_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "config" / "schema.yaml")


@pytest.fixture
def config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


@pytest.mark.parametrize("name", ["config.yaml", "imagenet-val.yaml", "imagenet-train.yaml"])
def test_shipped_configs_are_valid(name):
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    override = yaml.safe_load((REPO / "config" / name).read_text())
    merged = _merge(base, override)
    validate(merged, SCHEMA)


def _merge(base, override):
    out = copy.deepcopy(base)
    for key, value in override.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.mark.parametrize("path,value,message", [
    (("extraction", "batch_size"), 0, "batch_size"),
    (("extraction", "precision"), "fp8", "precision"),
    (("model", "weights"), "huggingface:vgg", "weights"),
    (("analysis", "top_k"), "many", "top_k"),
    (("model", "colour"), "red", "colour"),
    (("run",), "../escape", "run"),
    (("dataset", "format"), "tfrecord", "format"),
])
def test_schema_errors_name_the_key(config, path, value, message):
    target = config
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(WorkflowError, match=message):
        validate(config, SCHEMA)


def test_default_config_passes_checks(config):
    validate(config, SCHEMA)
    check_config(config)


@pytest.mark.parametrize("change,message", [
    ({"dataset": {"format": "folder", "root": None}}, "dataset.root"),
    ({"dataset": {"format": "csv", "root": "."}}, "dataset.labels"),
    ({"dataset": {"format": "folder", "root": "/nonexistent/imagenet"}}, "does not exist"),
    ({"analysis": {"level": "coarse"}}, "coarse_labels"),
    ({"extraction": {"resize": 100, "image_size": 224}}, "extraction.resize"),
    ({"model": {"weights": "/nonexistent/vgg16.pth"}}, "model.weights"),
])
def test_cross_key_checks(config, change, message):
    with pytest.raises(ConfigError, match=message):
        check_config(_merge(config, change))
