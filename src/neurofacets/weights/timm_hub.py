"""timm's pretrained weights from the local caches, without running code or reaching a network.

``model.weights: timm:pretrained`` takes the checkpoint timm's pretrained configuration names
for ``model.arch: timm:<name>[.<tag>]``, looked up only on this machine:

1. the Hugging Face cache (``$HF_HOME/hub``, as ``huggingface-cli download timm/<model>``
   leaves it): ``model.safetensors`` (read by ``safetensors``: tensors only, no code), else
   ``pytorch_model.bin`` (``torch.load(weights_only=True)``);
2. the torch hub cache (``$TORCH_HOME/hub/checkpoints/<file of the configured URL>``),
   ``weights_only=True``, hash prefix checked as for torchvision.

Nothing is downloaded: when neither cache holds it, the error names every way to provide the
weights (a ``.safetensors`` / ``.pth`` file made elsewhere with ``model.state_dict()``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse

import torch

from ..provenance import file_sha256
from .sources import WeightsUnavailableError, alternatives
from .torchvision_hub import check_hash_prefix

logger = logging.getLogger(__name__)

#: Checkpoint files of a timm repository on the Hugging Face hub, in order of preference.
HF_FILES = ("model.safetensors", "pytorch_model.bin")


def _hf_cached(repo_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in HF_FILES:
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` file (tensors only) or a torch file (weights_only)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    return dict(loaded)


def timm_state_dict(name: str, arch: str) -> tuple[str, dict[str, torch.Tensor]]:
    """The pretrained weights timm names for model ``name`` (``<model>[.<tag>]``), from the caches.

    Returns ``(weights_id, state_dict)``; ``weights_id`` names the file and its SHA-256/16.

    Raises
    ------
    WeightsUnavailableError
        When no cache holds them (the message lists every other way), or timm has no pretrained
        weights for ``name``.
    """
    import timm

    model_name, _, tag = name.partition(".")
    try:
        cfg = timm.models.get_pretrained_cfg(name if tag else model_name)
    except RuntimeError:
        cfg = None
    if cfg is None:
        raise WeightsUnavailableError(f"timm has no pretrained weights for {name!r}.\n{alternatives(arch)}")
    looked = []
    path = None
    hf_hub_id = getattr(cfg, "hf_hub_id", None)
    if hf_hub_id:
        path = _hf_cached(hf_hub_id)
        looked.append(f"the Hugging Face cache for {hf_hub_id} ({', '.join(HF_FILES)})")
    url = getattr(cfg, "url", None)
    if path is None and url:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name
        looked.append(str(cached))
        if cached.exists():
            check_hash_prefix(cached)
            path = cached
    if path is None:
        raise WeightsUnavailableError(
            f"timm:pretrained weights for {name} are not on this machine (looked in {'; '.join(looked) or 'nothing'}); "
            f"nothing is downloaded. Fetch them where a network is reachable (huggingface-cli download "
            f"{hf_hub_id or 'timm/' + name}), or save model.state_dict() to a .safetensors file.\n{alternatives(arch)}"
        )
    state = read_checkpoint(path)
    logger.info("timm:pretrained %s: %s", name, path)
    return f"timm:{name} file:{path.name} sha256:{file_sha256(path)[:16]}", state
