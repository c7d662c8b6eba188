"""Hugging Face and OpenCLIP models through the real DAG, in ONE Snakemake call over a ``runs:`` config.

Random weights made here, 3 probe classes x 2 images, one MLP layer per network, one shard:

- ``hf-vit``: a tiny ``transformers`` ViT (24 px input, 8 px patches, 2 blocks) saved with
  ``save_pretrained`` beside its image processor (``size`` 24 x 24, mean = std = 0.5) to a local
  folder: ``model.arch: hf:<folder>``, ``model.weights: <folder>/model.safetensors``; its MLP
  neurons sit on ``layers.0.mlp.activation_fn`` (transformers 5: a ``GELUActivation``
  registered before the MLP's ``fc1``);
- ``clip-b32``: OpenCLIP's ViT-B-32 image tower, ``random:0``, its first block's ``mlp.gelu``.

Both run with the recipe left ``auto`` (their own preprocessing) to ``metrics/all_layers.csv``,
patches, ICA and a gallery page. Each one's stored maxima are checked against plain forward
hooks and ``torch.amax`` over the patch tokens, on inputs made by the family's own transform.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import three_class_workflow

from neurofacets.store import read_layer

pytestmark = pytest.mark.e2e

transformers = pytest.importorskip("transformers")
open_clip = pytest.importorskip("open_clip")

HF_LAYER = "layers-0-mlp-activation_fn"
CLIP_LAYER = "transformer-resblocks-0-mlp-gelu"
RUNS = {"hf-vit": HF_LAYER, "clip-b32": CLIP_LAYER}
MEAN_STD_HALF = [0.5, 0.5, 0.5]


def _tiny_vit(folder: Path) -> None:
    config = transformers.ViTConfig(image_size=24, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=2, intermediate_size=48)
    torch.manual_seed(3)
    transformers.ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    transformers.ViTImageProcessor(size={"height": 24, "width": 24}, image_mean=MEAN_STD_HALF,
                                   image_std=MEAN_STD_HALF).save_pretrained(folder)


@pytest.fixture(scope="module")
def hub_families(tmp_path_factory):
    workdir = three_class_workflow(tmp_path_factory.mktemp("hub"))
    _tiny_vit(workdir / "tiny-vit")
    auto = {"image_size": "auto", "resize": "auto"}  # over tests/configs/tiny.yaml's 32 px
    config = {
        "run": "hub",
        "dataset": {"format": "folder", "root": "probes3", "images_per_class": 2},
        "extraction": {"shards": 1, "batch_size": 6},
        "analysis": {"top_k": 3},
        "visualize": {"ica_components": 2, "ica_max_side": 8, "ica_max_iter": 50},
        "figures": {"format": ["png"], "gallery_patches": 1},
        "runs": [
            {"run": "hf-vit", "model": {"arch": "hf:tiny-vit", "weights": "tiny-vit/model.safetensors",
                                        "layers": "mlp"}, "extraction": auto},
            {"run": "clip-b32", "model": {"arch": "open_clip:ViT-B-32", "weights": "random:0",
                                          "layers": ["transformer.resblocks.0.mlp.*"]}, "extraction": auto},
        ],
    }
    (workdir / "hub.yaml").write_text(yaml.safe_dump(config))
    targets = []
    for run, layer in RUNS.items():
        targets += [f"results/{run}/metrics/all_layers.csv", f"results/{run}/patches/{layer}.zarr",
                    f"results/{run}/ica/{layer}.zarr", f"results/{run}/gallery/{layer}"]
    cmd = [sys.executable, "-m", "snakemake", *targets, "--cores", "2", "--configfile", "tests/configs/tiny.yaml",
           "hub.yaml"]
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=2400)
    assert result.returncode == 0, result.stderr[-6000:]
    return workdir


@pytest.mark.parametrize("run, layers, grid", [("hf-vit", [HF_LAYER, "layers-1-mlp-activation_fn"], 3),
                                               ("clip-b32", [CLIP_LAYER], 7)])
def test_hub_families_reach_metrics_patches_ica_and_gallery(hub_families, run, layers, grid):
    out = hub_families / "results" / run
    table = pd.read_csv(out / "model" / "layers.csv")
    assert table["layer"].tolist() == layers  # hf: model.layers mlp finds both blocks' GELUActivation
    assert (table["kind"] == "tokens").all() and (table["height"] == grid).all()
    metrics = pd.read_csv(out / "metrics" / "all_layers.csv")
    assert len(metrics) == int(table["channels"].sum()) and (metrics["n_counted"] > 0).any()
    layer = RUNS[run]
    assert (out / "patches" / f"{layer}.zarr").is_dir() and (out / "ica" / f"{layer}.zarr").is_dir()
    assert (out / "gallery" / layer / "index.html").stat().st_size > 0


def test_the_recipe_used_is_stored_and_summarised(hub_families):
    import zarr

    shard = zarr.open_group(str(hub_families / "results" / "hf-vit" / "activations" / "shard-000.zarr"), mode="r")
    assert shard.attrs["preprocessing"] == {"image_size": 24, "resize": [24, 24], "crop_offset": "floor",
                                            "interpolation": "bilinear", "mean": MEAN_STD_HALF, "std": MEAN_STD_HALF}
    shard = zarr.open_group(str(hub_families / "results" / "clip-b32" / "activations" / "shard-000.zarr"), mode="r")
    assert shard.attrs["preprocessing"]["interpolation"] == "bicubic"
    assert shard.attrs["preprocessing"]["mean"] == [0.48145466, 0.4578275, 0.40821073]


def _stored_versus_hooked(out: Path, layer: str, workdir: Path, model, module, transform, prefix: int) -> None:
    """The stored maxima of ``layer`` against a plain hook on ``module`` and torch.amax over the patch tokens."""
    from PIL import Image

    images = pd.read_csv(out / "dataset" / "images.csv")
    captured = []
    module.register_forward_hook(lambda m, i, o: captured.append(o))
    x = torch.stack([transform(Image.open(workdir / p).convert("RGB")) for p in images["path"]])
    with torch.no_grad():
        model(x)
    expected = torch.amax(captured[0][:, prefix:, :], dim=1).clamp_min(0).numpy()
    acts = read_layer([out / "activations" / "shard-000.zarr"], layer)
    assert acts.image_id.tolist() == images["image_id"].tolist()
    assert acts.max.shape == expected.shape
    np.testing.assert_allclose(acts.max, expected, rtol=1e-5, atol=1e-6)
    assert (expected > 0).mean() > 0.2  # live neurons: the comparison is not one of zeros


def test_hf_vit_mlp_maxima_equal_plain_hooks_and_amax(hub_families):
    """transformers' own loading and image processor (pil backend), a hook on the GELUActivation."""
    assert type(transformers.ViTModel(transformers.ViTConfig()).layers[0].mlp.activation_fn).__name__ == \
        "GELUActivation"
    folder = hub_families / "tiny-vit"
    model = transformers.ViTModel.from_pretrained(folder, add_pooling_layer=False).eval()
    processor = transformers.AutoImageProcessor.from_pretrained(folder, backend="pil")
    _stored_versus_hooked(hub_families / "results" / "hf-vit", HF_LAYER, hub_families, model,
                          model.layers[0].mlp.activation_fn,
                          lambda img: processor(img, return_tensors="pt")["pixel_values"][0], prefix=1)


