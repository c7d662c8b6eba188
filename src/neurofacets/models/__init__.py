"""Models: one module per family behind one interface, and the seam every stage goes through.

- `base`: the interface a family implements (`ModelSource`);
- one module per family, each holding its ``SOURCE`` (the registry `FAMILY_MODULES`):
  `torchvision`, `timm`, `hf` (Hugging Face ``transformers``),
  `open_clip` and `python` (a lab's own factory);
- `selection`: ``model.layers`` matched against a network's layers (no torch);
- `network`: what the stages use, the same for every family: layers and their kinds,
  building with weights, the receptive-field geometry, ``layers.csv``.

Importing this package imports no torch (parsing the workflow reads ``model.arch`` with it);
the names of `network` (``build_model``, ``select_layers``, ...) are importable from
here and load torch when first used.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from . import hf, open_clip, python, timm, torchvision  # the families: one module each (and only here)
from .base import ModelSource

#: The family modules: those imported above, each with its ``SOURCE``.
FAMILY_MODULES = tuple(module for module in list(globals().values())
                       if isinstance(module, ModuleType) and isinstance(getattr(module, "SOURCE", None), type))
#: The model families, by the prefix of ``model.arch``.
MODEL_SOURCES: dict[str, type[ModelSource]] = {module.SOURCE.family: module.SOURCE for module in FAMILY_MODULES}


def model_source(arch: str) -> ModelSource:
    """The `ModelSource` of ``model.arch`` (any spelling `neurofacets.model_spec` reads)."""
    from ..model_spec import parse_model_spec

    spec = parse_model_spec(arch)
    return MODEL_SOURCES[spec.family](spec)


def __getattr__(name: str) -> Any:
    # the seam's names (build_model, select_layers, ...) without importing torch at import
    if name.startswith("__") or name == "network":  # asked by the import system itself
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import network

    try:
        return getattr(network, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
