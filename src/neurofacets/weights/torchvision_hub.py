"""torchvision's own weights through its own loader, made safe.

``torch.hub``'s defaults (``weights_only=False, check_hash=False``) would let a pickle planted
in ``$TORCH_HOME/hub/checkpoints`` run code and a damaged download through: a cached file is
checked against the SHA-256 prefix its name carries, and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision

from ..pathlike import PathLike
from ..provenance import file_sha256
from .sources import WeightsIntegrityError, WeightsUnavailableError, alternatives

logger = logging.getLogger(__name__)


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


def _torchvision_unavailable(enum: str, arch: str, url: str, e: BaseException) -> WeightsUnavailableError:
    # URLError (no network) is an OSError; a truncated cache file a RuntimeError/EOFError
    return WeightsUnavailableError(
        f"torchvision:{enum} weights for {arch} ({url}) are unavailable: "
        f"{type(e).__name__}: {e}\nWith no internet access, put the file "
        f"{Path(url).name} into {torch.hub.get_dir()}/checkpoints, or use another "
        f"source.\n{alternatives(arch)}"
    )
