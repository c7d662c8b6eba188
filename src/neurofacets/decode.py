"""Three ways to decode and preprocess an image file, chosen per run (``extraction.decode``).

- ``pil`` (and ``auto``, the default): `neurofacets.images.preprocess`, torchvision's
  reference preprocessing bit for bit (PIL decode, ``Resize`` of the whole image,
  ``CenterCrop``), every format and odd file;
- ``torchvision``: ``torchvision.io.decode_jpeg`` (libjpeg-turbo) and a resize + centre crop
  on the tensor in the DataLoader workers (opt-in: within 2 levels of the reference);
- ``nvjpeg``: the workers only read the file; the main process decodes each batch's JPEGs
  at once on the GPU (``decode_jpeg(list, device="cuda")``, nvJPEG) and resizes there
  (opt-in: up to 45 levels from the reference, docs/benchmarks.md).

Every path reads the file's bytes once in the worker and returns their
`neurofacets.images.content_key` (the tie key) with the crop, and every path refuses a
JPEG whose data libjpeg reports as corrupt (`neurofacets.images.jpeg_corruption`),
which the decoders themselves would turn into a garbled picture without an error.

The tensor paths take only *plain* JPEGs: RGB or greyscale, complete (ending with the
end-of-image marker), at most ``max_pixels`` and at most `TENSOR_MAX_ASPECT` : 1.
Every other file (PNG, CMYK, truncated, elongated, not an image, ...) and every JPEG that
torchvision cannot decode without a complaint goes through the PIL path, which decides
whether it is used or skipped and with which reason: the three paths skip exactly the
same files. The torchvision path's crops differ from the PIL path's by at most
`TOLERANCE_LEVELS` of 255 (rounding: torchvision's tensor resize is not PIL's;
measured on the real photos in docs/benchmarks.md and asserted in
tests/test_decode.py). The nvjpeg path decodes with nvJPEG, whose difference from
libjpeg-turbo is measured by ``benchmarks/gpu_check.py`` on a GPU.

torchvision 0.29 deprecates its image decoders in favour of TorchCodec
(``torchcodec.decoders.decode_jpeg``, the same call); they are used here until the
project depends on TorchCodec, with that deprecation warning silenced.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from .config import REFERENCE_DECODE
from .images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    content_key,
    jpeg_corruption,
    preprocess,
    preprocess_uint8,
    read_image_bytes,
    resize_geometry,
)
from .pathlike import PathLike

DECODES = ("auto", "pil", "torchvision", "nvjpeg")
#: Longest / shortest side above which an image goes through the PIL path, since the tensor
#: paths resize the whole image as float tensors (memory O(TENSOR_MAX_ASPECT * resize^2)).
TENSOR_MAX_ASPECT = 4.0
#: Largest difference (levels of 255) of the torchvision path's crop from the PIL path's.
TOLERANCE_LEVELS = 2

_JPEG_START = b"\xff\xd8\xff"
_JPEG_END = b"\xff\xd9"
_DEPRECATION = r"The image decoding and encoding capabilities of TorchVision are deprecated"


@dataclass(frozen=True)
class EncodedJpeg:
    """A plain JPEG's bytes, to be decoded on the device in the main process.

    It carries what the PIL path needs, should the device decoder refuse it.
    """

    data: torch.Tensor
    path: str
    image_size: int
    resize: int | tuple[int, int]
    max_pixels: int
    interpolation: str = "bilinear"
    crop_offset: str = "round"

    def pil_fallback(self) -> torch.Tensor:
        """The PIL path's crop; raises `ImageError` if PIL cannot use the file either."""
        pixels = preprocess_uint8(self.path, self.image_size, self.resize, self.max_pixels, self.interpolation,
                                  self.crop_offset)
        return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def plain_jpeg_size(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int] | None:
    """``(width, height)`` of a JPEG the tensor paths decode; ``None`` hands it to PIL.

    Reads only the header (PIL parses the markers without decoding).
    """
    if not data.startswith(_JPEG_START) or not data.rstrip(b"\x00").endswith(_JPEG_END):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, mode, (width, height) = img.format, img.mode, img.size
    except Exception:  # noqa: BLE001 - whatever PIL dislikes, the PIL path will name
        return None
    if fmt != "JPEG" or mode not in ("RGB", "L") or width < 1 or height < 1:
        return None
    if width * height > max_pixels or max(width, height) > TENSOR_MAX_ASPECT * min(width, height):
        return None
    return width, height


