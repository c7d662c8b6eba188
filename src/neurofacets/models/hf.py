"""The Hugging Face family: ``hf:<repo id or local folder>``, vision models of ``transformers``.

ViT, DeiT, DINOv2 (with or without registers), ConvNeXt, and the vision tower of CLIP; any
model ``transformers.AutoModel`` builds from a ``config.json`` whose forward takes
``pixel_values`` first.

- **Where**: a local folder (``save_pretrained``'s: ``config.json``, weights,
  ``preprocessor_config.json``), or a repository id looked up in the local Hugging Face cache
  (``$HF_HOME/hub``, filled by ``huggingface-cli download <repo id>``). Nothing is downloaded.
- **Build**: ``AutoModel.from_config`` of the folder's ``config.json`` (a CLIP config: its
  ``CLIPVisionModel``), the base model without its head; needs the ``hf`` extra.
- **Weights**: ``hf:pretrained``: the folder's ``model.safetensors`` (preferred: tensors
  only), else ``pytorch_model.bin`` (``weights_only=True``); or any file as
  ``model.weights: <folder>/model.safetensors``. The checkpoint is read into the base model
  by transformers' own ``from_pretrained`` (its renamings of older layouts included); of a
  model with a head or of a whole CLIP, the head's and the text tower's tensors are left out,
  and the log names how many; any other tensor without a place is refused.
- **Layers**: the activations of ``transformers.activations`` (``GELUActivation``,
  ``QuickGELUActivation``, ...) are MLP activations, also where the MLP registers its
  activation before its linear layers (CLIP's ``mlp.activation_fn``).
- **Tokens**: class token, distillation token (DeiT) and register tokens (DINOv2 with
  registers) precede the patch tokens.
- **Preprocessing**: the folder's ``preprocessor_config.json`` as the image processor reads it
  (``size`` as ``height``/``width`` = resize to exactly that, or ``shortest_edge``;
  ``crop_pct`` (ConvNeXt); ``do_center_crop``/``crop_size``, offsets rounded down;
  ``resample``; ``image_mean``/``image_std``), bit for bit the processor of transformers'
  ``pil`` backend. Without that file: ImageNet's, said in the log.
"""

from __future__ import annotations

import json
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..pathlike import PathLike
from ..preprocessing import Recipe, imagenet_recipe
from .base import ModelSource

if TYPE_CHECKING:
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

_NAME = re.compile(r"[^\s:]+")
#: Checkpoint files of a folder, in order of preference.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
PROCESSOR_FILE = "preprocessor_config.json"
#: PIL's resampling filters by the number a processor config stores.
_RESAMPLE = {2: "bilinear", 3: "bicubic"}
#: Prefixes of checkpoint tensors an image network leaves out: heads, a CLIP's text tower and projections.
LEFT_OUT_PREFIXES = ("classifier.", "head.", "lm_head.", "text_model.", "text_projection", "visual_projection",
                     "logit_scale", "distillation_classifier.", "cls_classifier.")
#: Token parameters of the embeddings that precede the patch tokens (count 1 each).
_PREFIX_PARAMETERS = ("cls_token", "distillation_token", "class_embedding")


def _transformers():
    try:
        import transformers
    except ImportError:
        raise ValueError("model.arch: hf: models need the transformers package: pip install -e '.[hf]'") from None
    return transformers


@lru_cache(maxsize=16)
def model_folder(name: str) -> Path:
    """The local folder of ``hf:<name>``: the folder itself, or the repository's snapshot in the cache.

    Raises
    ------
    ValueError
        Naming every way to provide it.
    """
    path = Path(name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"model.arch: hf:{name}: the folder has no config.json (save the model with "
                             "save_pretrained(folder))")
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError) as error:
        raise ValueError(
            f"model.arch: hf:{name} is neither a local folder nor in the local Hugging Face cache ({error}); "
            "nothing is downloaded. Provide it as: a folder written by save_pretrained (model.arch: hf:<folder>); "
            f"the cache, filled where a network is reachable (huggingface-cli download {name}); and the weights "
            "as hf:pretrained (the folder's model.safetensors), a .safetensors/.pth file, or random:<seed>"
        ) from None


