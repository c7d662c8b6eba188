"""The python family: ``python:<module>:<function>``, a lab's own ``nn.Module`` factory.

- **Build**: ``<module>`` is imported with the working directory (the folder Snakemake runs
  in) first on ``sys.path`` for the import only, ``sys.path`` restored afterwards, else from
  ``PYTHONPATH``; ``<function>()`` is called with no argument and must return an
  ``nn.Module`` that takes (B, 3, S, S) images.
- **Weights**: a checkpoint file or ``random:<seed>`` (no source of its own).
- **Tokens**: a network of tokens says how many class / register tokens precede its patch
  tokens by an attribute ``num_prefix_tokens`` (default: 1 when it has a ``cls_token`` /
  ``class_token`` tensor, else 0).
- **Preprocessing**: the recipe the module declares, a module-level dict ``PREPROCESSING``
  with the keys of `neurofacets.preprocessing.Recipe` (``image_size``, ``resize``,
  optionally ``interpolation``, ``mean``, ``std``, ``crop_offset``), else ImageNet's.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING

from ..preprocessing import Recipe, imagenet_recipe
from .base import ModelSource

if TYPE_CHECKING:
    from torch import nn

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_NAME = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*:{_IDENTIFIER}")
#: The module-level dict in which a user's module states its network's recipe.
RECIPE_ATTRIBUTE = "PREPROCESSING"


@contextlib.contextmanager
def _working_directory_importable() -> Iterator[str]:
    """The working directory first on ``sys.path`` for the duration, ``sys.path`` as it was afterwards."""
    cwd = os.getcwd()
    before = list(sys.path)
    sys.path.insert(0, cwd)
    try:
        yield cwd
    finally:
        sys.path[:] = before


class PythonSource(ModelSource):
    """``python:<module>:<function>``: a user's factory of an ``nn.Module`` (module docstring)."""

    family = "python"
    arch_form = "python:<module>:<function> (your own nn.Module factory, e.g. python:labnets:make_net)"

    @classmethod
    def parse_name(cls, rest: str) -> str | None:
        return rest if _NAME.fullmatch(rest) else None

    def module(self) -> ModuleType:
        """The user's module (imported once per process, as Python does)."""
        module_name = self.spec.name.partition(":")[0]
        with _working_directory_importable() as cwd:
            try:
                return importlib.import_module(module_name)
            except ImportError as error:
                raise ValueError(
                    f"model.arch: python:{self.spec.name}: cannot import {module_name!r} ({error}); put "
                    f"{module_name.replace('.', '/')}.py in the directory Snakemake runs in ({cwd}) or on PYTHONPATH"
                ) from None

    def factory(self) -> nn.Module:
        from torch import nn

        module_name, _, function = self.spec.name.partition(":")
        module = self.module()
        factory = getattr(module, function, None)
        if not callable(factory):
            found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise ValueError(f"model.arch: python:{self.spec.name}: {module_name} has no function {function!r}; "
                             f"it has {found[:20]}")
        try:
            model = factory()
        except Exception as error:
            raise RuntimeError(f"model.arch: python:{self.spec.name}: {function}() failed: "
                               f"{type(error).__name__}: {error}") from error
        if not isinstance(model, nn.Module):
            raise TypeError(f"model.arch: python:{self.spec.name}: {function}() returned a "
                            f"{type(model).__name__}, not a torch.nn.Module")
        return model

    def preprocessing(self, weights: str) -> Recipe:
        declared = getattr(self.module(), RECIPE_ATTRIBUTE, None)
        if declared is None:
            return imagenet_recipe(f"ImageNet's ({self.spec.name.partition(':')[0]} declares no {RECIPE_ATTRIBUTE})")
        origin = f"{self.spec.name.partition(':')[0]}.{RECIPE_ATTRIBUTE}"
        try:
            return Recipe(**dict(declared), origin=origin)
        except (TypeError, ValueError) as error:
            raise ValueError(f"model.arch: python:{self.spec.name}: {origin} is not a recipe ({error}); it takes "
                             "image_size, resize, interpolation, mean, std, crop_offset") from None


SOURCE = PythonSource
