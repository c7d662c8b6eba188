"""The model seam: families, layer kinds and selection, token geometry, weights for every family."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from conftest import LABNET as LABNET_FILE
from torch import nn

from neurofacets.extract import MaxArgmaxHooks
from neurofacets.layer_table import configured_layer_names, pick_layers
from neurofacets.model_spec import parse_model_spec
from neurofacets.models import (
    Layer,
    all_layers,
    build_model,
    layer_geometry,
    meta_model,
    model_source,
    select_layers,
    token_geometry,
)
from neurofacets.patches import receptive_field_box
from neurofacets.prepared_weights import prepared_weights_name

LABNET = "python:labnet:make_labnet"


@pytest.fixture
def labnet_dir(tmp_path, monkeypatch):
    """A working directory holding the lab's module (as Snakemake's would)."""
    shutil.copy(LABNET_FILE, tmp_path / "labnet.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


# ------------------------------------------------------------------------------ model.arch

def test_arch_forms_and_canonical_names():
    assert parse_model_spec("vgg16") == parse_model_spec("torchvision:vgg16")
    assert parse_model_spec("torchvision:vgg16").canonical == "vgg16"
    assert parse_model_spec("timm:deit_tiny_patch16_224").file_token == "timm-deit_tiny_patch16_224"
    assert parse_model_spec("python:labs.nets:make").file_token == "python-labs.nets-make"
    for bad in ("VGG", "timm:", "python:mod", "python:mod:1f", "onnx:x"):
        with pytest.raises(ValueError, match="torchvision:<name>"):
            parse_model_spec(bad)
    # the plain name keeps its prepared weights file; another family gets its own
    assert prepared_weights_name("torchvision:vgg16", "random:0") == prepared_weights_name("vgg16", "random:0") \
        == "vgg16__random-0.pt"
    assert prepared_weights_name("timm:deit_tiny_patch16_224", "timm:pretrained") == \
        "timm-deit_tiny_patch16_224__timm-pretrained.pt"


def test_unknown_models_are_named_with_a_way_out():
    with pytest.raises(ValueError, match="not a torchvision classification model.*close: vgg16"):
        meta_model("vgg166")
    pytest.importorskip("timm")
    with pytest.raises(ValueError, match=r"timm .* has no model 'deit_tinny_patch16_224'.*close: deit_tiny"):
        meta_model("timm:deit_tinny_patch16_224")


def test_python_factory_errors_say_what_is_wrong(labnet_dir):
    with pytest.raises(TypeError, match=r"not_a_module\(\) returned a str, not a torch.nn.Module"):
        meta_model("python:labnet:not_a_module")
    with pytest.raises(RuntimeError, match=r"failing\(\) failed: RuntimeError: the lab's GPU cluster is down"):
        meta_model("python:labnet:failing")
    with pytest.raises(ValueError, match=r"labnet has no function 'nothing'; it has \[.*make_labnet"):
        meta_model("python:labnet:nothing")
    with pytest.raises(ValueError, match=r"cannot import 'nolab'.*put nolab.py in the directory"):
        meta_model("python:nolab:make")


# ------------------------------------------------------------------------------ layers

def test_layer_kinds_of_each_family(labnet_dir):
    vit = all_layers(meta_model("vit_b_16"), "vit_b_16")
    assert [(x.name, x.kind) for x in vit[:2]] == [
        ("conv_proj", "conv"), ("encoder-layers-encoder_layer_0-mlp-1", "tokens")]
    assert len(vit) == 13 and vit[1].prefix_tokens == 1 and vit[1].module == "encoder.layers.encoder_layer_0.mlp.1"
    convnext = select_layers(meta_model("convnext_tiny"), "convnext_tiny", "mlp")
    assert len(convnext) == 18 and {x.kind for x in convnext} == {"channels_last"}
    assert configured_layer_names("vgg16", "all") == configured_layer_names("vgg16", "conv")  # VGG's head has no map
    # squeeze-excitation convolutions (on a 1 x 1 pooled map) are no layers
    assert not [x for x in configured_layer_names("efficientnet_b0", "conv") if "fc1" in x or "fc2" in x]
    lab = all_layers(meta_model(LABNET), LABNET)
    assert [(x.name, x.kind, x.prefix_tokens) for x in lab] == [
        ("patch_embed", "conv", 0), ("block-mlp-act", "tokens", 1)]


def test_timm_layers_and_prefix_tokens():
    pytest.importorskip("timm")
    deit = all_layers(meta_model("timm:deit_tiny_patch16_224"), "timm:deit_tiny_patch16_224")
    assert [x.name for x in deit if x.kind == "tokens"][:2] == ["blocks-0-mlp-act", "blocks-1-mlp-act"]
    assert {x.prefix_tokens for x in deit if x.kind == "tokens"} == {1}
    distilled = "timm:deit_tiny_distilled_patch16_224"
    assert {x.prefix_tokens for x in all_layers(meta_model(distilled), distilled) if x.kind == "tokens"} == {2}


def test_layer_selection_by_keyword_name_and_pattern():
    names = configured_layer_names("vit_b_16", "encoder.layers.encoder_layer_1?.mlp.*")
    assert names == [f"encoder-layers-encoder_layer_{i}-mlp-1" for i in (10, 11)]
    assert configured_layer_names("vit_b_16", ["conv_proj", "*encoder_layer_11-mlp-1"]) == [
        "conv_proj", "encoder-layers-encoder_layer_11-mlp-1"]
    assert configured_layer_names("vgg16", "conv5_*") == ["conv5_1", "conv5_2", "conv5_3"]
    with pytest.raises(ValueError, match=r"the pattern 'blocks\.\*\.mlp\.act' matches no layer of vit_b_16"):
        configured_layer_names("vit_b_16", ["blocks.*.mlp.act"])
    with pytest.raises(ValueError, match="vgg16 has no mlp layers"):
        configured_layer_names("vgg16", "mlp")
    with pytest.raises(ValueError, match="neither 'conv', 'mlp', 'all'"):
        pick_layers(["a"], "x", "relu")


# ------------------------------------------------------------------------------ hooks

class _Tokens(nn.Module):
    """Returns a fixed (B, T, D) activation through a GELU-like identity hook point."""

    def __init__(self, out: torch.Tensor) -> None:
        super().__init__()
        self.out = out
        self.act = nn.Identity()

    def forward(self, x):
        return self.act(self.out)


def test_token_hooks_reduce_over_patch_tokens_and_keep_the_grid_index():
    # 1 class token + a 3 x 3 grid, 2 neurons, 1 image
    out = torch.full((1, 10, 2), -1.0)
    out[0, 0, 0] = 9.0          # the class token is the largest of neuron 0
    out[0, 1 + 5, 0] = 2.0      # ... its best patch token is grid index 5 = (row 1, column 2)
    out[0, 1 + 7, 1] = -0.5     # neuron 1: never positive on a patch token
    layer = Layer("t", "act", "act", "tokens", 1)
    model = _Tokens(out)
    hooks = MaxArgmaxHooks(model, [layer])
    excluded = hooks.run(model, torch.zeros(1))
    hooks.remove()
    assert excluded["t"][0].tolist() == [[2.0, 0.0]] and excluded["t"][1].tolist() == [[5, 0]]
    hooks = MaxArgmaxHooks(model, [layer], "include")
    included = hooks.run(model, torch.zeros(1))
    hooks.remove()
    assert included["t"][0].tolist() == [[9.0, 0.0]] and included["t"][1].tolist() == [[5, 0]]
    with pytest.raises(ValueError, match="no square grid"):
        MaxArgmaxHooks(model, [Layer("t", "act", "act", "tokens", 2)]).run(model, torch.zeros(1))


def test_channels_last_hooks_equal_the_channels_first_reduction():
    torch.manual_seed(0)
    nchw = torch.randn(2, 5, 4, 3)
    model = _Tokens(nchw.permute(0, 2, 3, 1))
    got = MaxArgmaxHooks(model, [Layer("m", "act", "act", "channels_last")]).run(model, torch.zeros(1))["m"]
    mx, am = nchw.flatten(2).max(dim=2)
    assert torch.equal(got[0], mx.clamp_min(0)) and torch.equal(got[1], am.masked_fill(mx <= 0, 0).int())


# ------------------------------------------------------------------------------ where a neuron looked

def test_token_argmax_maps_to_its_patch_box_by_hand():
    """ViT-B/16 at 224 px: 14 x 14 patches of 16 px. Token 30 of the grid is row 2, column 2:
    its patch covers pixels 32..47 in both axes; with 8 px of context the box is 24..55."""
    (geo,) = layer_geometry("vit_b_16", select_layers(meta_model("vit_b_16"), "vit_b_16",
                                                      ["encoder-layers-encoder_layer_3-mlp-1"]), 224)
    assert (geo.height, geo.width, geo.rf, geo.jump, geo.start, geo.kind) == (14, 14, 32, 16, 7.5, "tokens")
    r, c = divmod(30, geo.width)
    top, left, bottom, right = receptive_field_box(r, c, geo.rf, geo.jump, geo.start)
    assert (int(top), int(left), int(bottom), int(right)) == (24, 24, 56, 56)
    # the last token (row 13, column 13): patch 208..223, box 200..231 (8 px beyond the image)
    top, left, bottom, right = receptive_field_box(13, 13, geo.rf, geo.jump, geo.start)
    assert (int(top), int(bottom)) == (200, 232)
    # 14 px patches (e.g. DINOv2 at 518 px: a 37 x 37 grid): 7 px of context
    odd = token_geometry(Layer("x", "x", "x", "tokens", 1), 8, 37, 518)
    assert (odd.rf, odd.jump) == (28, 14)
    assert int(receptive_field_box(1, 1, odd.rf, odd.jump, odd.start)[0]) == 14 - 7


def test_measured_fields_of_channels_last_and_squeeze_excitation_networks():
    # ConvNeXt-T: 4 x 4 stride-4 stem (rf 4, jump 4), then a 7 x 7 depthwise conv: 4 + 6 * 4 = 28
    convnext = layer_geometry("convnext_tiny", select_layers(meta_model("convnext_tiny"), "convnext_tiny",
                                                             ["features-0-0", "features-1-0-block-4"]), 64)
    assert [(g.rf, g.jump, g.kind, g.height) for g in convnext] == [(4, 4, "conv", 16), (28, 4, "channels_last", 16)]
    # EfficientNet-B0: 3 x 3 stride-2 stem (3), 3 x 3 depthwise (3 + 2 * 2 = 7); the SE gate in between
    # sees the whole image but is left out; the 1 x 1 projection keeps 7
    (eff,) = layer_geometry("efficientnet_b0", select_layers(meta_model("efficientnet_b0"), "efficientnet_b0",
                                                             ["features-1-0-block-2-0"]), 64)
    assert (eff.rf, eff.jump, eff.start) == (7, 2, 0.0)


# ------------------------------------------------------------------------------ weights

def test_weights_files_for_a_python_model(labnet_dir):
    from safetensors.torch import save_file

    from neurofacets.weights import resolve_weights

    torch.manual_seed(3)
    model = build_model(LABNET)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(labnet_dir / "lab.safetensors"))
    torch.save(state, labnet_dir / "lab.pth")
    for name in ("lab.safetensors", "lab.pth"):
        resolved = resolve_weights(name, LABNET)
        assert not resolved.partial and resolved.weights_id.startswith(f"file:{name} sha256:")
        rebuilt = build_model(LABNET, resolved.state_dict)
        assert torch.equal(rebuilt.head.weight, model.head.weight)
    save_file({"fc.weight": torch.zeros(2, 2)}, str(labnet_dir / "wrong.safetensors"))
    with pytest.raises(ValueError, match=r"does not fit python:labnet:make_labnet: unexpected keys \['fc.weight'\]"
                                         r".*has keys such as"):
        resolve_weights("wrong.safetensors", LABNET)
    (labnet_dir / "broken.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        resolve_weights("broken.safetensors", LABNET)
    with pytest.raises(ValueError, match="names torchvision weights, but python:labnet:make_labnet is no torchvision"):
        resolve_weights("torchvision:IMAGENET1K_V1", LABNET)


def test_timm_pretrained_from_the_local_hugging_face_cache(tmp_path, monkeypatch):
    pytest.importorskip("timm")
    import huggingface_hub.constants
    from safetensors.torch import save_file

    from neurofacets.weights import WeightsUnavailableError, resolve_weights

    arch = "timm:deit_tiny_patch16_224"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsUnavailableError, match=r"(?s)not on this machine.*huggingface-cli download.*"
                                                      r"\.safetensors file.*random:<seed>"):
        resolve_weights("timm:pretrained", arch)
    # the layout `huggingface-cli download timm/deit_tiny_patch16_224.fb_in1k` leaves
    import timm

    repo = timm.models.get_pretrained_cfg("deit_tiny_patch16_224").hf_hub_id
    folder = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text("0" * 40)
    snapshot = folder / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    torch.manual_seed(5)
    model = build_model(arch)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snapshot / "model.safetensors"))
    resolved = resolve_weights("timm:pretrained", arch)
    assert resolved.weights_id.startswith("timm:deit_tiny_patch16_224 file:model.safetensors sha256:")
    assert torch.equal(resolved.state_dict["head.weight"], model.head.weight)
    with pytest.raises(ValueError, match="names timm weights, but vgg16 is no timm model"):
        resolve_weights("timm:pretrained", "vgg16")


def test_model_sources_registry_is_the_one_way_in():
    from neurofacets.models import MODEL_SOURCES

    assert set(MODEL_SOURCES) == {"torchvision", "timm", "hf", "open_clip", "python"}
    assert model_source("torchvision:resnet18").arch == "resnet18"
    a = build_model("torchvision:resnet18", seed=1).conv1.weight
    assert torch.equal(a, build_model("resnet18", seed=1).conv1.weight)
    assert np.isfinite(a.detach().numpy()).all()
