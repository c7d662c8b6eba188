"""Reading images robustly and preprocessing them exactly as the network sees them.

Greyscale, CMYK, palette, alpha, 16-bit and float images are converted to 8-bit RGB (the
rules: `load_rgb`); tiny images are upscaled by the resize. Files that cannot be used
(empty, truncated, corrupt, not an image, decompression bombs, non-finite float pixels)
raise `ImageError` with the reason, so a caller can skip and record them.

Preprocessing is torchvision's reference, ``Compose([Resize(resize, interpolation),
CenterCrop(image_size)])`` on the PIL image, bit for bit (`resize_and_crop`), with the
model's recipe (`neurofacets.preprocessing`): ``resize`` the shorter side or an exact
``(height, width)``, ``interpolation`` bilinear or bicubic, the crop offset rounded as
torchvision (``round``) or Hugging Face (``floor``) does; only an image whose whole resize
would exceed `WHOLE_RESIZE_MAX_PIXELS` takes the bounded-memory box resize
(`box_resize_and_crop`), and says so (`Preprocessed`).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from .pathlike import PathLike
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD

#: PIL's filter for each ``extraction.interpolation``.
PIL_FILTERS = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}

# ImageNet mean RGB: what transparent pixels are flattened onto (and patches padded with).
MEAN_RGB = IMAGENET_MEAN
STD_RGB = IMAGENET_STD
MEAN_GREY_UINT8 = tuple(int(round(255 * m)) for m in MEAN_RGB)
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default limit
#: Largest image (pixels) that the reference path resizes whole: 2**24 px, 48 MiB of RGB, e.g.
#: 256 x 65,536 (an aspect ratio of 256 : 1 at resize 256). Beyond it the box resize bounds
#: the memory to the crop (a 1 x 10000 px image would otherwise become 256 x 2,560,000).
WHOLE_RESIZE_MAX_PIXELS = 2**24
#: What libjpeg says (and the decoders only print) when a JPEG's compressed data is damaged.
_CORRUPT_JPEG = ("Corrupt JPEG data", "Premature end of JPEG file")

# Truncated JPEGs must fail, not be silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(ValueError):
    """An input file cannot be used as an image; the message says why."""


@dataclass(frozen=True)
class Preprocessed:
    """One image as the network sees it, and what it took to get there.

    Attributes
    ----------
    pixels
        uint8 (image_size, image_size, 3), before normalisation.
    content_key
        `content_key` of the file's bytes (the tie key of docs/methods.md).
    box_resized
        True when the image was too large to resize whole (`WHOLE_RESIZE_MAX_PIXELS`)
        and took `box_resize_and_crop` instead of the reference path.
    """

    pixels: np.ndarray
    content_key: int
    box_resized: bool


def library_versions() -> dict[str, str | None]:
    """The versions of the libraries whose arithmetic the preprocessed pixels depend on.

    Recorded in every activation shard (``decode_libraries``): the reference path is exact
    for one Pillow and libjpeg-turbo; other versions may round differently.
    """
    from importlib.metadata import version

    from PIL import __version__ as pillow
    from PIL import features

    return {
        "Pillow": pillow,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "zlib": features.version("zlib"),
        "simplejpeg": version("simplejpeg"),
        "torchvision": version("torchvision"),
    }


def content_key(data: bytes) -> int:
    """The first 8 bytes of the SHA-256 of ``data``, as an unsigned big-endian integer.

    Depends on the file's content alone (not its name, folder or label): the key by which
    images of equal activation are ordered (docs/methods.md).
    """
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def read_image_bytes(path: PathLike) -> bytes:
    """The bytes of an image file; `ImageError` when it is missing, unreadable or empty."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError("file not found") from None
    except IsADirectoryError:
        raise ImageError("a folder, not a file") from None
    except OSError as err:
        raise ImageError(f"unreadable file: {err.strerror or err}") from None
    if not data:
        raise ImageError("empty file")
    return data


def jpeg_corruption(data: bytes) -> str | None:
    """libjpeg's complaint about a JPEG's damaged data, or ``None``.

    PIL and torchvision decode a JPEG whose scan is damaged (bytes overwritten, length kept)
    into a garbled picture, with libjpeg's warning printed on the console only. This decodes
    ``data`` once more with libjpeg-turbo through ``simplejpeg`` in strict mode, which turns
    those warnings into errors. Not a JPEG, or one that simplejpeg cannot decode for another
    reason (a colour space it lacks): ``None``, the caller's decoder decides.
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    import simplejpeg

    try:
        _, _, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        simplejpeg.decode_jpeg(data, colorspace="GRAY" if colorspace == "Gray" else
                               "CMYK" if colorspace in ("CMYK", "YCCK") else "RGB", strict=True)
    except ValueError as err:
        message = str(err)
        if message.startswith(_CORRUPT_JPEG):
            return f"corrupt JPEG data (libjpeg: {message})"
    return None


def load_rgb(path: PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``path`` into an 8-bit RGB PIL image (`decode_rgb` of its bytes)."""
    return decode_rgb(read_image_bytes(path), max_pixels)


