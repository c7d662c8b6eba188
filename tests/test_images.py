"""Bad and odd inputs: converted when possible, otherwise refused with the reason."""

import numpy as np
import pytest
from PIL import Image

from neurofacets.images import ImageError, load_rgb, preprocess_uint8, resize_and_crop


def _save(tmp_path, name, img, **kw):
    path = tmp_path / name
    img.save(path, **kw)
    return path


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P", "LA", "1", "I;16"])
def test_convertible_modes_become_rgb(tmp_path, mode):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        arr = (rng.integers(0, 65536, size=(20, 30))).astype(np.uint16)
        img = Image.fromarray(arr)
        name = "img16.png"
    else:
        img = Image.fromarray(rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)).convert(mode)
        name = "img.tiff" if mode == "CMYK" else "img.png"
    path = _save(tmp_path, name, img)
    out = load_rgb(path)
    assert out.mode == "RGB" and out.size == (30, 20)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    arr = np.full((8, 8), 32768, dtype=np.uint16)  # half of the 16-bit range
    path = _save(tmp_path, "half.png", Image.fromarray(arr))
    rgb = np.asarray(load_rgb(path))
    assert np.all(np.abs(rgb.astype(int) - 128) <= 1)


def test_transparent_pixels_become_mean_grey(tmp_path):
    arr = np.zeros((4, 4, 4), dtype=np.uint8)  # fully transparent black
    path = _save(tmp_path, "clear.png", Image.fromarray(arr))
    assert tuple(np.asarray(load_rgb(path))[0, 0]) == (124, 116, 104)


def test_palette_with_transparency(tmp_path):
    img = Image.new("P", (6, 6), 0)
    img.putpalette([255, 0, 0] + [0, 0, 255] * 255)
    path = _save(tmp_path, "pal.png", img, transparency=0)
    assert tuple(np.asarray(load_rgb(path))[0, 0]) == (124, 116, 104)


def test_tiny_image_is_upscaled_to_the_crop(tmp_path):
    path = _save(tmp_path, "tiny.png", Image.new("RGB", (3, 2), (10, 20, 30)))
    out = preprocess_uint8(path, 32, 36)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert tuple(out[16, 16]) == (10, 20, 30)


def _bilinear_weights(in_size: int, out_size: int) -> np.ndarray:
    """Antialiased bilinear resampling as a dense (out, in) float64 matrix, from the definition:
    a triangle filter stretched by the downscaling factor, centred on each output pixel."""
    scale = in_size / out_size
    stretch = max(scale, 1.0)
    centres = (np.arange(out_size) + 0.5) * scale
    sources = np.arange(in_size) + 0.5
    w = np.clip(1 - np.abs(sources[None, :] - centres[:, None]) / stretch, 0, None)
    return w / w.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("size", [(50, 73), (73, 50), (300, 41), (12, 9), (3, 400)])
def test_resize_and_crop_matches_whole_resize_then_crop(size):
    """The box resize equals resizing the whole image in float64 and cropping, and torchvision's
    Resize + CenterCrop (PIL, whole image), within 1 level: PIL rounds to uint8 after each of its
    two passes, and takes them in another order for a box."""
    from torchvision.transforms import v2

    from neurofacets.images import resize_geometry

    rng = np.random.default_rng(1)
    width, height = size
    arr = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    ours = np.asarray(resize_and_crop(Image.fromarray(arr), 32, 40)).astype(int)
    new_w, new_h, left, top = resize_geometry(width, height, 32, 40)
    # the whole resize, restricted to the rows and columns of the crop
    rows = _bilinear_weights(height, new_h)[top:top + 32]
    cols = _bilinear_weights(width, new_w)[left:left + 32]
    exact = np.einsum("yh,hwc,xw->yxc", rows, arr.astype(float), cols, optimize=True)
    assert ours.shape == (32, 32, 3)
    assert np.abs(ours - exact).max() <= 1.0
    ref = np.asarray(v2.Compose([v2.Resize(40), v2.CenterCrop(32)])(Image.fromarray(arr))).astype(int)
    assert np.abs(ours - ref).max() <= 1


def test_elongated_image_costs_memory_of_the_crop_not_of_the_resize(tmp_path):
    """1 x 10000 px with resize 256: the whole resize would be 256 x 2,560,000 (2 GB of RSS)."""
    import subprocess
    import sys
    from pathlib import Path

    if not Path("/proc/self/status").exists():
        pytest.skip("peak RSS is read from /proc/self/status (Linux)")
    path = _save(tmp_path, "line.png", Image.new("RGB", (1, 10000), (200, 10, 10)))
    # VmHWM starts afresh at exec, unlike ru_maxrss (which starts from pytest's peak)
    code = (
        "import re\n"
        "from pathlib import Path\n"
        "from neurofacets.images import preprocess_uint8\n"
        "def peak(): return int(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text())[1])\n"
        "before = peak()\n"
        f"out = preprocess_uint8({str(path)!r}, 224, 256)\n"
        "assert out.shape == (224, 224, 3) and (out == (200, 10, 10)).all(), out[0, 0]\n"
        "print(before / 1024, (peak() - before) / 1024)\n"
    )
    before, grown = map(float, subprocess.run([sys.executable, "-c", code], check=True,
                                              capture_output=True, text=True).stdout.split())
    assert before < 200  # a fresh interpreter: the measurement can see growth
    assert grown < 20


def test_corrupt_inputs_raise_image_error_with_reason(tmp_path, rgb_image):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not an image")
    good = rgb_image("full.jpg", size=(64, 64))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    expectations = {empty: "empty", text: "not an image", truncated: "unreadable",
                    garbage: "unreadable|not an image", tmp_path / "missing.png": "not found"}
    for path, reason in expectations.items():
        with pytest.raises(ImageError, match=reason):
            load_rgb(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = _save(tmp_path, "bomb.png", Image.new("L", (1000, 1000)))
    with pytest.raises(ImageError, match="decompression bomb"):
        load_rgb(path, max_pixels=999_999)
    assert load_rgb(path, max_pixels=1_000_000).size == (1000, 1000)
