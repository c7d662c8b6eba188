"""``model.arch``: which model family builds the network, read without importing torch.

Three families (:mod:`neurofacets.models` holds the sources that build them):

``<name>`` or ``torchvision:<name>``
    A torchvision classification model (``vgg16``, ``resnet18``, ``vit_b_16``, ...). The plain
    name is the canonical form: ``torchvision:vgg16`` and ``vgg16`` are one model, one
    prepared weights file.
``timm:<name>``
    Any model ``timm.list_models()`` knows (``timm:deit_tiny_patch16_224``), optionally with a
    pretrained tag (``timm:vit_tiny_patch16_224.augreg_in21k``); needs the ``timm`` extra.
``python:<module>:<function>``
    A user's own ``nn.Module`` factory: ``<module>`` importable from the working directory or
    ``PYTHONPATH`` (dotted), ``<function>`` called with no argument.

This module imports nothing heavy: the workflow parses ``model.arch`` with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FAMILIES = ("torchvision", "timm", "python")

ARCH_FORMS = (
    "<name> or torchvision:<name> (a torchvision classification model, e.g. vgg16, vit_b_16)",
    "timm:<model name> (e.g. timm:deit_tiny_patch16_224; pip install -e '.[timm]')",
    "python:<module>:<function> (your own nn.Module factory, e.g. python:labnets:make_net)",
)

_TORCHVISION = re.compile(r"[a-z][a-z0-9_]*")
_TIMM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*")
_FUNCTION = re.compile(_IDENTIFIER)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``model.arch``.

    Attributes
    ----------
    family
        ``torchvision``, ``timm`` or ``python``.
    name
        The model name (torchvision, timm) or ``<module>:<function>`` (python).
    """

    family: str
    name: str

    @property
    def canonical(self) -> str:
        """``vgg16`` for torchvision (as written before families existed), else ``family:name``."""
        return self.name if self.family == "torchvision" else f"{self.family}:{self.name}"

    @property
    def file_token(self) -> str:
        """The canonical form as a file-name part: ``vgg16``, ``timm-deit_tiny_patch16_224``,
        ``python-labnets-make_net`` (no torchvision name holds a ``-``, so none collides)."""
        if self.family == "torchvision":
            return self.name
        return re.sub(r"[^A-Za-z0-9_.-]", "-", f"{self.family}-{self.name.replace(':', '-')}")


def parse_model_spec(arch: str) -> ModelSpec:
    """Split ``model.arch`` into its family and name.

    Raises
    ------
    ValueError
        Naming the accepted forms.
    """
    if not isinstance(arch, str):
        raise ValueError(f"model.arch must be a string, got {type(arch).__name__}")
    family, sep, rest = arch.partition(":")
    if not sep:
        if _TORCHVISION.fullmatch(arch):
            return ModelSpec("torchvision", arch)
    elif family == "torchvision" and _TORCHVISION.fullmatch(rest):
        return ModelSpec("torchvision", rest)
    elif family == "timm" and _TIMM.fullmatch(rest):
        return ModelSpec("timm", rest)
    elif family == "python":
        module, sep2, function = rest.partition(":")
        if sep2 and _MODULE.fullmatch(module) and _FUNCTION.fullmatch(function):
            return ModelSpec("python", rest)
    raise ValueError(f"model.arch: {arch!r} is not a model; use one of: " + "; ".join(ARCH_FORMS))


def canonical_arch(arch: str) -> str:
    """``model.arch`` in its canonical form (``torchvision:vgg16`` -> ``vgg16``)."""
    return parse_model_spec(arch).canonical
