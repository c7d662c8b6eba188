"""One forward pass per batch records every selected layer's spatial max and argmax.

Forward hooks reduce each feature map to (max, argmax) per channel on the device, inside
the hook: the full map is never kept (torchvision's in-place ReLU would overwrite it
anyway) and never copied to the host. The forward pass stops after the last selected
layer. Images that fail to decode are skipped and recorded; they never stop a shard.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from .decode import DecodedFile, EncodedJpeg, ImageDecoder, batch_to_device, resolve_decode
from .images import DEFAULT_MAX_PIXELS, WHOLE_RESIZE_MAX_PIXELS, ImageError, library_versions
from .models import PREFIX_TOKEN_RULES, Layer, build_model, select_layers, token_grid
from .models.checks import checkpoint_fit_problem
from .pathlike import PathLike
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD, recipe_report, resolve_preprocessing
from .provenance import file_digest, provenance_attrs
from .store import ActivationShardWriter, atomic_output
from .topk import write_shard_top_k

logger = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class ImageFiles(torch.utils.data.Dataset):
    """Each file's `DecodedFile` (a uint8 CHW crop or, for
    ``decode="nvjpeg"``, a plain JPEG's bytes to decode on the GPU, with the file's content
    key); a failure yields its reason instead."""

    def __init__(self, image_ids: Sequence[int], paths: Sequence[str], image_size: int,
                 resize: int | Sequence[int], max_pixels: int = DEFAULT_MAX_PIXELS, decode: str = "pil",
                 interpolation: str = "bilinear", crop_offset: str = "round") -> None:
        self.image_ids = np.asarray(image_ids, dtype=np.int64)
        self.paths = list(paths)
        self.decoder = ImageDecoder(decode, image_size, resize, max_pixels, interpolation, crop_offset)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, DecodedFile | None, str]:
        try:
            return int(self.image_ids[i]), self.decoder(self.paths[i]), ""
        except ImageError as err:
            return int(self.image_ids[i]), None, str(err)


def collate_images(items: list[tuple[int, DecodedFile | None, str]]) -> dict[str, Any]:
    """Stack the crops of a batch, list the JPEGs left to decode on the device (with their
    position among the batch's usable images), the usable images' content keys, those that
    took the box resize, and the failures with their reason."""
    good = [(i, d) for i, d, _ in items if d is not None]
    crops = [d.pixels for _, d in good if isinstance(d.pixels, torch.Tensor)]
    return {
        "image_id": np.array([i for i, _ in good], dtype=np.int64),
        "content_key": np.array([d.content_key for _, d in good], dtype=np.uint64),
        "box_resized": [i for i, d in good if d.box_resized],
        "pixels": torch.stack(crops) if crops else None,
        "encoded": [(pos, d.pixels) for pos, (_, d) in enumerate(good) if isinstance(d.pixels, EncodedJpeg)],
        "skipped": [(i, reason) for i, d, reason in items if d is None],
    }


class ActivationBatch(NamedTuple):
    """One batch's results, as `iterate_activations` yields them."""

    image_id: np.ndarray  #: int64 (B,) the images computed, ascending
    values: dict[str, tuple[np.ndarray, np.ndarray]]  #: {layer: (max float32 (B, C), argmax int32 (B, C))}
    skipped: list[tuple[int, str]]  #: (image id, reason) of the images that could not be used
    content_key: np.ndarray  #: uint64 (B,) each computed image's content key
    box_resized: list[int]  #: ids of the computed images that took the box resize


class _StopForward(Exception):
    """Raised by the last hook: nothing after the last selected layer needs computing."""


class MaxArgmaxHooks:
    """Forward hooks that reduce each selected layer's map to per-channel max and argmax.

    The map is rectified first (post-activation semantics, docs/methods.md): since
    ``max(x, 0)`` is monotone, the max of the rectified map is ``max(raw max, 0)`` and its
    first argmax is the raw argmax, or 0 when the whole rectified map is zero. By kind:

    - ``conv`` (B, C, H, W): over the H x W positions, argmax ``r * W + c``;
    - ``channels_last`` (B, H, W, C): the same, per channel (last axis);
    - ``tokens`` (B, T, D): over the patch tokens (those after the layer's ``prefix_tokens``),
      argmax the patch token's index in the row-major grid. ``prefix_tokens="include"``: the
      class / register tokens count for the max as well, the argmax stays the best patch token.
    """

    def __init__(self, model: nn.Module, layers: Sequence[Layer], prefix_tokens: str = "exclude") -> None:
        if prefix_tokens not in PREFIX_TOKEN_RULES:
            raise ValueError(f"model.prefix_tokens: {prefix_tokens!r} is not one of {list(PREFIX_TOKEN_RULES)}")
        modules = dict(model.named_modules())
        self.layers = list(layers)
        self.include_prefix = prefix_tokens == "include"
        self.values: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.shapes: dict[str, tuple[int, int, int]] = {}
        last = self.layers[-1].name
        self._handles = [
            modules[layer.hook_path].register_forward_hook(self._hook(layer, layer.name == last))
            for layer in self.layers
        ]

    def _hook(self, layer: Layer, is_last: bool):
        name, kind, prefix = layer.name, layer.kind, layer.prefix_tokens

        def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            out = output.detach()
            if kind == "conv":
                _, channels, height, width = out.shape
                mx, am = out.flatten(2).max(dim=2)
            elif kind == "channels_last":
                _, height, width, channels = out.shape
                mx, am = out.flatten(1, 2).max(dim=1)
            else:
                _, tokens, channels = out.shape
                height, width = token_grid(tokens, prefix)
                mx, am = out[:, prefix:].max(dim=1)
                if self.include_prefix and prefix:
                    mx = torch.maximum(mx, out[:, :prefix].amax(dim=1))
            self.shapes[name] = (channels, height, width)
            silent = mx <= 0
            self.values[name] = (mx.float().clamp_min_(0), am.masked_fill_(silent, 0).int())
            if is_last:
                raise _StopForward

        return hook

    def run(self, model: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Forward ``x`` and return ``{layer: (max float32 (B, C), argmax int32 (B, C))}``."""
        self.values = {}
        with contextlib.suppress(_StopForward):
            model(x)
        return self.values

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def normalise(pixels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """The network's input from uint8 (B, 3, S, S) crops: torchvision's ``ToTensor()`` +
    ``Normalize(mean, std)`` operation for operation (``x / 255``, minus ``mean``, divided by
    ``std``, float32), so it is bit for bit the reference one. ``mean``, ``std``: float32 (1, 3, 1, 1)."""
    return pixels.float().div(255).sub(mean).div(std)


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present; an unavailable explicit device is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"extraction.device: {device!r} requested but CUDA is not available")
    return torch.device(device)


@contextlib.contextmanager
def cuda_numerics(autotune: bool) -> Iterator[None]:
    """Set the torch backend flags for an extraction; restore the previous values afterwards.

    ``autotune``: ``torch.backends.cudnn.benchmark``. TF32 is off for cuDNN and for matrix
    products: fp32 means fp32 (TF32 tensor cores would round conv inputs to 10 bits of mantissa).
    """
    flags = (torch.backends.cudnn, "benchmark", autotune), (torch.backends.cudnn, "allow_tf32", False), \
        (torch.backends.cuda.matmul, "allow_tf32", False)
    before = [getattr(owner, name) for owner, name, _ in flags]
    try:
        for owner, name, value in flags:
            setattr(owner, name, value)
        yield
    finally:
        for (owner, name, _), value in zip(flags, before):
            setattr(owner, name, value)


def iterate_activations(
    model: nn.Module,
    layers: Sequence[Layer],
    loader: torch.utils.data.DataLoader,
    device: torch.device,
    precision: str = "fp32",
    progress: bool = True,
    autotune: bool = False,
    prefix_tokens: str = "exclude",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Iterator[ActivationBatch]:
    """Yield an `ActivationBatch` per batch of ``loader``.

    ``mean``, ``std``: the recipe's normalisation (`neurofacets.preprocessing`).

    ``autotune``: on CUDA, let cuDNN time its algorithms for each new batch shape
    (``torch.backends.cudnn.benchmark``) rather than pick them by heuristics
    (``extraction.cudnn_autotune``). ``prefix_tokens``: ``model.prefix_tokens``
    (`MaxArgmaxHooks`).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"extraction.precision: {precision!r} is not one of {list(PRECISIONS)}")
    model = model.to(device).eval()
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    numerics = cuda_numerics(autotune) if device.type == "cuda" else contextlib.nullcontext()
    mean = torch.tensor(tuple(mean), dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(tuple(std), dtype=torch.float32, device=device).view(1, 3, 1, 1)
    dtype = PRECISIONS[precision]
    autocast = (torch.autocast(device.type, dtype=dtype) if dtype is not None
                else contextlib.nullcontext())
    hooks = MaxArgmaxHooks(model, layers, prefix_tokens)
    bar = tqdm(total=len(loader.dataset), unit="img", file=sys.stderr, disable=not progress,
               mininterval=5)
    try:
        with numerics, torch.inference_mode():
            for batch in loader:
                bar.update(len(batch["image_id"]) + len(batch["skipped"]))
                # normalise on the device: uint8 crosses the bus, 4x less than float32
                ids, x, skipped = batch_to_device(batch, device, non_blocking=True)
                # the device decoder may have refused some: keys of the images kept
                keys = batch["content_key"][np.searchsorted(batch["image_id"], ids)]
                kept = set(ids.tolist())
                box = [i for i in batch["box_resized"] if i in kept]
                if x is None:
                    yield ActivationBatch(ids, {}, skipped, keys, box)
                    continue
                if device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                x = normalise(x, mean, std)
                with autocast:
                    values = hooks.run(model, x)
                out = {name: (mx.cpu().numpy(), am.cpu().numpy()) for name, (mx, am) in values.items()}
                yield ActivationBatch(ids, out, skipped, keys, box)
    finally:
        bar.close()
        hooks.remove()


def make_loader(image_ids: Sequence[int], paths: Sequence[str], image_size: int, resize: int | Sequence[int],
                batch_size: int, workers: int, pin_memory: bool = False,
                max_pixels: int = DEFAULT_MAX_PIXELS, decode: str = "pil", interpolation: str = "bilinear",
                crop_offset: str = "round") -> torch.utils.data.DataLoader:
    """Batches in image-id order, decoded by ``workers`` processes (0: in this process).

    ``decode``: ``pil``, ``torchvision`` or ``nvjpeg`` (see `neurofacets.decode`);
    ``interpolation``, ``crop_offset``: the recipe's (`neurofacets.preprocessing`).
    """
    dataset = ImageFiles(image_ids, paths, image_size, resize, max_pixels, decode, interpolation, crop_offset)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers,
        collate_fn=collate_images, pin_memory=pin_memory,
        prefetch_factor=4 if workers else None, persistent_workers=False,
    )


def extract_shard(
    config: Mapping[str, Any],
    images_csv: PathLike,
    shard: int,
    weights_file: PathLike,
    out_path: PathLike,
    threads: int = 1,
    workers: int | None = None,
) -> None:
    """The ``extract`` rule: write ``activations/shard-{shard}.zarr`` for one shard.

    The store is written under a temporary name and renamed when complete. ``config`` is the
    run's configuration as [`neurofacets.config.validate_config`][] leaves it, every
    default filled in (``run``, ``model`` and ``extraction`` are read); outside a run, fill a
    partial one with `neurofacets.config.with_defaults`. Preprocessing keys still
    ``auto`` take the model's recipe (`neurofacets.preprocessing.resolve_preprocessing`).
    ``workers`` (DataLoader processes) overrides ``extraction.workers``, which the workflow
    leaves out of ``config`` (a performance setting: `neurofacets.provenance.PERFORMANCE_SETTINGS`).
    """
    from .weights import load_prepared

    config = copy.deepcopy(dict(config))
    recipe = resolve_preprocessing(config)
    ex, arch = config["extraction"], config["model"]["arch"]
    torch.set_num_threads(threads)
    images = pd.read_csv(images_csv)
    images = images[images["shard"] == shard].sort_values("image_id")
    weights = load_prepared(weights_file)
    if weights.partial:  # the file may be shared with a run analysing other layers: this run's check
        problem = checkpoint_fit_problem(arch, config["model"]["layers"], ex["image_size"], weights.state_dict,
                                         weights.weights_id)
        if problem:
            raise ValueError(problem)
    model = build_model(arch, weights.state_dict, seed=weights.seed, partial=weights.partial)
    layers = select_layers(model, arch, config["model"]["layers"])
    device = resolve_device(ex["device"])
    max_pixels = ex["max_image_pixels"]
    decode = resolve_decode(ex["decode"], device)
    loader = make_loader(images["image_id"], images["path"], recipe.image_size, recipe.resize,
                         ex["batch_size"], ex["workers"] if workers is None else workers, pin_memory=device.type == "cuda",
                         max_pixels=max_pixels, decode=decode, interpolation=recipe.interpolation,
                         crop_offset=recipe.crop_offset)
    prefix_tokens = config["model"]["prefix_tokens"]
    shapes = _map_shapes(model, layers, ex["image_size"])
    attrs = provenance_attrs(config, dataset_digest=file_digest(images_csv),
                             weights_id=weights.weights_id, shard=shard,
                             image_size=ex["image_size"], resize=ex["resize"],
                             precision=ex["precision"], device=str(device), decode=decode,
                             decode_libraries=library_versions(), preprocessing=recipe.as_config())
    logger.info("shard %d: %d images, %d layers, device %s, %s, decode %s", shard, len(images),
                len(layers), device, ex["precision"], decode)
    for line in recipe_report(config):
        logger.info("preprocessing: %s", line)
    logger.info("preprocessing used: %s", recipe.label())
    skipped: list[list[Any]] = []
    box_resized: list[int] = []
    paths = dict(zip(images["image_id"], images["path"]))
    with atomic_output(out_path) as tmp:
        writer = ActivationShardWriter(tmp, len(images), shapes, attrs)
        for batch in iterate_activations(model, layers, loader, device, ex["precision"],
                                         autotune=ex["cudnn_autotune"], prefix_tokens=prefix_tokens,
                                         mean=recipe.mean, std=recipe.std):
            writer.write(batch.image_id, batch.values, batch.content_key)
            for image_id, reason in batch.skipped:
                logger.warning("skipped image %d (%s): %s", image_id, paths[image_id], reason)
                skipped.append([int(image_id), str(paths[image_id]), reason])
            for image_id in batch.box_resized:
                logger.info("image %d (%s) is too large to resize whole (more than %d px after the resize): "
                            "box resize, within 1 level of the reference", image_id, paths[image_id],
                            WHOLE_RESIZE_MAX_PIXELS)
            box_resized.extend(int(i) for i in batch.box_resized)
        shard_top_k = ex["shard_top_k"]
        if shard_top_k:
            writer.flush()  # the candidates are read back from the rows written
            write_shard_top_k(writer.root, shard_top_k, writer.n_written)
        writer.close(skipped=skipped, n_box_resized=len(box_resized), box_resized=box_resized)
    logger.info("shard %d: wrote %d images, skipped %d, %d of them box-resized; top-%d candidates per neuron",
                shard, writer.n_written, len(skipped), len(box_resized), shard_top_k)


def _map_shapes(model: nn.Module, layers: Sequence[Layer], image_size: int) -> dict[str, tuple[int, int, int]]:
    """(channels, height, width) of each layer's map, from one forward of a blank image."""
    hooks = MaxArgmaxHooks(model, layers)
    try:
        with torch.inference_mode():
            hooks.run(model, torch.zeros(1, 3, image_size, image_size))
    finally:
        hooks.remove()
    return {layer.name: hooks.shapes[layer.name] for layer in layers}
