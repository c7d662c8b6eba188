"""Layer naming, selection and receptive-field geometry."""

import pytest
import torch
from torch import nn

from neurofacets.models import (
    Layer,
    build_model,
    layer_geometry,
    layer_names,
    select_layers,
    write_layers_table,
)

VGG16_NAMES = ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
               "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3"]


def test_vgg16_layer_names():
    assert layer_names("vgg16", "conv") == VGG16_NAMES
    assert layer_names("vgg16", ["conv3_1", "conv1_2"]) == ["conv1_2", "conv3_1"]


def test_unknown_layer_and_arch_are_named():
    with pytest.raises(ValueError, match="conv9_9"):
        layer_names("vgg16", ["conv9_9"])
    with pytest.raises(ValueError, match="not a torchvision"):
        layer_names("vgg99", "conv")


def test_vgg16_geometry_matches_known_values(tmp_path):
    table = write_layers_table("vgg16", "conv", 224, str(tmp_path / "layers.csv"))
    assert list(table["layer"]) == VGG16_NAMES
    assert list(table["rf"]) == [3, 5, 10, 14, 24, 32, 40, 60, 76, 92, 132, 164, 196]
    assert list(table["jump"]) == [1, 1, 2, 2, 4, 4, 4, 8, 8, 8, 16, 16, 16]
    assert list(table["start"]) == [0, 0, 0.5, 0.5, 1.5, 1.5, 1.5, 3.5, 3.5, 3.5, 7.5, 7.5, 7.5]
    assert list(table["height"]) == [224, 224, 112, 112, 56, 56, 56, 28, 28, 28, 14, 14, 14]
    assert list(table["channels"]) == [64] * 2 + [128] * 2 + [256] * 3 + [512] * 6
    assert (tmp_path / "layers.csv").exists()


def test_geometry_of_unpadded_strided_net_alexnet():
    # AlexNet: conv 11x11 stride 4 pad 2, pools 3x3 stride 2, hand-derived values
    layers = select_layers(build_model("alexnet", seed=0), "alexnet", "conv")
    geo = layer_geometry("alexnet", layers, 224)
    assert [g.rf for g in geo] == [11, 51, 99, 131, 163]
    assert [g.jump for g in geo] == [4, 8, 16, 16, 16]
    assert [g.height for g in geo] == [55, 27, 13, 13, 13]
    assert [g.start for g in geo] == [3.0, 7.0, 15.0, 15.0, 15.0]


def test_geometry_grows_input_when_field_exceeds_image():
    # at 32 px the conv5_3 field (196) is larger than the image: measured on a larger input,
    # the map size still refers to the configured 32 px
    layers = select_layers(build_model("vgg16", seed=0), "vgg16", ["conv5_3"])
    (geo,) = layer_geometry("vgg16", layers, 32)
    assert (geo.rf, geo.jump, geo.start, geo.height) == (196, 16, 7.5, 2)


def test_map_sizes_of_every_layer_refer_to_the_configured_input():
    # at 112 px the field of conv5_2 (164) is the first to exceed the image; the map sizes of
    # the layers after it are still those at 112 px (they were once taken at 224 px)
    layers = select_layers(build_model("vgg16", seed=0), "vgg16", "conv")
    geo = layer_geometry("vgg16", layers, 112)
    assert [g.height for g in geo] == [112, 112, 56, 56, 28, 28, 28, 14, 14, 14, 7, 7, 7]
    assert [g.width for g in geo] == [g.height for g in geo]
    assert [g.rf for g in geo] == [3, 5, 10, 14, 24, 32, 40, 60, 76, 92, 132, 164, 196]
    alexnet = layer_geometry("alexnet", select_layers(build_model("alexnet", seed=0), "alexnet", "conv"), 112)
    assert [g.height for g in alexnet] == [27, 13, 6, 6, 6]


def test_batchnorm_networks_hook_the_norm():
    layers = select_layers(build_model("vgg11_bn", seed=0), "vgg11_bn", "conv")
    assert layers[0] == Layer("conv1_1", "features.0", "features.1")
    model = build_model("resnet18", seed=0)
    first = select_layers(model, "resnet18", "conv")[0]
    assert (first.name, first.hook_path) == ("conv1", "bn1")


def test_build_model_seed_is_deterministic():
    a = build_model("vgg11", seed=3).features[0].weight
    b = build_model("vgg11", seed=3).features[0].weight
    c = build_model("vgg11", seed=4).features[0].weight
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_build_model_rejects_foreign_weights():
    with pytest.raises(RuntimeError):
        build_model("vgg11", {"nonsense.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="unexpected"):
        build_model("vgg11", {"nonsense.weight": torch.zeros(1)}, partial=True)
    assert isinstance(build_model("vgg11", {}, partial=True), nn.Module)