def test_open_clip_mlp_maxima_equal_plain_hooks_and_amax(hub_families):
    """OpenCLIP's own model and preprocess, seeded as random:0; a hook on block 0's mlp.gelu."""
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    visual = model.visual.eval()
    _stored_versus_hooked(hub_families / "results" / "clip-b32", CLIP_LAYER, hub_families, visual,
                          visual.transformer.resblocks[0].mlp.gelu, preprocess, prefix=1)


def test_a_checkpoint_tensor_without_a_place_is_refused_not_dropped(tmp_path):
    """transformers renames the tensors of older layouts; a tensor it has no place for stops the
    run (a head's or a text tower's is left out, and counted)."""
    from safetensors.torch import load_file, save_file

    from neurofacets.weights import resolve_weights

    _tiny_vit(tmp_path / "vit")
    state = load_file(tmp_path / "vit" / "model.safetensors")
    reference = transformers.ViTModel.from_pretrained(tmp_path / "vit", add_pooling_layer=False)
    resolved = resolve_weights(str(tmp_path / "vit" / "model.safetensors"), f"hf:{tmp_path / 'vit'}")
    assert resolved.partial  # the pooler is not in the checkpoint
    for key, value in reference.state_dict().items():
        assert torch.equal(resolved.state_dict[key], value), key
    save_file({**state, "classifier.weight": torch.zeros(2, 32)}, str(tmp_path / "head.safetensors"))
    assert "classifier.weight" not in resolve_weights(str(tmp_path / "head.safetensors"),
                                                      f"hf:{tmp_path / 'vit'}").state_dict
    save_file({**state, "encoder.extra.weight": torch.zeros(2)}, str(tmp_path / "extra.safetensors"))
    with pytest.raises(ValueError, match="encoder.extra.weight"):
        resolve_weights(str(tmp_path / "extra.safetensors"), f"hf:{tmp_path / 'vit'}")


def test_issue_28_token_checks_apply_to_hf_and_open_clip(tmp_path):
    """The token layout found on the network (models.checks) agrees with the family's declared
    prefix: DINOv2 with 4 registers (1 + 4 tokens before the patches) and CLIP's class token."""
    from neurofacets.models import meta_model, model_source, select_layers
    from neurofacets.models.checks import token_prefixes

    config = transformers.Dinov2WithRegistersConfig(image_size=42, patch_size=14, hidden_size=32, num_hidden_layers=1,
                                                    num_attention_heads=2, mlp_ratio=2, num_register_tokens=4)
    transformers.Dinov2WithRegistersModel(config).save_pretrained(tmp_path / "dino")
    arch = f"hf:{tmp_path / 'dino'}"
    model = meta_model(arch)
    assert model_source(arch).prefix_tokens(model) == 5
    (layer,) = select_layers(model, arch, "mlp")
    assert layer.kind == "tokens" and layer.prefix_tokens == 5
    assert token_prefixes(arch, (layer.module,), 5) == {layer.module: 5}
    clip = "open_clip:ViT-B-32"
    layers = select_layers(meta_model(clip), clip, [CLIP_LAYER])
    assert [(layer.kind, layer.prefix_tokens) for layer in layers] == [("tokens", 1)]
