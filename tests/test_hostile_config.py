"""No silent wrong results (issue 20): facets decided exactly, all-dead layers said out loud,
and configurations that cannot work refused when the workflow is parsed, naming the key."""

from __future__ import annotations

import copy
import logging
import platform
import re
import subprocess
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision
import yaml
from conftest import HIDE_TORCH
from fakerun import DEFAULT_LAYERS, dataset_tables, figure_inputs, make_fake_run

from neurofacets import layer_table
from neurofacets.config import ConfigError, check_config, device_problem, image_size_bounds, load_schema, validate_config
from neurofacets.extract import MaxArgmaxHooks
from neurofacets.figures import FIGURES, build_figure
from neurofacets.layer_table import image_size_problem, load_table
from neurofacets.metrics import all_layers_table, assign_facets, exceeds_mean, facet_threshold, facets
from neurofacets.models import (
    build_model,
    input_size_ranges,
    layer_geometry,
    layers_with_a_map,
    meta_model,
    select_layers,
)
from neurofacets.readers import METRIC_COLUMNS
from neurofacets.summary import write_summary

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "src" / "neurofacets" / "config_schema.yaml"


@pytest.fixture
def config():
    """The shipped default configuration, validated (every default filled in)."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate_config(cfg, SCHEMA)
    return cfg


def metrics_table(layer: str, mf) -> pd.DataFrame:
    """A layer's metrics table (:data:`METRIC_COLUMNS`) with the given MF degrees."""
    mf = np.asarray(mf, dtype=float)
    return pd.DataFrame({
        "layer": layer, "neuron": np.arange(len(mf)), "n_counted": np.where(np.isnan(mf), 0, 5),
        "sparsity": np.where(np.isnan(mf), np.nan, 0.5), "flatness": np.where(np.isnan(mf), -1.0, 0.5),
        "mf": mf, "p_value": np.nan, "q_value": np.nan, "p_empirical": np.nan, "q_empirical": np.nan,
        "top_classes": "[]",
    }, columns=list(METRIC_COLUMNS))


# ------------------------------------------------------------------ 8. facets decided exactly

def _value_whose_float_mean_is_below_it(n: int) -> float:
    """An MF-like value x whose float mean over n copies comes out below x (the bug's case)."""
    for x in np.linspace(0.05, 1.5, 2000):
        if np.full(n, x).mean() < x:
            return float(x)
    raise AssertionError("no such value found")