def decode_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image file's bytes into an 8-bit RGB PIL image.

    Conversions: greyscale, CMYK and palette to RGB; alpha flattened onto the ImageNet mean
    colour; 16-bit integers scaled by 255/65535; 32-bit integer and float images by the rule of
    `_scale_to_uint8`. EXIF rotation is not applied (as torchvision's reference).

    Parameters
    ----------
    data
        The file's bytes.
    max_pixels
        Images with more pixels are refused as decompression bombs before decoding.

    Raises
    ------
    ImageError
        Empty, unidentifiable, truncated or corrupt data (including JPEG data that libjpeg
        reports as corrupt, `jpeg_corruption`), too many pixels, or float pixels that
        are not finite or not in a documented range.
    """
    if not data:
        raise ImageError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"decompression bomb: {width}x{height} px exceeds {max_pixels} pixels"
                    )
                if width == 0 or height == 0:
                    raise ImageError(f"empty image ({width}x{height})")
                img.load()
                corrupt = jpeg_corruption(data) if img.format == "JPEG" else None
                if corrupt:
                    raise ImageError(corrupt)
                return _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image (format not recognised)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"decompression bomb: {err}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"unreadable image: {err}") from None


def _scale_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """8-bit values of a 16-bit, 32-bit integer or float image, by a stated rule, never clipped.

    - 16-bit (``I;16*``): x / 65535 · 255;
    - integers and floats whose values all lie in [0, 255]: as they are, except floats that
      all lie in [0, 1] (the usual float export): x / 1 · 255;
    - values in [0, 65535] with some above 255: x / 65535 · 255 (a 16-bit range);
    - NaN or infinite pixels, negative values or values above 65535: refused (`ImageError`
      naming the range), since any scaling would be a guess.

    Then rounded half to even. A float image with values in [0, 1] but meant as 0..255 (all
    pixels at most 1 of 255) is read as 0..1: scale such data yourself.
    """
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ImageError(f"float image with {bad} non-finite pixel value(s) (NaN or infinite)")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > 65535:
        raise ImageError(f"{mode} image with values in [{lo:g}, {hi:g}], outside the ranges read "
                         "(0..1 and 0..255 for floats, 0..255 and 0..65535): scale it to 0..255 first")
    if mode.startswith("I;16"):
        full_scale = 65535.0
    elif mode == "F" and hi <= 1.0:
        full_scale = 1.0
    elif hi <= 255.0:
        full_scale = 255.0
    else:
        full_scale = 65535.0
    return np.round(arr / full_scale * 255.0).astype(np.uint8)


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit, 32-bit and float images: scaled to 8 bits by a stated rule, not clipped at 255
        img = Image.fromarray(_scale_to_uint8(np.asarray(img, dtype=np.float64), mode))
        mode = "L"
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        background = Image.new("RGB", img.size, MEAN_GREY_UINT8)
        background.paste(img.convert("RGBA"), mask=img.convert("RGBA").getchannel("A"))
        return background
    if mode == "RGB":
        return img.copy()
    return img.convert("RGB")


def resize_geometry(width: int, height: int, image_size: int, resize: int | Sequence[int],
                    crop_offset: str = "round") -> tuple[int, int, int, int]:
    """Where torchvision's ``Resize(resize)`` + ``CenterCrop(image_size)`` put the crop.

    ``resize`` an integer: the shorter side scaled to it (the longer side truncated, as
    torchvision does); ``(height, width)``: exactly that size. ``crop_offset``: ``round``
    (torchvision, ``round(margin / 2)``) or ``floor`` (Hugging Face, ``margin // 2``).

    Returns
    -------
    new_w, new_h, left, top
        Size of the image after the resize and the crop's top-left corner in that image.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if isinstance(resize, Sequence):
        new_h, new_w = int(resize[0]), int(resize[1])
    elif width <= height:
        new_w, new_h = resize, int(resize * height / width)
    else:
        new_w, new_h = int(resize * width / height), resize
    if crop_offset == "floor":
        top, left = (new_h - image_size) // 2, (new_w - image_size) // 2
    else:
        top = int(round((new_h - image_size) / 2.0))
        left = int(round((new_w - image_size) / 2.0))
    return new_w, new_h, left, top


def crop_box(width: int, height: int, image_size: int, resize: int | Sequence[int],
             crop_offset: str = "round") -> tuple[float, float, float, float]:
    """The centre crop of `resize_geometry` in source pixel coordinates.

    ``(left, top, right, bottom)``: the part of the source image that ends up in the
    ``image_size`` x ``image_size`` crop, so only that part needs resampling.
    """
    new_w, new_h, left, top = resize_geometry(width, height, image_size, resize, crop_offset)
    scale_x, scale_y = width / new_w, height / new_h
    return (left * scale_x, top * scale_y,
            (left + image_size) * scale_x, (top + image_size) * scale_y)


def needs_box_resize(width: int, height: int, image_size: int, resize: int | Sequence[int]) -> bool:
    """Whether the whole resize of a ``width`` x ``height`` image exceeds `WHOLE_RESIZE_MAX_PIXELS`."""
    new_w, new_h, _, _ = resize_geometry(width, height, image_size, resize)
    return new_w * new_h > WHOLE_RESIZE_MAX_PIXELS


def resize_and_crop(img: Image.Image, image_size: int, resize: int | Sequence[int], interpolation: str = "bilinear",
                    crop_offset: str = "round") -> Image.Image:
    """torchvision's reference ``Resize(resize, interpolation)`` + ``CenterCrop(image_size)`` of a PIL image.

    The whole image is resized (PIL's ``interpolation`` filter with its antialiasing,
    ``Image.resize`` as torchvision calls it), then cropped: bit for bit what
    ``torchvision.transforms.Compose([Resize(resize, interpolation), CenterCrop(image_size)])``
    returns (``crop_offset="floor"``: the crop of Hugging Face's image processors).
    An image whose whole resize would exceed `WHOLE_RESIZE_MAX_PIXELS` takes
    `box_resize_and_crop` instead (`needs_box_resize`; `preprocess` reports it).
    """
    width, height = img.size
    if needs_box_resize(width, height, image_size, resize):
        return box_resize_and_crop(img, image_size, resize, interpolation, crop_offset)
    new_w, new_h, left, top = resize_geometry(width, height, image_size, resize, crop_offset)
    if (new_w, new_h) != (width, height):
        img = img.resize((new_w, new_h), PIL_FILTERS[interpolation])
    return img.crop((left, top, left + image_size, top + image_size))


def box_resize_and_crop(img: Image.Image, image_size: int, resize: int | Sequence[int],
                        interpolation: str = "bilinear", crop_offset: str = "round") -> Image.Image:
    """The crop of `resize_and_crop` computed alone, in memory O(image_size^2 + source).

    PIL resamples the source box of `crop_box` straight to ``image_size`` x
    ``image_size`` with the filter scale of the whole resize (scaling a 1 x 10000 px
    image's shorter side to 256 first would make a 256 x 2,560,000 image). It equals the
    reference up to rounding: at most 1 level of 255 (PIL rounds to uint8 after each of its
    two passes, and takes them in another order for a box), on about 2 % of the values
    (docs/benchmarks.md).
    """
    width, height = img.size
    box = crop_box(width, height, image_size, resize, crop_offset)
    if box == (0, 0, width, height) and (width, height) == (image_size, image_size):
        return img.copy()
    return img.resize((image_size, image_size), PIL_FILTERS[interpolation], box=box)


def preprocess(data: bytes, image_size: int, resize: int | Sequence[int], max_pixels: int = DEFAULT_MAX_PIXELS,
               interpolation: str = "bilinear", crop_offset: str = "round") -> Preprocessed:
    """An image file's bytes as the network sees them (`decode_rgb`, `resize_and_crop`).

    Raises
    ------
    ImageError
        When the file cannot be used (`decode_rgb`).
    """
    img = decode_rgb(data, max_pixels)
    return Preprocessed(
        pixels=np.array(resize_and_crop(img, image_size, resize, interpolation, crop_offset)),
        content_key=content_key(data),
        box_resized=needs_box_resize(*img.size, image_size, resize),
    )


def preprocess_uint8(path: PathLike, image_size: int, resize: int | Sequence[int],
                     max_pixels: int = DEFAULT_MAX_PIXELS, interpolation: str = "bilinear",
                     crop_offset: str = "round") -> np.ndarray:
    """The RGB image as the network saw it before normalisation: uint8 (S, S, 3)."""
    return preprocess(read_image_bytes(path), image_size, resize, max_pixels, interpolation, crop_offset).pixels
