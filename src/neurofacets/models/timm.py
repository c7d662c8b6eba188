"""The timm family: ``timm:<name>[.<pretrained tag>]``, any model ``timm.list_models()`` knows.

- **Build**: ``timm.create_model(name, pretrained=False)``; needs the ``timm`` extra.
- **Weights**: ``timm:pretrained``, the checkpoint timm's pretrained configuration names,
  looked up only on this machine: the Hugging Face cache (``$HF_HOME/hub``, as
  ``huggingface-cli download timm/<model>`` leaves it), ``model.safetensors`` (tensors only)
  before ``pytorch_model.bin`` (``weights_only=True``); else the torch hub cache
  (``$TORCH_HOME/hub/checkpoints/<file of the configured URL>``, hash prefix checked).
  Nothing is downloaded.
- **Layers**: timm's activation layers (``timm.layers.activations``) are MLP activations;
  its squeeze-excitation and kin are channel gates.
- **Preprocessing**: the pretrained configuration of the name (its tag, else the default
  tag), as ``timm.data.resolve_data_config`` reads it: ``input_size``, ``crop_pct``
  (resize = floor(size / crop_pct), timm's eval transform), ``crop_mode`` (``center``;
  ``squash``: resize to size / crop_pct square; ``border`` is refused), ``interpolation``,
  ``mean``, ``std``. The same for ``random:<seed>`` and a checkpoint file.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from ..pathlike import PathLike
from ..preprocessing import Recipe
from .base import GATE_CLASSES, ModelSource

if TYPE_CHECKING:
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")


def _timm():
    try:
        import timm
    except ImportError:
        raise ValueError("model.arch: timm models need the timm package: pip install -e '.[timm]' "
                         "(or pip install 'timm>=1.0' safetensors)") from None
    return timm


class TimmSource(ModelSource):
    """``timm:<name>``: any model ``timm.list_models()`` knows (a pretrained tag allowed)."""

    family = "timm"
    architecture_distribution = "timm"
    arch_form = "timm:<model name>[.<tag>] (e.g. timm:deit_tiny_patch16_224; pip install -e '.[timm]')"
    weights_forms = {"timm": "timm:pretrained (a timm model's pretrained weights from the local Hugging Face "
                             "cache, filled by huggingface-cli download timm/<model>, or the torch hub cache)"}
    weights_patterns = {"timm": r"pretrained"}
    gate_classes = (*GATE_CLASSES, "SqueezeExcit", "SEModule", "SELayer", "EffectiveSE", "EcaModule", "CecaModule")
    activation_modules = ("timm.layers.activations",)

    @classmethod
    def parse_name(cls, rest: str) -> str | None:
        return rest if _NAME.fullmatch(rest) else None

    def factory(self) -> nn.Module:
        import difflib

        timm = _timm()
        name = self.spec.name
        base = name.partition(".")[0]
        if not timm.is_model(base):
            close = difflib.get_close_matches(base, timm.list_models(), 3)
            raise ValueError(
                f"model.arch: timm {timm.__version__} has no model {base!r}"
                f"{' (close: ' + ', '.join(close) + ')' if close else ''}; see timm.list_models('*pattern*')"
            )
        return timm.create_model(name, pretrained=False)

    def default_input_size(self, model: nn.Module) -> int:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        size = cfg.get("input_size")
        return int(size[-1]) if size else 224

    def load_weights(self, kind: str, argument: str, cache_dir: PathLike) -> tuple[str, dict[str, torch.Tensor]]:
        return timm_state_dict(self.spec.name, self.arch)

    def preprocessing(self, weights: str) -> Recipe:
        return recipe_from_data_config(data_config(self.spec.name), f"timm pretrained_cfg of {self.spec.name}")


SOURCE = TimmSource


def _pretrained_cfg(name: str) -> Any:
    """timm's pretrained configuration of ``<model>[.<tag>]`` (the default tag's without one), or None."""
    timm = _timm()
    model_name, _, tag = name.partition(".")
    try:
        return timm.models.get_pretrained_cfg(name if tag else model_name)
    except RuntimeError:
        return None


def data_config(name: str) -> dict[str, Any]:
    """``timm.data.resolve_data_config`` of the pretrained configuration of ``name`` (no model built)."""
    from timm.data import resolve_data_config

    cfg = _pretrained_cfg(name)
    if cfg is None:  # no pretrained configuration: timm's defaults (ImageNet)
        return resolve_data_config({})
    return resolve_data_config({}, pretrained_cfg=cfg.to_dict())


def recipe_from_data_config(data: dict[str, Any], origin: str) -> Recipe:
    """timm's evaluation transform (``transforms_imagenet_eval``) of a data config, as a `Recipe`."""
    _, height, width = data["input_size"]
    if height != width:
        raise ValueError(f"{origin}: input_size {height} x {width} is not square; set extraction.image_size and "
                         "extraction.resize explicitly")
    crop_pct = data.get("crop_pct") or 0.875
    mode = data.get("crop_mode") or "center"
    scale = math.floor(height / crop_pct)
    if mode == "center":
        resize: int | tuple[int, int] = scale
    elif mode == "squash":
        resize = (scale, scale)
    else:
        raise ValueError(f"{origin}: crop_mode {mode!r} (resize keeping the ratio, then pad) has no equivalent "
                         "here; set extraction.resize and extraction.image_size explicitly")
    interpolation = data.get("interpolation") or "bilinear"
    if interpolation not in ("bilinear", "bicubic"):
        raise ValueError(f"{origin}: interpolation {interpolation!r} is not bilinear or bicubic; set "
                         "extraction.interpolation explicitly")
    return Recipe(height, resize, interpolation, data["mean"], data["std"], "round", origin)


#: Checkpoint files of a timm repository on the Hugging Face hub, in order of preference.
HF_FILES = ("model.safetensors", "pytorch_model.bin")


def timm_state_dict(name: str, arch: str) -> tuple[str, dict[str, torch.Tensor]]:
    """The pretrained weights timm names for model ``name`` (``<model>[.<tag>]``), from the caches.

    Returns ``(weights_id, state_dict)``; ``weights_id`` names the file and its SHA-256/16.

    Raises
    ------
    WeightsUnavailableError
        When no cache holds them (the message lists every other way), or timm has no pretrained
        weights for ``name``.
    """
    import torch

    from ..provenance import file_sha256
    from ..weights.sources import (
        WeightsUnavailableError,
        alternatives,
        check_hash_prefix,
        hub_cached,
        read_checkpoint,
    )

    cfg = _pretrained_cfg(name)
    if cfg is None:
        raise WeightsUnavailableError(f"timm has no pretrained weights for {name!r}.\n{alternatives(arch)}")
    looked = []
    path = None
    hf_hub_id = getattr(cfg, "hf_hub_id", None)
    if hf_hub_id:
        path = hub_cached(hf_hub_id, HF_FILES)
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