@pytest.mark.parametrize("rule", ["global_mean", "layer_mean"])
def test_neurons_that_share_one_mf_degree_are_all_sf(rule):
    """mf > mean is false for every neuron when all are equal, however the mean rounds."""
    n = 4224  # VGG16's conv neurons
    x = _value_whose_float_mean_is_below_it(n)
    assert np.full(n, x).mean() < x  # the float mean is one ulp below: a float comparison says MF
    layers = np.array(["conv1_1"] * (n // 2) + ["conv1_2"] * (n // 2))
    mf = np.full(n, x)
    assert set(assign_facets(mf, layers, rule)) == {"SF"}
    table = all_layers_table([metrics_table("conv1_1", mf[: n // 2]), metrics_table("conv1_2", mf[n // 2:])], rule)
    assert set(table["facet"]) == {"SF"}
    # the stored threshold is the float nearest the exact mean
    assert table["facet_threshold"].eq(x).all()


def test_exceeds_mean_agrees_with_exact_rational_arithmetic():
    rng = np.random.default_rng(0)
    base = rng.random(3000) * 2
    mean = float(sum(Fraction(v) for v in base.tolist()) / len(base))
    # values at, and one ulp either side of, the rounded mean, plus the reference values
    near = np.array([np.nextafter(mean, 0), mean, np.nextafter(mean, 3), *base[:50]])
    for values, reference in ((base, base), (near, base), (np.full(997, 0.1), np.full(997, 0.1)),
                              (np.array([1e308, 1.7e308]), np.array([1e308, 1.7e308]))):
        exact = sum(Fraction(v) for v in reference.tolist())
        expected = [Fraction(v) * len(reference) > exact for v in values.tolist()]
        assert exceeds_mean(values, reference).tolist() == expected


def test_infinite_mf_is_mf_under_every_threshold_and_dead_stays_dead():
    mf = np.array([np.inf, np.nan, 0.2, 0.4, np.inf, np.nan])
    layers = np.array(["a", "a", "a", "b", "b", "b"])
    for rule in ("global_mean", "layer_mean", 0.3, 1e300, -5.0):
        got = assign_facets(mf, layers, rule).tolist()
        assert got[0] == got[4] == "MF" and got[1] == got[5] == "dead", rule
    # a layer with no finite MF has no mean (NaN threshold): +inf is still MF
    only_inf = np.array([np.inf, np.nan])
    assert np.isnan(facet_threshold(only_inf, np.array(["a", "a"]), "global_mean")).all()
    assert assign_facets(only_inf, np.array(["a", "a"]), "global_mean").tolist() == ["MF", "dead"]
    assert facets(only_inf, np.full(2, np.nan)).tolist() == ["MF", "dead"]


@pytest.mark.parametrize("rule", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_numeric_threshold_is_refused_by_the_metrics(rule):
    with pytest.raises(ValueError, match="analysis.facet_threshold: .* is not a finite number"):
        assign_facets(np.array([0.1, 0.2]), np.array(["a", "a"]), rule)
    with pytest.raises(ValueError, match="analysis.facet_threshold"):
        facet_threshold(np.array([0.1, 0.2]), np.array(["a", "a"]), rule)


@pytest.mark.parametrize("value,shown", [(float("nan"), "nan"), (".nan", "nan"), (float("inf"), "inf"),
                                         ("-.inf", "-inf")])
def test_config_refuses_a_non_finite_facet_threshold(config, value, shown):
    config["analysis"]["facet_threshold"] = value
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    assert str(info.value) == f"analysis.facet_threshold: {shown} is not a finite number (NaN and infinities are refused)"


def test_config_refuses_non_finite_numbers_under_every_key(config):
    """NaN passes JSON Schema's bounds (every comparison with it is false): refused everywhere."""
    config["visualize"]["ica_tol"] = float("nan")
    config["semantics"]["concept_share"] = float("nan")
    config["visualize"]["seed"] = float("inf")  # an integer key: the schema's own message
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    assert sorted(str(info.value).splitlines()) == [
        "semantics.concept_share: nan is not a finite number (NaN and infinities are refused)",
        "visualize.ica_tol: nan is not a finite number (NaN and infinities are refused)",
        "visualize.seed: inf is not of type integer",
    ]


# ------------------------------------------------------------------ 9. every neuron dead

def _dead_layer_run(tmp_path, dead_layers):
    sizes = {name: n for name, n, _ in DEFAULT_LAYERS}
    dead = [(name, i) for name in dead_layers for i in range(sizes[name])]
    return make_fake_run(tmp_path, dead=dead), sizes


def test_an_all_dead_layer_is_warned_about_in_the_metrics_log(caplog):
    tables = [metrics_table("conv1_1", [0.2, 0.4, np.nan]), metrics_table("conv1_2", [np.nan] * 4)]
    with caplog.at_level(logging.WARNING, logger="neurofacets"):
        table = all_layers_table(tables, "global_mean")
    assert table.loc[table["layer"] == "conv1_2", "facet"].eq("dead").all()
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].startswith("layer conv1_2: all 4 neurons dead")


def test_an_all_dead_layer_in_summary_csv_and_its_log(tmp_path, caplog):
    fake, sizes = _dead_layer_run(tmp_path, ["conv2_1"])
    out = fake.out
    with caplog.at_level(logging.WARNING, logger="neurofacets"):
        summary = write_summary(out / "metrics" / "all_layers.csv", out / "similarity" / "summary.csv",
                                out / "model" / "layers.csv", tmp_path / "summary.csv", "fake",
                                **dataset_tables(tmp_path / "dataset"))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith(f"layer conv2_1: all {sizes['conv2_1']} neurons dead") and "frac_dead 1" in m
               for m in warned)
    row = pd.read_csv(tmp_path / "summary.csv").set_index("layer").loc["conv2_1"]
    assert (row.n_neurons, row.n_dead, row.n_mf, row.n_sf) == (sizes["conv2_1"], sizes["conv2_1"], 0, 0)
    assert row.frac_dead == 1 and row.frac_mf == 0 and row.frac_sf == 0
    assert np.isnan([row.mean_mf, row.max_mf, row.mean_mf_norm, row.mean_sparsity, row.mean_flatness]).all()
    # the other layers are summarised as usual
    assert summary.set_index("layer").drop("conv2_1")["frac_dead"].lt(1).all()


def _figure_inputs(fake):
    return figure_inputs(fake)


def _texts(fig) -> str:
    parts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        parts += [t.get_text() for t in ax.texts]
    for sub in fig.subfigs:
        parts += [t.get_text() for t in sub.texts]
    return "\n".join([fig.get_suptitle(), *parts])


@pytest.mark.parametrize("dead_layers", [["conv2_1"], [name for name, _, _ in DEFAULT_LAYERS]],
                         ids=["one-layer", "every-layer"])
def test_figures_draw_and_name_all_dead_layers(tmp_path, dead_layers):
    fake, sizes = _dead_layer_run(tmp_path, dead_layers)
    inputs = _figure_inputs(fake)
    for stem in [s for s in FIGURES if s.startswith(("fig", "app"))]:
        fig = build_figure(stem, inputs, [tmp_path / f"{stem}.png"], 40, {"examples_per_layer": 1})
        assert (tmp_path / f"{stem}.png").stat().st_size > 0
        if stem in ("fig1_sparsity_flatness", "fig2_mf_distribution", "fig3_mf_sf_counts", "appA_distributions",
                    "fig4_facet_examples", "appB_ica_by_mf"):
            for name in dead_layers:
                assert f"layer {name}: all {sizes[name]} neurons dead" in _texts(fig), (stem, _texts(fig))
    if len(dead_layers) == 1:
        fig3 = build_figure("fig3_mf_sf_counts", inputs, [tmp_path / "fig3_mf_sf_counts.pdf"], 40)
        assert f"all {sizes['conv2_1']} dead" in [t.get_text() for t in fig3.axes[0].texts]


# ------------------------------------------------------------------ parse time: input size

def test_the_layer_table_covers_the_schemas_input_sizes():
    table = load_table()
    assert table["image_sizes"] == list(image_size_bounds(load_schema(SCHEMA)))
    assert sorted(table["input_sizes"]) == sorted(table["layers"])
    for arch, names in table["layers"].items():
        assert len(table["input_sizes"][arch]) == len(names), arch


@pytest.mark.parametrize("arch", ["alexnet", "vgg16", "squeezenet1_1", "vit_b_16", "googlenet", "densenet121"])
def test_stored_input_sizes_are_what_the_models_give(arch):
    table = load_table()
    low, high = table["image_sizes"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ranges = input_size_ranges(arch, low, high, "all")
    assert [[list(r) for r in ranges[name]] for name in table["layers"][arch]] == table["input_sizes"][arch]


@pytest.mark.parametrize("arch,last", [("alexnet", 300), ("vit_b_16", 1024), ("squeezenet1_1", 200)])
def test_stored_input_sizes_hold_at_every_size(arch, last):
    """Every size, not only the samples and bisection points the table was made from."""
    table = load_table()
    model = meta_model(arch).to("meta").eval()
    layers = select_layers(model, arch, "all")
    stored = dict(zip(table["layers"][arch], table["input_sizes"][arch]))
    for size in range(table["image_sizes"][0], last + 1):
        expected = {name for name, spans in stored.items() if any(a <= size <= b for a, b in spans)}
        assert layers_with_a_map(model, layers, size) == expected, size


def test_no_layer_needs_more_than_torchvision_documents_for_the_whole_network():
    """An independent check of every stored architecture: torchvision's weights state the
    smallest input of the whole network (``min_size``); no layer can need more."""
    table = load_table()
    low = table["image_sizes"][0]
    for arch, spans in table["input_sizes"].items():
        documented = max(min(w.meta["min_size"]) for w in torchvision.models.get_model_weights(arch))
        needed = max((s[0][0] for s in spans if s), default=low)
        assert needed <= max(low, documented), arch


@pytest.mark.parametrize("arch,layers,works,fails", [
    ("alexnet", ["features-10"], 31, 30),
    ("squeezenet1_1", "conv", 17, 16),
    ("densenet121", ["features-denseblock4-denselayer16-conv2"], 29, 28),
    ("inception_v3", ["Mixed_7c-branch_pool-conv"], 75, 74),
])
def test_the_boundary_is_where_the_real_network_fails(arch, layers, works, fails):
    """On the CPU with real (random) weights, through extraction's own hooks."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = build_model(arch)
    chosen = select_layers(model, arch, layers)
    names = [layer.name for layer in chosen]
    assert image_size_problem(arch, names, works) is None
    assert image_size_problem(arch, names, fails) is not None
    hooks = MaxArgmaxHooks(model, chosen)
    with torch.no_grad():
        assert sorted(hooks.run(model, torch.zeros(2, 3, works, works))) == sorted(names)
        with pytest.raises(RuntimeError):
            hooks.run(model, torch.zeros(2, 3, fails, fails))


def test_the_layers_job_measures_at_the_smallest_size_and_fails_below_it():
    chosen = select_layers(meta_model("alexnet"), "alexnet", ["features-10"])
    (geometry,) = layer_geometry("alexnet", chosen, 31)
    assert (geometry.height, geometry.width) == (1, 1)
    with pytest.raises(RuntimeError):
        layer_geometry("alexnet", chosen, 30)


def test_the_layers_job_needs_only_the_chosen_layers():
    """VGG16 at 16 px: conv5_3 has a 1 x 1 map; the pooling after it (which would be 0 x 0)
    is not run, as in extraction."""
    chosen = select_layers(meta_model("vgg16"), "vgg16", ["conv5_3"])
    (geometry,) = layer_geometry("vgg16", chosen, 16)
    assert (geometry.height, geometry.width) == (1, 1)
    assert image_size_problem("vgg16", ["conv5_3"], 16) is None


def test_too_small_an_input_names_the_key_the_layer_and_the_smallest_size():
    layers = ["features-0", "features-3", "features-6", "features-8", "features-10"]
    assert image_size_problem("alexnet", layers, 16) == (
        "extraction.image_size: 16 is too small for alexnet's features-6 (and 2 more of the chosen layers): "
        "the network's maps shrink to 0 x 0 before or at it; the smallest size is 31"
    )
    assert image_size_problem("alexnet", ["features-0", "features-3"], 16) is None
    assert image_size_problem("alexnet", layers, 31) is None


def test_a_vit_takes_only_its_own_size():
    assert image_size_problem("vit_b_16", ["conv_proj"], 32) == (
        "extraction.image_size: 32 does not fit vit_b_16's conv_proj: vit_b_16 runs it only at image_size 224 "
        "(the size the network is built for); set extraction.image_size: 224"
    )
    assert image_size_problem("vit_b_16", ["conv_proj"], 224) is None
    # MaxViT's attention partitions are sized for its 224 px input at construction
    assert image_size_problem("maxvit_t", load_table()["layers"]["maxvit_t"], 256).endswith(
        "maxvit_t runs it only at image_size 221 to 224 (the sizes the network is built for); "
        "set extraction.image_size to one of them")


def test_layers_that_never_run_are_refused_by_name():
    assert image_size_problem("googlenet", ["aux1-conv-conv"], 224) == (
        "model.layers: googlenet's aux1-conv-conv get no map at any extraction.image_size from 16 to 1024 (the "
        "network refuses every such input before them, or does not run them in eval mode, e.g. an auxiliary "
        "classifier); choose other layers"
    )


def test_without_the_table_the_network_on_the_meta_device_gives_the_same_answer(monkeypatch):
    monkeypatch.setattr(layer_table, "torchvision_version", lambda: "0.0.1")
    layers = ["features-0", "features-3", "features-6", "features-8", "features-10"]
    assert image_size_problem("alexnet", layers, 16).endswith("the smallest size is 31")
    assert image_size_problem("alexnet", layers, 64) is None
    assert "only at image_size 224" in image_size_problem("vit_b_16", ["conv_proj"], 32)


@pytest.mark.parametrize("change,message", [
    ({"model": {"arch": "alexnet", "layers": "conv"}, "extraction": {"image_size": 16, "resize": 16}},
     "extraction.image_size: 16 is too small for alexnet's features-6"),
    ({"model": {"arch": "vit_b_16", "layers": "conv"}, "extraction": {"image_size": 32, "resize": 32}},
     "extraction.image_size: 32 does not fit vit_b_16's conv_proj: vit_b_16 runs it only at image_size 224"),
    ({"model": {"arch": "vgg16", "layers": ["conv9_9"]}}, r"model.layers: \['conv9_9'\] are not layers of vgg16"),
    pytest.param({"extraction": {"device": "mps"}}, "extraction.device: 'mps'",
                 marks=pytest.mark.skipif(platform.system() == "Darwin", reason="macOS has MPS")),
])
def test_check_config_refuses_what_cannot_run(config, change, message):
    merged = copy.deepcopy(config)
    for section, values in change.items():
        merged[section].update(values)
    with pytest.raises(ConfigError, match=message):
        check_config(merged)


# ------------------------------------------------------------------ parse time: device

@pytest.mark.skipif(platform.system() == "Darwin", reason="MPS exists on macOS")
def test_mps_off_macos_is_refused_without_importing_torch():
    code = ("import sys; from neurofacets.config import device_problem; print(device_problem('mps')); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    message, imported = result.stdout.strip().splitlines()
    assert message == (f"extraction.device: 'mps' (Apple's Metal) exists only in PyTorch for macOS; this is "
                       f"{platform.system()}: use auto, cpu, cuda or cuda:<n>")
    assert imported == "False"


def test_cuda_is_not_refused_at_parse_where_the_jobs_may_have_it(config):
    """The login node of a cluster parses the workflow without a GPU; its jobs run on GPU nodes."""
    for device in ("auto", "cpu", "cuda", "cuda:3"):
        assert device_problem(device) is None
        merged = copy.deepcopy(config)
        merged["extraction"]["device"] = device
        check_config(merged)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "CUDA", "gpu:0", "cuda:"])
def test_a_malformed_device_is_refused_by_the_schema(config, device):
    config["extraction"]["device"] = device
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    assert str(info.value).startswith(f"extraction.device: {device!r} is not an accepted form; use auto")


# ------------------------------------------------------------------ through the command line


def _dry_run(tmp_path, *config_args):
    """``snakemake -n`` of the default config with ``--config`` overrides, in an empty folder,
    with torch unimportable (parsing must not need it)."""
    cmd = [sys.executable, "-c", HIDE_TORCH, "-n", "--cores", "1", "-d", str(tmp_path), "-s", str(REPO / "Snakefile"),
           "--configfile", str(REPO / "config" / "config.yaml"), "--config", *config_args]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    output = result.stdout + result.stderr
    assert "imported while parsing" not in output, output[-3000:]
    return result.returncode, output


@pytest.mark.parametrize("overrides,message", [
    (['model={"arch": "alexnet", "weights": "random:0", "layers": "conv"}',
      'extraction={"image_size": 16, "resize": 16}'],
     ("extraction.image_size: 16 is too small for alexnet's features-6 (and 2 more of the chosen layers): the "
      "network's maps shrink to 0 x 0 before or at it; the smallest size is 31")),
    (['model={"arch": "vit_b_16", "weights": "random:0", "layers": "conv"}',
      'extraction={"image_size": 32, "resize": 32}'],
     "extraction.image_size: 32 does not fit vit_b_16's conv_proj: vit_b_16 runs it only at image_size 224"),
    (['analysis={"facet_threshold": ".nan"}'],
     "analysis.facet_threshold: nan is not a finite number (NaN and infinities are refused)"),
    pytest.param(['extraction={"device": "mps"}'], "extraction.device: 'mps' (Apple's Metal) exists only in "
                 "PyTorch for macOS", marks=pytest.mark.skipif(platform.system() == "Darwin", reason="macOS has MPS")),
], ids=["alexnet-16px", "vit-32px", "nan-threshold", "mps"])
def test_the_command_line_stops_at_parse_naming_the_key(tmp_path, overrides, message):
    code, output = _dry_run(tmp_path, *overrides)
    assert code != 0
    assert message in output, output[-3000:]


def test_the_command_line_plans_the_smallest_size(tmp_path):
    code, output = _dry_run(tmp_path, 'model={"arch": "alexnet", "weights": "random:0", "layers": "conv"}',
                            'extraction={"image_size": 31, "resize": 31}')
    assert code == 0, output[-3000:]
    assert re.search(r"activations/shard-\d{3}\.zarr", output)
