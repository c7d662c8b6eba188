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


def test_resize_and_crop_matches_torchvision():
    import torch
    from torchvision.transforms import v2

    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, size=(50, 73, 3), dtype=np.uint8))
    ours = np.asarray(resize_and_crop(img, 32, 40))
    ref = v2.Compose([v2.Resize(40), v2.CenterCrop(32)])(img)
    np.testing.assert_array_equal(ours, np.asarray(ref))
    assert torch.is_tensor(torch.from_numpy(ours.copy()))


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
