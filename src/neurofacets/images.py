"""Reading images robustly and preprocessing them exactly as the network sees them.

Greyscale, CMYK, palette, alpha and 16-bit images are converted to 8-bit RGB; tiny
images are upscaled by the resize. Files that cannot be decoded (empty, truncated,
corrupt, not an image, decompression bombs) raise :class:`ImageError` with the reason,
so a caller can skip and record them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

# ImageNet mean RGB: what transparent pixels are flattened onto (and patches padded with).
MEAN_RGB = (0.485, 0.456, 0.406)
STD_RGB = (0.229, 0.224, 0.225)
MEAN_GREY_UINT8 = tuple(int(round(255 * m)) for m in MEAN_RGB)
DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default limit

# Truncated JPEGs must fail, not be silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageError(ValueError):
    """An input file cannot be used as an image; the message says why."""


def load_rgb(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``path`` into an 8-bit RGB PIL image.

    Parameters
    ----------
    path
        Image file.
    max_pixels
        Images with more pixels are refused as decompression bombs before decoding.

    Raises
    ------
    ImageError
        Missing, empty, unidentifiable, truncated or corrupt file, or too many pixels.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError("file not found")
    if path.stat().st_size == 0:
        raise ImageError("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"decompression bomb: {width}x{height} px exceeds {max_pixels} pixels"
                    )
                if width == 0 or height == 0:
                    raise ImageError(f"empty image ({width}x{height})")
                img.load()
                return _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image (format not recognised)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"decompression bomb: {err}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"unreadable image: {err}") from None


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit and float images: scale to 8 bits instead of clipping at 255
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0, 0, 255).round().astype(np.uint8)
        img = Image.fromarray(arr)
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


def resize_geometry(width: int, height: int, image_size: int, resize: int) -> tuple[int, int, int, int]:
    """Where torchvision's ``Resize(resize)`` + ``CenterCrop(image_size)`` put the crop.

    Returns
    -------
    new_w, new_h, left, top
        Size of the image after scaling its shorter side to ``resize`` (longer side
        truncated, as torchvision does) and the crop's top-left corner in that image.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if width <= height:
        new_w, new_h = resize, int(resize * height / width)
    else:
        new_w, new_h = int(resize * width / height), resize
    top = int(round((new_h - image_size) / 2.0))
    left = int(round((new_w - image_size) / 2.0))
    return new_w, new_h, left, top


def crop_box(width: int, height: int, image_size: int, resize: int) -> tuple[float, float, float, float]:
    """The centre crop of :func:`resize_geometry` in source pixel coordinates.

    ``(left, top, right, bottom)``: the part of the source image that ends up in the
    ``image_size`` x ``image_size`` crop, so only that part needs resampling.
    """
    new_w, new_h, left, top = resize_geometry(width, height, image_size, resize)
    scale_x, scale_y = width / new_w, height / new_h
    return (left * scale_x, top * scale_y,
            (left + image_size) * scale_x, (top + image_size) * scale_y)


def resize_and_crop(img: Image.Image, image_size: int, resize: int) -> Image.Image:
    """Shorter side to ``resize`` (bilinear, antialiased), then centre crop ``image_size``.

    Only the crop is computed: PIL resamples the source box of :func:`crop_box` straight
    to ``image_size`` x ``image_size`` with the filter scale of the whole resize, so
    memory stays O(image_size^2 + source) whatever the aspect ratio (scaling a 1 x 10000
    px image's shorter side to 256 first would make a 256 x 2,560,000 image). The result
    equals torchvision's ``Resize(resize)`` + ``CenterCrop(image_size)`` up to rounding:
    at most 1 level of 255 on about 2 % of the values (docs/benchmarks.md).
    """
    width, height = img.size
    box = crop_box(width, height, image_size, resize)
    if box == (0, 0, width, height) and (width, height) == (image_size, image_size):
        return img.copy()
    return img.resize((image_size, image_size), Image.Resampling.BILINEAR, box=box)


def preprocess_uint8(path: str | Path, image_size: int, resize: int,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The RGB image as the network saw it before normalisation: uint8 (S, S, 3)."""
    return np.array(resize_and_crop(load_rgb(path, max_pixels), image_size, resize))
