"""``model.arch``: which model family builds the network, read without importing torch.

``<family>:<name>``, the family one of the modules of `neurofacets.models` (each says
its spelling, `arch_form`); a name without a
prefix belongs to the one family that takes plain names. The canonical form of such a model
is the plain name (one model, one prepared weights file).

This module imports nothing heavy: the workflow parses ``model.arch`` with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def _sources() -> dict:
    from .models import MODEL_SOURCES

    return MODEL_SOURCES


def arch_forms() -> tuple[str, ...]:
    """Every spelling of ``model.arch``, one text per family."""
    return tuple(source.arch_form for source in _sources().values())


@dataclass(frozen=True)
class ModelSpec:
    """A parsed ``model.arch``.

    Attributes
    ----------
    family
        The family's prefix (a key of `neurofacets.models.MODEL_SOURCES`).
    name
        The model's name within its family.
    """

    family: str
    name: str

    @property
    def plain(self) -> bool:
        """Whether the family writes its models without prefix."""
        return _sources()[self.family].plain_names

    @property
    def canonical(self) -> str:
        """The plain name for the family that takes plain names, else ``family:name``."""
        return self.name if self.plain else f"{self.family}:{self.name}"

    @property
    def file_token(self) -> str:
        """The canonical form as a file-name part: the plain name, else ``<family>-<name>``
        with every character outside ``[A-Za-z0-9_.-]`` as ``-`` (no plain name holds a ``-``)."""
        if self.plain:
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
    sources = _sources()
    family, sep, rest = arch.partition(":")
    if sep and family in sources:
        name = sources[family].parse_name(rest)
        if name is not None:
            return ModelSpec(family, name)
    elif not sep:
        for source in sources.values():
            if source.plain_names and (name := source.parse_name(arch)) is not None:
                return ModelSpec(source.family, name)
    raise ValueError(f"model.arch: {arch!r} is not a model; use one of: " + "; ".join(arch_forms()))


def canonical_arch(arch: str) -> str:
    """``model.arch`` in its canonical form (``<plain family>:<name>`` -> ``<name>``)."""
    return parse_model_spec(arch).canonical
