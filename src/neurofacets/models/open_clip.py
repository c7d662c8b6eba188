"""The OpenCLIP family: ``open_clip:<model>[:<pretrained tag>]``, the image tower of a CLIP model.

- **Build**: ``open_clip.create_model(<model>, pretrained=None)``'s ``visual`` (the image
  tower; the text tower is not kept), with the tag's ``quick_gelu``; needs the ``open_clip``
  extra.
- **Weights**: ``open_clip:pretrained``: the tag's checkpoint from the local Hugging Face
  cache (``open_clip_model.safetensors`` preferred, else ``open_clip_pytorch_model.bin``,
  ``weights_only=True``), its ``visual.`` tensors; or a checkpoint file (a whole CLIP's
  ``visual.*`` or the tower's own keys). Nothing is downloaded.
- **Layers**: each residual block's ``mlp.gelu`` (nn.GELU, or OpenCLIP's ``QuickGELU``) is
  a token layer; the class embedding precedes the patch tokens.
- **Preprocessing**: the tower's ``preprocess_cfg`` merged with the tag's pretrained
  configuration, as ``open_clip``'s ``preprocess`` uses it: ``size``, ``interpolation``,
  ``resize_mode`` (``shortest``: resize the shorter side to the size, centre crop;
  ``squash``: resize to the size), ``mean``, ``std``.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from ..pathlike import PathLike
from ..preprocessing import Recipe
from .base import ModelSource

if TYPE_CHECKING:
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*(:[A-Za-z0-9][A-Za-z0-9_.\-]*)?")
#: Checkpoint files of an OpenCLIP repository on the Hugging Face hub, in order of preference.
HF_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _open_clip():
    try:
        import open_clip
    except ImportError:
        raise ValueError("model.arch: open_clip: models need the open_clip_torch package: "
                         "pip install -e '.[open_clip]'") from None
    return open_clip


class OpenClipSource(ModelSource):
    """``open_clip:<model>[:<tag>]``: the image tower of an OpenCLIP model (module docstring)."""

    family = "open_clip"
    architecture_distribution = "open_clip_torch"
    arch_form = "open_clip:<model>[:<pretrained tag>] (an OpenCLIP image tower, e.g. open_clip:ViT-B-32:openai)"
    weights_forms = {"open_clip": "open_clip:pretrained (the weights of an open_clip: model's pretrained tag, "
                                  "from the local Hugging Face cache)"}
    weights_patterns = {"open_clip": r"pretrained"}
    activation_modules = ("open_clip.",)

    @classmethod
    def parse_name(cls, rest: str) -> str | None:
        return rest if _NAME.fullmatch(rest) else None

    @property
    def model_name(self) -> str:
        return self.spec.name.partition(":")[0]

    @property
    def tag(self) -> str:
        return self.spec.name.partition(":")[2]

    def pretrained_cfg(self) -> dict[str, Any]:
        """The tag's pretrained configuration (empty without a tag)."""
        open_clip = _open_clip()
        if not self.tag:
            return {}
        cfg = open_clip.get_pretrained_cfg(self.model_name, self.tag)
        if not cfg:
            raise ValueError(f"model.arch: open_clip has no pretrained tag {self.tag!r} for {self.model_name}; it has "
                             f"{open_clip.list_pretrained_tags_by_model(self.model_name)}")
        return dict(cfg)

    def factory(self) -> nn.Module:
        open_clip = _open_clip()
        if open_clip.get_model_config(self.model_name) is None:
            raise ValueError(f"model.arch: open_clip has no model {self.model_name!r}; see open_clip.list_models()")
        quick_gelu = bool(self.pretrained_cfg().get("quick_gelu", False))
        model = open_clip.create_model(self.model_name, pretrained=None, force_quick_gelu=quick_gelu)
        visual = model.visual
        visual.preprocess_cfg = open_clip.get_model_preprocess_cfg(model)
        return visual

    def prefix_tokens(self, model: nn.Module) -> int:
        import torch

        return int(isinstance(getattr(model, "class_embedding", None), torch.Tensor))

    def default_input_size(self, model: nn.Module) -> int:
        size = getattr(model, "image_size", 224)
        return int(size[0]) if isinstance(size, (tuple, list)) else int(size)

    def load_weights(self, kind: str, argument: str, cache_dir: PathLike) -> tuple[str, dict[str, torch.Tensor]]:
        from ..provenance import file_sha256
        from ..weights.sources import WeightsUnavailableError, alternatives, hub_cached, read_checkpoint

        repo = str(self.pretrained_cfg().get("hf_hub", "")).rstrip("/")
        path = hub_cached(repo, HF_FILES) if repo else None
        if path is None:
            raise WeightsUnavailableError(
                f"open_clip:pretrained for {self.spec.name}: "
                + (f"the Hugging Face cache holds none of {list(HF_FILES)} of {repo}" if repo else
                   "no pretrained tag in model.arch (open_clip:<model>:<tag>), or the tag has no Hugging Face copy")
                + f"; nothing is downloaded (huggingface-cli download {repo or '<repo>'}).\n{alternatives(self.arch)}")
        logger.info("open_clip:pretrained %s: %s", self.spec.name, path)
        return f"open_clip:{self.spec.name} file:{path.name} sha256:{file_sha256(path)[:16]}", read_checkpoint(path)

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not any(key.startswith("visual.") for key in state):
            return state
        tower = {key[len("visual."):]: value for key, value in state.items() if key.startswith("visual.")}
        logger.info("open_clip:%s: %d tensors of the image tower read, %d of the rest of the CLIP model left out",
                    self.spec.name, len(tower), len(state) - len(tower))
        return tower

    def preprocessing(self, weights: str) -> Recipe:
        cfg = dict(self.build("meta").preprocess_cfg)
        pretrained = self.pretrained_cfg()
        for key in ("mean", "std", "interpolation", "resize_mode"):
            if key in pretrained:
                cfg[key] = pretrained[key]
        origin = f"open_clip {self.spec.name} preprocess_cfg"
        size = cfg["size"]
        height, width = (size, size) if isinstance(size, int) else size
        if height != width:
            raise ValueError(f"{origin}: size {size} is not square; set extraction.image_size and resize explicitly")
        mode = cfg.get("resize_mode", "shortest")
        if mode == "shortest":
            resize: int | tuple[int, int] = int(height)
        elif mode == "squash":
            resize = (int(height), int(width))
        else:
            raise ValueError(f"{origin}: resize_mode {mode!r} (resize the longer side, pad) has no equivalent here; "
                             "set extraction.resize and image_size explicitly")
        return Recipe(int(height), resize, cfg.get("interpolation", "bicubic"), cfg["mean"], cfg["std"], "round",
                      origin)


SOURCE = OpenClipSource