class HfSource(ModelSource):
    """``hf:<repo id or folder>``: a ``transformers`` vision model (module docstring)."""

    family = "hf"
    arch_form = "hf:<repo id or local folder> (a Hugging Face transformers vision model; pip install -e '.[hf]')"
    weights_forms = {"hf": "hf:pretrained (an hf: model's own model.safetensors / pytorch_model.bin, from its "
                           "folder or the local Hugging Face cache)"}
    weights_patterns = {"hf": r"pretrained"}
    activation_modules = ("transformers.activations",)

    @classmethod
    def parse_name(cls, rest: str) -> str | None:
        return rest if _NAME.fullmatch(rest) else None

    def config(self) -> Any:
        """The model's ``transformers`` configuration (from its folder's ``config.json``)."""
        transformers = _transformers()
        return transformers.AutoConfig.from_pretrained(model_folder(self.spec.name), local_files_only=True)

    def factory(self) -> nn.Module:
        transformers = _transformers()
        config = self.config()
        if config.model_type == "clip":
            return transformers.CLIPVisionModel(config.vision_config)
        return transformers.AutoModel.from_config(config)

    def mlp_activations(self, model: nn.Module) -> list[str]:
        from torch import nn

        found = set(super().mlp_activations(model))
        for parent_path, parent in model.named_modules():
            children = dict(parent.named_children())
            if any(isinstance(child, nn.Linear) for child in children.values()):
                for name, child in children.items():
                    if self.is_activation(name, child) and not isinstance(child, nn.Linear):
                        found.add(f"{parent_path}.{name}" if parent_path else name)
        order = {path: i for i, (path, _) in enumerate(model.named_modules())}
        return sorted(found, key=order.__getitem__)

    def prefix_tokens(self, model: nn.Module) -> int:
        import torch

        embeddings = getattr(model, "embeddings", None) or getattr(getattr(model, "vision_model", None),
                                                                    "embeddings", None)
        if embeddings is None:
            return 0
        n = sum(isinstance(getattr(embeddings, attr, None), torch.Tensor) for attr in _PREFIX_PARAMETERS)
        registers = getattr(embeddings, "register_tokens", None)
        if isinstance(registers, torch.Tensor):
            n += int(registers.shape[1])
        return n

    def default_input_size(self, model: nn.Module) -> int:
        config = getattr(model, "config", None)
        size = getattr(config, "image_size", None)
        return size if isinstance(size, int) else 224

    def load_weights(self, kind: str, argument: str, cache_dir: PathLike) -> tuple[str, dict[str, torch.Tensor]]:
        from ..provenance import file_sha256
        from ..weights.sources import WeightsUnavailableError, alternatives, read_checkpoint

        folder = model_folder(self.spec.name)
        for filename in WEIGHT_FILES:
            path = folder / filename
            if path.is_file():
                logger.info("hf:pretrained %s: %s", self.spec.name, path)
                return f"hf:{self.spec.name} file:{filename} sha256:{file_sha256(path)[:16]}", read_checkpoint(path)
        raise WeightsUnavailableError(f"hf:pretrained: {folder} holds none of {list(WEIGHT_FILES)}.\n"
                                      f"{alternatives(self.arch)}")

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The checkpoint as transformers itself reads it into the built model.

        transformers 5 renames and merges the tensors of checkpoints saved in older layouts
        (``encoder.layer.0.attention.attention.key`` becomes ``layers.0.attention.k_proj``), and
        ``save_pretrained`` still writes some models in such a layout: the checkpoint is handed
        to ``from_pretrained`` (with the model's ``config.json``, in a temporary folder) and the
        tensors it loaded are taken from the result. Tensors it does not use are allowed only
        under a head's or a text tower's prefix (`LEFT_OUT_PREFIXES`), and counted in the
        log; any other, or a tensor of the wrong shape, is refused.
        """
        import shutil
        import tempfile

        from safetensors.torch import save_file

        transformers = _transformers()
        folder = model_folder(self.spec.name)
        config = self.config()
        model_class = transformers.CLIPVisionModel if config.model_type == "clip" else transformers.AutoModel
        with tempfile.TemporaryDirectory(prefix="neurofacets-hf-") as tmp:
            shutil.copy(folder / "config.json", tmp)
            save_file({key: value.detach().clone().contiguous() for key, value in state.items()},
                      str(Path(tmp) / "model.safetensors"))
            model, info = model_class.from_pretrained(tmp, local_files_only=True, output_loading_info=True)
        unexpected = sorted(info.get("unexpected_keys") or [])
        foreign = [key for key in unexpected if not key.startswith(LEFT_OUT_PREFIXES)]
        mismatched = info.get("mismatched_keys") or []
        if foreign or mismatched:
            raise ValueError(f"hf:{self.spec.name}: the checkpoint does not fit the model: "
                             + (f"tensors it has no place for {foreign[:5]}" if foreign else "")
                             + (f"; shapes that differ {list(mismatched)[:5]}" if mismatched else ""))
        if unexpected:
            logger.warning("hf:%s: %d tensors of the checkpoint belong to a head or a text tower and are left out, "
                           "e.g. %s", self.spec.name, len(unexpected), unexpected[:3])
        missing = set(info.get("missing_keys") or [])
        loaded = {key: value for key, value in model.state_dict().items() if key not in missing}
        if missing:
            logger.info("hf:%s: the checkpoint has no tensors for %s (they keep their random initialisation)",
                        self.spec.name, sorted(missing)[:5])
        return loaded

    def preprocessing(self, weights: str) -> Recipe:
        path = model_folder(self.spec.name) / PROCESSOR_FILE
        if not path.is_file():
            return imagenet_recipe(f"ImageNet's (hf:{self.spec.name} has no {PROCESSOR_FILE})")
        return recipe_from_processor(json.loads(path.read_text()), f"hf:{self.spec.name} {PROCESSOR_FILE}")


SOURCE = HfSource


def recipe_from_processor(cfg: dict[str, Any], origin: str) -> Recipe:
    """The `Recipe` of an image processor's configuration (what its ``pil`` backend does).

    Raises
    ------
    ValueError
        For a step the recipe cannot express (naming the keys to set instead).
    """
    def refuse(what: str) -> ValueError:
        return ValueError(f"{origin}: {what}; set extraction.image_size, resize, interpolation, mean and std "
                          "explicitly")

    if not cfg.get("do_resize", True):
        raise refuse("do_resize is false (images are fed at their own size)")
    size = cfg.get("size") or {}
    if isinstance(size, int):
        size = {"shortest_edge": size}
    crop_pct = cfg.get("crop_pct")
    crop = cfg.get("crop_size") if cfg.get("do_center_crop") else None
    if isinstance(crop, int):
        crop = {"height": crop, "width": crop}
    if "height" in size and "width" in size:
        resize: int | tuple[int, int] = (int(size["height"]), int(size["width"]))
        side = int(size["height"]) if size["height"] == size["width"] else None
    elif "shortest_edge" in size and crop_pct is not None:  # ConvNeXt's processor
        edge = int(size["shortest_edge"])
        resize, side = ((int(edge / crop_pct), edge) if edge < 384 else ((edge, edge), edge))
    elif "shortest_edge" in size:
        resize, side = int(size["shortest_edge"]), int(size["shortest_edge"])
    else:
        raise refuse(f"size {size} is neither height/width nor shortest_edge")
    if crop is not None:
        if crop["height"] != crop["width"]:
            raise refuse(f"crop_size {crop} is not square")
        side = int(crop["height"])
    if side is None:
        raise refuse(f"size {size} without a centre crop is not square")
    resample = cfg.get("resample")
    if resample not in _RESAMPLE:
        raise refuse(f"resample {resample!r} is not bilinear (2) or bicubic (3)")
    if cfg.get("do_rescale", True) and abs(float(cfg.get("rescale_factor", 1 / 255)) * 255 - 1) > 1e-12:
        raise refuse(f"rescale_factor {cfg.get('rescale_factor')} is not 1/255")
    if cfg.get("do_normalize", True):
        mean, std = cfg.get("image_mean"), cfg.get("image_std")
        if mean is None or std is None:
            raise refuse("image_mean / image_std are not stated")
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    return Recipe(side, resize, _RESAMPLE[resample], mean, std, "floor", origin)
