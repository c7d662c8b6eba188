"""The embedded default dataset: labelled synthetic probe images made from a seed.

Twelve classes of clearly different visual content (orientation, spatial frequency, shape,
colour layout, texture), so the images that most activate a neuron of a trained network
fall into a few classes for a selective neuron and into many for a multi-faceted one: CoF is
meaningful without downloading any data. Within a class every image draws its own
parameters (frequency, phase, orientation jitter, colours, contrast, position, scale), so no
two images of a class are alike.

Every image is drawn from its own generator seeded with ``(seed, label, index)``: the same
seed always gives the same bytes, and asking for more images per class keeps the first ones.
Coordinates are fractions of the image side, so a class looks the same at any size.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .pathlike import PathLike
from .store import atomic_output

logger = logging.getLogger(__name__)


MIN_SIZE = 8

_Image = np.ndarray  # float64 (size, size, 3) in [0, 1] before quantisation


# --------------------------------------------------------------------------- building blocks


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates as fractions of the side: Y (size, 1), X (1, size)."""
    t = (np.arange(size) + 0.5) / size
    return t[:, None], t[None, :]


def _rotated(size: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates about the image centre, rotated by ``theta``: u along theta, v across."""
    y, x = _grid(size)
    x, y = x - 0.5, y - 0.5
    c, s = np.cos(theta), np.sin(theta)
    return x * c + y * s, -x * s + y * c


def _colour_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two clearly different colours (a quarter of the time two greys), at random contrast."""
    if rng.random() < 0.25:
        first = np.full(3, rng.uniform(0.0, 1.0))
        second = (first + 0.5 + rng.uniform(-0.15, 0.15)) % 1.0
    else:
        first = rng.uniform(0.0, 1.0, 3)
        # half a turn away on every channel (with jitter): never a near-identical pair
        second = (first + 0.5 + rng.uniform(-0.15, 0.15, 3)) % 1.0
    contrast = rng.uniform(0.6, 1.0)
    mean = (first + second) / 2
    return mean + contrast * (first - mean), mean + contrast * (second - mean)


def _blend(weight: np.ndarray, first: np.ndarray, second: np.ndarray, size: int) -> _Image:
    """``first`` where ``weight`` is 1, ``second`` where it is 0."""
    w = np.broadcast_to(weight, (size, size))[..., None]
    return w * first + (1.0 - w) * second


def _wave(argument: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A periodic profile in [0, 1] between a sine (soft) and a square wave (sharp)."""
    sharpness = rng.uniform(0.5, 5.0)
    return 0.5 + 0.5 * np.tanh(sharpness * np.sin(argument)) / np.tanh(sharpness)


def _frequency(rng: np.random.Generator, size: int, low: float = 2.0, high: float = 10.0) -> float:
    """Cycles per image, kept below size/5 so a small image does not alias."""
    high = max(low + 1.0, min(high, size / 5))
    return rng.uniform(low, high)


def _soft_edge(signed_distance: np.ndarray, size: int) -> np.ndarray:
    """Coverage in [0, 1] from a signed distance (fraction of the side, > 0 inside): 1 px ramp."""
    return np.clip(0.5 + signed_distance * size, 0.0, 1.0)


# --------------------------------------------------------------------------- the classes


def _grating(rng: np.random.Generator, size: int, theta: float) -> _Image:
    u, _ = _rotated(size, theta + rng.uniform(-0.12, 0.12))
    frequency = _frequency(rng, size)
    weight = _wave(2 * np.pi * frequency * u + rng.uniform(0, 2 * np.pi), rng)
    return _blend(weight, *_colour_pair(rng), size)


def _horizontal_grating(rng: np.random.Generator, size: int) -> _Image:
    return _grating(rng, size, np.pi / 2)  # intensity changes down the image: horizontal bars


def _vertical_grating(rng: np.random.Generator, size: int) -> _Image:
    return _grating(rng, size, 0.0)


def _diagonal_grating(rng: np.random.Generator, size: int) -> _Image:
    return _grating(rng, size, rng.choice([np.pi / 4, -np.pi / 4]))


def _checkerboard(rng: np.random.Generator, size: int) -> _Image:
    u, v = _rotated(size, rng.uniform(-0.2, 0.2))
    cells = rng.uniform(2.0, max(3.0, min(8.0, size / 6)))
    offset = rng.uniform(0, 1, 2)
    weight = (np.floor(u * cells + offset[0]) + np.floor(v * cells + offset[1])) % 2
    return _blend(weight, *_colour_pair(rng), size)


def _polka_dots(rng: np.random.Generator, size: int) -> _Image:
    y, x = _grid(size)
    per_side = rng.uniform(3.0, max(4.0, min(7.0, size / 5)))
    radius = rng.uniform(0.18, 0.38)  # fraction of the dot spacing
    offset = rng.uniform(0, 1, 2)
    gy = y * per_side + offset[1]
    row = np.floor(gy)
    shift = 0.5 * (row % 2) if rng.random() < 0.5 else 0.0  # hexagonal or square packing
    du = (x * per_side + offset[0] + shift) % 1.0 - 0.5
    dv = gy % 1.0 - 0.5
    distance = np.hypot(du, dv)  # in units of the spacing
    weight = _soft_edge((radius - distance) / per_side, size)
    return _blend(weight, *_colour_pair(rng), size)


def _concentric_rings(rng: np.random.Generator, size: int) -> _Image:
    y, x = _grid(size)
    cy, cx = rng.uniform(0.2, 0.8, 2)
    radius = np.hypot(x - cx, y - cy)
    frequency = _frequency(rng, size, 3.0, 10.0)
    weight = _wave(2 * np.pi * frequency * radius + rng.uniform(0, 2 * np.pi), rng)
    return _blend(weight, *_colour_pair(rng), size)


def _colour_gradient(rng: np.random.Generator, size: int) -> _Image:
    if rng.random() < 0.5:  # linear ramp in a random direction
        u, _ = _rotated(size, rng.uniform(0, 2 * np.pi))
        ramp = (u - u.min()) / (u.max() - u.min())
    else:  # radial ramp from a random centre
        y, x = _grid(size)
        cy, cx = rng.uniform(0.0, 1.0, 2)
        distance = np.hypot(x - cx, y - cy)
        ramp = distance / distance.max()
    weight = ramp ** rng.uniform(0.5, 2.0)
    return _blend(weight, *_colour_pair(rng), size)


def _noisy_colour_field(rng: np.random.Generator, size: int) -> _Image:
    colour = rng.uniform(0.15, 0.85, 3)
    sigma = rng.uniform(0.04, 0.15)
    if rng.random() < 0.5:  # luminance noise
        noise = rng.standard_normal((size, size, 1))
    else:  # independent noise per channel
        noise = rng.standard_normal((size, size, 3))
    return colour + sigma * noise


def _interpolation_matrix(cells: int, size: int) -> np.ndarray:
    """(size, cells) matrix of linear interpolation from ``cells`` samples to ``size``."""
    position = np.clip((np.arange(size) + 0.5) * cells / size - 0.5, 0, cells - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, cells - 1)
    frac = position - low
    matrix = np.zeros((size, cells))
    matrix[np.arange(size), low] += 1 - frac
    matrix[np.arange(size), high] += frac
    return matrix


def _noise_texture(rng: np.random.Generator, size: int) -> _Image:
    cells = int(rng.integers(4, 11))  # blobs per side
    coarse = rng.uniform(0.0, 1.0, (cells, cells, 3))
    m = _interpolation_matrix(cells, size)
    image = (m @ coarse.transpose(2, 0, 1) @ m.T).transpose(1, 2, 0)  # separable upsampling
    # stretch each channel to its full range: bold blobs, not a washed-out grey
    low = image.min(axis=(0, 1))
    high = image.max(axis=(0, 1))
    return (image - low) / np.maximum(high - low, 1e-6)


def _disc(rng: np.random.Generator, size: int) -> _Image:
    y, x = _grid(size)
    radius = rng.uniform(0.12, 0.35)
    cy, cx = rng.uniform(radius * 0.8, 1 - radius * 0.8, 2)
    weight = _soft_edge(radius - np.hypot(x - cx, y - cy), size)
    return _blend(weight, *_colour_pair(rng), size)


def _polygon(rng: np.random.Generator, size: int) -> _Image:
    y, x = _grid(size)
    n = int(rng.choice([3, 3, 4, 5]))  # mostly triangles
    radius = rng.uniform(0.2, 0.4)
    cy, cx = rng.uniform(0.3, 0.7, 2)
    angles = (rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(n) / n
              + rng.uniform(-0.4, 0.4, n) * np.pi / n)  # counter-clockwise, jittered
    vx, vy = cx + radius * np.cos(angles), cy + radius * np.sin(angles)
    inside = np.full((size, size), np.inf)
    for i in range(n):  # signed distance to each edge; the polygon is convex
        ex, ey = vx[(i + 1) % n] - vx[i], vy[(i + 1) % n] - vy[i]
        cross = (ex * (y - vy[i]) - ey * (x - vx[i])) / np.hypot(ex, ey)
        inside = np.minimum(inside, cross)
    weight = _soft_edge(inside, size)
    return _blend(weight, *_colour_pair(rng), size)


def _zigzag(rng: np.random.Generator, size: int) -> _Image:
    u, v = _rotated(size, rng.uniform(0, np.pi))
    zigs = rng.uniform(2.0, 5.0)  # zigzag periods along the stripes
    amplitude = rng.uniform(0.04, 0.1)
    triangle = 2 * np.abs(2 * ((u * zigs + rng.uniform(0, 1)) % 1.0) - 1) - 1
    frequency = _frequency(rng, size, 2.0, 7.0)
    argument = 2 * np.pi * frequency * (v + amplitude * triangle) + rng.uniform(0, 2 * np.pi)
    weight = 0.5 + 0.5 * np.tanh(4.0 * np.sin(argument)) / np.tanh(4.0)  # crisp edges
    return _blend(weight, *_colour_pair(rng), size)


_GENERATORS: dict[str, Callable[[np.random.Generator, int], _Image]] = {
    "horizontal_grating": _horizontal_grating,
    "vertical_grating": _vertical_grating,
    "diagonal_grating": _diagonal_grating,
    "checkerboard": _checkerboard,
    "polka_dots": _polka_dots,
    "concentric_rings": _concentric_rings,
    "colour_gradient": _colour_gradient,
    "noisy_colour_field": _noisy_colour_field,
    "noise_texture": _noise_texture,
    "disc": _disc,
    "polygon": _polygon,
    "zigzag": _zigzag,
}
#: The class names in label order: alphabetical, the order in which a listing of the class
#: folders (``dataset.format: folder``) finds them too.
PROBE_CLASSES: tuple[str, ...] = tuple(sorted(_GENERATORS))


# --------------------------------------------------------------------------- public API


def probe_image(class_name: str, rng: np.random.Generator, size: int) -> np.ndarray:
    """One probe image of ``class_name`` with parameters drawn from ``rng``.

    Parameters
    ----------
    class_name
        One of `PROBE_CLASSES`.
    rng
        Source of the image's random parameters (advanced by the call).
    size
        Side in pixels (at least 8).

    Returns
    -------
    uint8 array (size, size, 3), RGB.
    """
    if class_name not in _GENERATORS:
        raise ValueError(f"unknown probe class {class_name!r}; classes: {list(PROBE_CLASSES)}")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE}, got {size!r}")
    image = _GENERATORS[class_name](rng, int(size))
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def write_probe_dataset(
    out_dir: PathLike, images_per_class: int, size: int, seed: int
) -> pd.DataFrame:
    """Write the probe dataset as PNG files, one folder per class.

    Parameters
    ----------
    out_dir
        Folder to create: ``out_dir/<class_name>/<class_name>_<i:03d>.png``. Written under a
        temporary name and renamed when complete; an existing folder is replaced.
    images_per_class
        Images per class (>= 1).
    size
        Image side in pixels (>= 8).
    seed
        Seed (>= 0); image ``i`` of class ``label`` is drawn from
        ``numpy.random.default_rng([seed, label, i])``.

    Returns
    -------
    DataFrame with columns ``path`` (under ``out_dir`` as given), ``label`` (index into
    `PROBE_CLASSES`) and ``class_name``, in label order, then image order.
    """
    for name, value, minimum in (("images_per_class", images_per_class, 1),
                                 ("size", size, MIN_SIZE), ("seed", seed, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    out_dir = Path(out_dir)
    rows = []
    with atomic_output(out_dir) as tmp:
        for label, class_name in enumerate(PROBE_CLASSES):
            (tmp / class_name).mkdir(parents=True)
            for i in range(images_per_class):
                rng = np.random.default_rng([seed, label, i])
                filename = f"{class_name}_{i:03d}.png"
                image = Image.fromarray(probe_image(class_name, rng, size))
                # fast zlib level: the dataset is written once per run, read a few times
                image.save(tmp / class_name / filename, compress_level=1)
                rows.append((str(out_dir / class_name / filename), label, class_name))
    logger.info("wrote %d probe images (%d classes x %d, %d px, seed %d) to %s",
                len(rows), len(PROBE_CLASSES), images_per_class, size, seed, out_dir)
    return pd.DataFrame(rows, columns=["path", "label", "class_name"])
