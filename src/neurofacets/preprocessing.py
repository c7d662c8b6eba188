"""The input recipe: how an image becomes the tensor a network receives.

Each model family states the recipe its weights were trained with, from their own metadata
(`neurofacets.models.base.ModelSource.preprocessing`), in the project's own terms:

``resize``
    an integer: the shorter side is resized to it, the aspect ratio kept (torchvision's
    ``Resize(int)``); two integers ``[height, width]``: the image is resized to exactly that
    (``Resize((h, w))``, Hugging Face's ``size: {height, width}``);
``image_size``
    the side of the centre crop then taken;
``crop_offset``
    how the crop's offset is rounded when the margin is odd: ``round`` (torchvision's
    ``CenterCrop``: ``round(margin / 2)``, half to even) or ``floor`` (Hugging Face's);
``interpolation``
    the PIL filter of the resize: ``bilinear`` or ``bicubic`` (antialiased, as PIL does);
``mean``, ``std``
    per channel: the network receives ``(x / 255 - mean) / std`` in float32, operation for
    operation as torchvision's ``ToTensor()`` + ``Normalize(mean, std)``.

``extraction.image_size``, ``resize``, ``interpolation``, ``mean``, ``std`` and
``crop_offset`` default to ``auto``: the model's recipe. An explicit value overrides the
recipe's, and the extraction log says both (`recipe_report`). This module imports
nothing heavy: the workflow resolves the recipe when it is parsed.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

#: ImageNet's channel statistics (torchvision's, timm's ``IMAGENET_DEFAULT_*``).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTERPOLATIONS = ("bilinear", "bicubic")
CROP_OFFSETS = ("round", "floor")
#: The ``extraction`` keys of the recipe, in the order of `Recipe.label`.
RECIPE_KEYS = ("image_size", "resize", "crop_offset", "interpolation", "mean", "std")
AUTO = "auto"


@dataclass(frozen=True)
class Recipe:
    """The preprocessing of one network (module docstring); ``origin`` says where it came from."""

    image_size: int
    resize: int | tuple[int, int]
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    crop_offset: str = "round"
    origin: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        resize = self.resize
        if isinstance(resize, Sequence) and not isinstance(resize, str):
            if len(resize) != 2:
                raise ValueError(f"resize: {list(resize)} is neither one side nor [height, width]")
            resize = (int(resize[0]), int(resize[1]))
        else:
            resize = int(resize)
        object.__setattr__(self, "resize", resize)
        object.__setattr__(self, "image_size", int(self.image_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation: {self.interpolation!r} is not one of {list(INTERPOLATIONS)}")
        if self.crop_offset not in CROP_OFFSETS:
            raise ValueError(f"crop_offset: {self.crop_offset!r} is not one of {list(CROP_OFFSETS)}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean {self.mean} / std {self.std}: three values each, std positive")

    def as_config(self) -> dict[str, Any]:
        """The recipe as ``extraction`` keys (lists, as YAML and JSON write them)."""
        return {"image_size": self.image_size,
                "resize": list(self.resize) if isinstance(self.resize, tuple) else self.resize,
                "crop_offset": self.crop_offset, "interpolation": self.interpolation,
                "mean": list(self.mean), "std": list(self.std)}

    def label(self) -> str:
        """One line: ``resize 256, crop 224 (round), bilinear, mean 0.485,0.456,0.406, std 0.229,0.224,0.225``."""
        resize = "x".join(map(str, self.resize)) if isinstance(self.resize, tuple) else str(self.resize)
        return (f"resize {resize}, crop {self.image_size} ({self.crop_offset}), {self.interpolation}, "
                f"mean {','.join(f'{v:g}' for v in self.mean)}, std {','.join(f'{v:g}' for v in self.std)}")


def imagenet_recipe(origin: str) -> Recipe:
    """ImageNet's usual recipe: resize 256, crop 224, bilinear, ImageNet statistics."""
    return Recipe(224, 256, origin=origin)


def recipe_from_config(extraction: Mapping[str, Any], origin: str = "extraction") -> Recipe:
    """The recipe of a resolved ``extraction`` section (no ``auto`` left)."""
    left = [key for key in RECIPE_KEYS if extraction[key] == AUTO]
    if left:
        raise ValueError(f"extraction: {left} are still auto: resolve them with resolve_preprocessing(config)")
    return Recipe(extraction["image_size"], extraction["resize"], extraction["interpolation"], extraction["mean"],
                  extraction["std"], extraction["crop_offset"], origin)


def model_recipe(arch: str, weights: str) -> Recipe:
    """The recipe the weights ``weights`` of ``arch`` expect (the family's
    `preprocessing`)."""
    from .models import model_source

    return model_source(arch).preprocessing(weights)


def recipe_report(config: Mapping[str, Any]) -> list[str]:
    """What the log says of a run's recipe: the model's own (and where it comes from), then one
    line per key the config overrides, naming both values. ``config``: resolved or not."""
    arch, weights = config["model"]["arch"], config["model"]["weights"]
    own = model_recipe(arch, weights)
    lines = [f"{arch} with {weights}: the model's recipe is {own.label()} ({own.origin})"]
    values = own.as_config()
    for key in RECIPE_KEYS:
        value = config["extraction"][key]
        if value != AUTO and not _same(value, values[key]):
            lines.append(f"extraction.{key}: {value} set in the config, the model's recipe says {values[key]}")
    return lines


def resolve_preprocessing(config: MutableMapping[str, Any]) -> Recipe:
    """Replace every ``auto`` of the recipe keys in ``config["extraction"]`` by the model's recipe.

    An explicit value wins (the extraction log names it and the model's value:
    `recipe_report`). Idempotent: a resolved section is returned as it is (its origin
    then reads ``extraction``).

    Returns
    -------
    Recipe
        The recipe the run uses.
    """
    ex = config["extraction"]
    if all(ex[key] != AUTO for key in RECIPE_KEYS):
        return recipe_from_config(ex)
    own = model_recipe(config["model"]["arch"], config["model"]["weights"])
    values = own.as_config()
    values.update({key: ex[key] for key in RECIPE_KEYS if ex[key] != AUTO})
    recipe = replace(Recipe(**values), origin=own.origin)
    ex.update(recipe.as_config())
    return recipe


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b