def decode_jpeg_rgb(data: torch.Tensor | list[torch.Tensor], device: str | torch.device) -> Any:
    """torchvision's JPEG decoder (one tensor or a list), to RGB; any warning (libjpeg's complaints) is an error."""
    from torchvision.io import ImageReadMode, decode_jpeg

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_DEPRECATION, category=DeprecationWarning)
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("error", RuntimeWarning)
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)


def resize_crop_tensor(img: torch.Tensor, image_size: int, resize: int | Sequence[int],
                       interpolation: str = "bilinear", crop_offset: str = "round") -> torch.Tensor:
    """Resize (``interpolation``, antialiased), centre crop: uint8 (3, S, S).

    The geometry of `neurofacets.images.resize_geometry`, on any device.
    """
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as tvf

    if img.ndim != 3 or img.dtype != torch.uint8:
        raise ValueError(f"expected a uint8 (C, H, W) tensor, got {img.dtype} {tuple(img.shape)}")
    height, width = img.shape[-2:]
    new_w, new_h, left, top = resize_geometry(width, height, image_size, resize, crop_offset)
    if (new_w, new_h) != (width, height):
        img = tvf.resize(img, [new_h, new_w], interpolation=InterpolationMode(interpolation), antialias=True)
    return img[:, top:top + image_size, left:left + image_size].contiguous()


@dataclass(frozen=True)
class DecodedFile:
    """What a DataLoader worker hands over for one usable file.

    Attributes
    ----------
    pixels
        uint8 (3, S, S) crop, or (``nvjpeg``) the JPEG's bytes to decode on the device.
    content_key
        `neurofacets.images.content_key` of the file.
    box_resized
        The file took the bounded-memory box resize (`neurofacets.images.needs_box_resize`).
    """

    pixels: torch.Tensor | EncodedJpeg
    content_key: int
    box_resized: bool = False


class ImageDecoder:
    """Turn an image file into what a DataLoader worker hands over.

    Parameters
    ----------
    decode
        ``pil``, ``torchvision`` or ``nvjpeg`` (resolve ``auto`` with `resolve_decode`).
    image_size, resize, max_pixels, interpolation, crop_offset
        As in `neurofacets.images.preprocess_uint8`.
    """

    def __init__(self, decode: str, image_size: int, resize: int | Sequence[int],
                 max_pixels: int = DEFAULT_MAX_PIXELS, interpolation: str = "bilinear",
                 crop_offset: str = "round") -> None:
        if decode not in DECODES[1:]:
            raise ValueError(f"decode must be one of {list(DECODES[1:])} (resolve 'auto' first), "
                             f"got {decode!r}")
        self.decode, self.image_size, self.max_pixels = decode, image_size, max_pixels
        self.resize = tuple(resize) if isinstance(resize, Sequence) else resize
        self.interpolation, self.crop_offset = interpolation, crop_offset

    def __call__(self, path: PathLike) -> DecodedFile:
        """The file's crop (or, ``nvjpeg``, a plain JPEG's bytes) with its content key.

        Raises
        ------
        ImageError
            The file cannot be used (the PIL path's reason).
        """
        data = read_image_bytes(path)

        def pil() -> DecodedFile:
            done = preprocess(data, self.image_size, self.resize, self.max_pixels, self.interpolation,
                              self.crop_offset)
            return DecodedFile(torch.from_numpy(done.pixels).permute(2, 0, 1).contiguous(), done.content_key,
                               done.box_resized)

        if self.decode == "pil" or plain_jpeg_size(data, self.max_pixels) is None:
            return pil()
        key = content_key(data)
        corrupt = jpeg_corruption(data)
        if corrupt:
            raise ImageError(corrupt)
        encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        if self.decode == "nvjpeg":
            return DecodedFile(EncodedJpeg(encoded, str(path), self.image_size, self.resize, self.max_pixels,
                                           self.interpolation, self.crop_offset), key)
        try:
            crop = resize_crop_tensor(decode_jpeg_rgb(encoded, "cpu"), self.image_size, self.resize,
                                      self.interpolation, self.crop_offset)
            return DecodedFile(crop, key)
        except Exception:  # noqa: BLE001 - libjpeg's complaint; PIL decides and names it
            return pil()


