"""How far the former fixed recipe moves a timm augreg ViT's per-neuron maxima (issue 26).

Before issue 26 every network got VGG16's recipe (ImageNet mean/std, bilinear resize 256,
crop 224); an augreg ViT's own recipe is timm's (mean = std = 0.5, bicubic, crop_pct 0.9).
This feeds the same real photos through both, with plain timm and torch (no project code),
and compares each MLP neuron's maximum over the patch tokens (rectified, as the pipeline
stores it) and its best image. Random weights (seed 0): pretrained ones cannot be fetched
here. ``python benchmarks/recipe_effect.py [--images 12]``; numbers in docs/changelog.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import timm
import torch
from PIL import Image
from torchvision import transforms as T

ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-sample"
NAME = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"
FORMER = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


def maxima(model: torch.nn.Module, batch: torch.Tensor, block: int) -> np.ndarray:
    """(images, neurons): each MLP neuron's rectified maximum over the patch tokens."""
    seen = {}
    handle = model.blocks[block].mlp.act.register_forward_hook(lambda m, i, o: seen.setdefault("x", o))
    with torch.no_grad():
        model(batch)
    handle.remove()
    return torch.amax(seen["x"][:, 1:].clamp(min=0), dim=1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = timm.create_model(NAME, pretrained=False).eval()
    config = timm.data.resolve_model_data_config(model)
    own = timm.data.create_transform(**config)
    paths = pd.read_csv(ROOT / "images.csv")["path"].tolist()[: args.images]
    images = [Image.open(ROOT / p).convert("RGB") for p in paths]
    print(f"{NAME}, random weights (seed 0), {len(images)} ImageNet photos; own recipe:",
          {k: config[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct")})
    for block in (0, 5, 11):
        a = maxima(model, torch.stack([own(im) for im in images]), block)
        b = maxima(model, torch.stack([FORMER(im) for im in images]), block)
        live = np.abs(a) > 1e-6
        relative = np.abs(a - b)[live] / np.abs(a)[live]
        same_best = np.mean(a.argmax(axis=0) == b.argmax(axis=0))
        print(f"blocks.{block}.mlp.act: |former - own| / own, median {np.median(relative):.3f}, "
              f"90th percentile {np.quantile(relative, 0.9):.3f}; best image the same for "
              f"{same_best:.1%} of {a.shape[1]} neurons (chance {1 / len(images):.1%})")


if __name__ == "__main__":
    main()