def decode_on_device(items: Sequence[EncodedJpeg], device: torch.device) -> list[torch.Tensor | str]:
    """Decode JPEGs together on ``device`` (nvJPEG on CUDA) and crop them there.

    Returns, per item, the uint8 (3, S, S) crop on ``device`` or the reason it was skipped.
    A batch the decoder refuses is retried one image at a time, and an image it refuses
    goes through the PIL path, so a bad file never costs its batch.
    """
    if not items:
        return []
    try:
        images = decode_jpeg_rgb([item.data for item in items], device)
    except Exception:  # noqa: BLE001 - find the culprit(s) one by one
        images = []
        for item in items:
            try:
                images.append(decode_jpeg_rgb(item.data, device))
            except Exception:  # noqa: BLE001
                images.append(None)
    out: list[torch.Tensor | str] = []
    for item, img in zip(items, images):
        if img is not None:
            out.append(resize_crop_tensor(img, item.image_size, item.resize, item.interpolation, item.crop_offset))
            continue
        try:
            out.append(item.pil_fallback().to(device))
        except ImageError as err:
            out.append(str(err))
    return out


def batch_to_device(batch: dict[str, Any], device: torch.device,
                    non_blocking: bool = False) -> tuple[np.ndarray, torch.Tensor | None, list[tuple[int, str]]]:
    """A collated batch as ``(image_id, uint8 (B, 3, S, S) on device, skipped)``.

    ``batch`` is what `neurofacets.extract.collate_images` returns: ``pixels`` (crops
    made in the workers, stacked) and ``encoded`` (``(position, EncodedJpeg)`` to decode
    here), positions referring to ``image_id``.
    """
    ids = batch["image_id"]
    skipped = list(batch["skipped"])
    pixels = batch["pixels"]
    encoded = batch.get("encoded", [])
    if not encoded:
        return ids, None if pixels is None else pixels.to(device, non_blocking=non_blocking), skipped
    decoded = decode_on_device([item for _, item in encoded], device)
    rows: list[torch.Tensor | str | None] = [None] * len(ids)
    for (pos, _), result in zip(encoded, decoded):
        rows[pos] = result
    if pixels is not None:
        on_device = pixels.to(device, non_blocking=non_blocking)
        made_in_workers = [i for i, r in enumerate(rows) if r is None]
        for row, pos in enumerate(made_in_workers):
            rows[pos] = on_device[row]
    keep = [i for i, r in enumerate(rows) if not isinstance(r, str)]
    skipped.extend((int(ids[i]), r) for i, r in enumerate(rows) if isinstance(r, str))
    if not keep:
        return ids[:0], None, sorted(skipped)
    return ids[keep], torch.stack([rows[i] for i in keep]), sorted(skipped)


@functools.lru_cache(maxsize=None)
def _can_decode(device: str) -> bool:
    """Whether torchvision decodes a JPEG on ``device`` here (built with nvJPEG for CUDA)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 100, 50)).save(buf, "JPEG")
    try:
        img = decode_jpeg_rgb(torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8), device)
        return tuple(img.shape) == (3, 8, 8)
    except Exception:  # noqa: BLE001 - not compiled in, no device, no library
        return False


def nvjpeg_available(device: torch.device) -> bool:
    """Whether ``decode: nvjpeg`` can run on ``device``."""
    return device.type == "cuda" and _can_decode(str(device))


def resolve_decode(decode: str, device: torch.device) -> str:
    """The decode path a run uses: ``auto`` resolved, an unavailable explicit one refused."""
    if decode not in DECODES:
        raise ValueError(f"extraction.decode: {decode!r} is not one of {list(DECODES)}")
    if decode == "nvjpeg" and not nvjpeg_available(device):
        raise RuntimeError(
            f"extraction.decode: 'nvjpeg' needs a CUDA device on which torchvision can decode "
            f"JPEGs (device here: {device}); use 'auto', 'torchvision' or 'pil'")
    if decode == "torchvision" and not _can_decode("cpu"):
        raise RuntimeError("extraction.decode: 'torchvision' but this torchvision cannot decode "
                           "JPEGs (built without libjpeg); use 'auto' or 'pil'")
    return REFERENCE_DECODE if decode == "auto" else decode
