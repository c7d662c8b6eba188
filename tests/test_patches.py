"""Receptive-field patches: geometry, cutting with padding, the patch store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr

from neurofacets.patches import (
    LAYOUTS,
    MEAN_GREY,
    LayerGeometry,
    PatchReader,
    build_patches,
    choose_layout,
    cut_patch,
    read_neuron_patches,
    receptive_field_box,
)
from neurofacets.topk import TopK, write_topk

SIZE = 224
# VGG16 at 224 px: (layer, channels, map side, rf, jump, start), from the common brief; the
# stores below keep the geometry but only 6 neurons, so the tests stay fast
VGG16 = {
    "conv1_1": (6, 224, 3, 1, 0.0),
    "conv3_1": (6, 56, 24, 4, 1.5),
    "conv4_3": (6, 28, 92, 8, 3.5),
    "conv5_3": (6, 14, 196, 16, 7.5),
}


def position_image(image_id: int) -> np.ndarray:
    """Synthetic preprocessed image whose pixel values say where they are.

    R = row, G = column (both < 224), B = 200 + image_id (never the fill's 104), so a patch
    pixel tells which image pixel it came from, or that it is fill.
    """
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    blue = np.full((SIZE, SIZE), 200 + image_id)
    return np.stack([rows, cols, blue], axis=-1).astype(np.uint8)


def hand_crop(image: np.ndarray, top: int, left: int, rf: int) -> np.ndarray:
    """The box pixel by pixel: image value where inside, the mean grey where outside."""
    out = np.empty((rf, rf, 3), dtype=np.uint8)
    for i in range(rf):
        for j in range(rf):
            y, x = top + i, left + j
            inside = 0 <= y < image.shape[0] and 0 <= x < image.shape[1]
            out[i, j] = image[y, x] if inside else MEAN_GREY
    return out


def test_mean_grey_is_the_imagenet_mean():
    assert MEAN_GREY == tuple(int(round(v * 255)) for v in (0.485, 0.456, 0.406))


@pytest.mark.parametrize(
    "layer, r, c, expected",
    [
        # top-left = centre - (rf - 1) / 2 with centre = start + r * jump, worked by hand
        ("conv1_1", 0, 0, (-1, -1, 2, 2)),
        ("conv1_1", 223, 5, (222, 4, 225, 7)),
        ("conv3_1", 0, 55, (-10, 210, 14, 234)),  # 1.5 - 11.5 ; 1.5 + 220 - 11.5
        ("conv4_3", 14, 14, (70, 70, 162, 162)),  # 3.5 + 112 - 45.5
        ("conv5_3", 13, 0, (118, -90, 314, 106)),  # 7.5 + 208 - 97.5 ; 7.5 - 97.5
    ],
)
def test_receptive_field_box_by_hand(layer, r, c, expected):
    _, _, rf, jump, start = VGG16[layer]
    assert receptive_field_box(r, c, rf, jump, start) == expected


def test_receptive_field_box_rounds_halves_up_and_vectorises():
    # centre 1.0, rf 2: top-left 0.5 -> 1 (half up); centre 0.25, rf 2: -0.25 -> 0
    assert receptive_field_box(1, 0, 2, 1.0, 0.0)[:2] == (1, 0)
    assert receptive_field_box(0, 0, 2, 1.0, 0.25)[:2] == (0, 0)
    top, left, bottom, right = receptive_field_box(np.array([0, 1, 2]), np.array([2, 1, 0]), 10, 2, 0.5)
    assert top.tolist() == [-4, -2, 0] and left.tolist() == [0, -2, -4]
    assert (bottom - top).tolist() == [10, 10, 10] and (right - left).tolist() == [10, 10, 10]


def test_receptive_field_box_rejects_bad_geometry():
    with pytest.raises(ValueError, match="rf"):
        receptive_field_box(0, 0, 0, 1, 0)
    with pytest.raises(ValueError, match="jump"):
        receptive_field_box(0, 0, 3, 0, 0)


@pytest.mark.parametrize("top, left, rf", [(-1, -1, 3), (100, 200, 40), (-90, 118, 196), (0, 0, 224), (-5, 3, 7)])
def test_cut_patch_equals_hand_crop(top, left, rf):
    image = position_image(3)
    assert np.array_equal(cut_patch(image, top, left, rf), hand_crop(image, top, left, rf))


def test_cut_patch_refuses_a_box_outside_the_image():
    with pytest.raises(ValueError, match="overlap"):
        cut_patch(position_image(0), 224, 0, 3)


# ---------------------------------------------------------------------------- the store


def map_units(side: int) -> list[tuple[int, int]]:
    """Corners, edge midpoints and the centre of a side x side map."""
    last, mid = side - 1, side // 2
    return [(0, 0), (0, last), (last, 0), (last, last), (0, mid), (mid, 0), (last, mid), (mid, last), (mid, mid)]


def write_inputs(tmp_path, layer: str, k: int, n_counted: list[int]):
    """A top-k store whose neuron n, rank i sits on unit map_units[(n + i) % 9] of image 7n + i."""
    channels, side, rf, jump, start = VGG16[layer]
    units = map_units(side)
    image_id = np.full((channels, k), -1, dtype=np.int64)
    argmax = np.zeros((channels, k), dtype=np.int32)
    counts = np.resize(np.asarray(n_counted), channels)
    for n in range(channels):
        for i in range(counts[n]):
            r, c = units[(n + i) % len(units)]
            image_id[n, i] = (7 * n + i) % 40  # images shared between neurons
            argmax[n, i] = r * side + c
    value = np.where(image_id >= 0, 1.0, 0.0).astype(np.float32)  # counted entries are > 0
    topk = TopK(layer, image_id, value, argmax, counts.astype(np.int32), side, side, n_images=40)
    write_topk(tmp_path / "topk.zarr", topk, top_k=k)
    pd.DataFrame(
        [dict(layer=layer, module="features.x", channels=channels, height=side, width=side, rf=rf, jump=jump, start=start)]
    ).to_csv(tmp_path / "layers.csv", index=False)
    pd.DataFrame({"image_id": range(40), "path": [f"img{i}.png" for i in range(40)]}).to_csv(
        tmp_path / "images.csv", index=False
    )
    return image_id, argmax, counts, LayerGeometry(layer, "features.0", channels, side, side, rf, jump, start)


def build(tmp_path, layer, layout="patches", **kwargs):
    calls: list[int] = []

    def load(image_id: int) -> np.ndarray:
        calls.append(image_id)
        return position_image(image_id)

    out = tmp_path / f"{layer}-{layout}.zarr"
    build_patches(
        tmp_path / "topk.zarr", tmp_path / "layers.csv", tmp_path / "images.csv", layer, out,
        image_size=SIZE, resize=256, load_image=load, layout=layout, **kwargs,
    )
    return out, calls


@pytest.mark.parametrize("layer", ["conv1_1", "conv3_1", "conv5_3"])
def test_store_patches_equal_hand_crops_at_corners_edges_centre(tmp_path, layer):
    image_id, argmax, counts, geo = write_inputs(tmp_path, layer, k=9, n_counted=[9, 4, 0, 9])
    out, calls = build(tmp_path, layer, threads=2)
    store = zarr.open_group(str(out), mode="r")
    assert store["patches"].shape == (geo.channels, 9, geo.rf, geo.rf, 3)
    assert store["n_counted"][:].tolist() == counts.tolist()
    # every distinct image decoded exactly once
    assert sorted(calls) == sorted(set(image_id[image_id >= 0].tolist()))
    checked = 0
    for n in range(geo.channels):
        patches = store["patches"][n]
        for i in range(9):
            if i >= counts[n]:
                assert not patches[i].any() and store["image_id"][n, i] == -1
                continue
            r, c = divmod(int(argmax[n, i]), geo.width)
            # independent of receptive_field_box: the centre minus half the field, by hand
            top = int(geo.start + r * geo.jump - (geo.rf - 1) / 2)
            left = int(geo.start + c * geo.jump - (geo.rf - 1) / 2)
            assert top == geo.start + r * geo.jump - (geo.rf - 1) / 2  # integer for VGG16
            expected = hand_crop(position_image(int(image_id[n, i])), top, left, geo.rf)
            assert np.array_equal(patches[i], expected), (layer, n, i, r, c)
            assert store["top_left"][n, i].tolist() == [top, left]
            checked += 1
    assert checked >= 20
    assert np.array_equal(read_neuron_patches(out, 1), store["patches"][1, :4])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_padding_is_present_where_the_box_leaves_the_image(tmp_path, layout):
    _, _, _, geo = write_inputs(tmp_path, "conv5_3", k=9, n_counted=[9])
    out, _ = build(tmp_path, "conv5_3", layout=layout)
    corner = PatchReader(out).neuron(0)[0]  # unit (0, 0): box from (-90, -90)
    assert np.all(corner[:90, :] == MEAN_GREY) and np.all(corner[:, :90] == MEAN_GREY)
    assert corner[90, 90].tolist() == [0, 0, 200]  # image pixel (0, 0) of image 0


@pytest.mark.parametrize("layer", ["conv1_1", "conv3_1", "conv5_3"])
def test_images_layout_reads_byte_identical_patches(tmp_path, layer):
    image_id, _, counts, geo = write_inputs(tmp_path, layer, k=9, n_counted=[9, 4, 0, 9])
    patches_out, _ = build(tmp_path, layer, layout="patches")
    images_out, calls = build(tmp_path, layer, layout="images")
    a, b = PatchReader(patches_out), PatchReader(images_out)
    assert (a.layout, b.layout) == ("patches", "images")
    assert (a.k, a.rf, a.n_neurons) == (b.k, b.rf, b.n_neurons) == (9, geo.rf, geo.channels)
    for n in range(geo.channels):
        assert np.array_equal(a.neuron(n), b.neuron(n)), n
        assert np.array_equal(a.neuron(n, 2), b.neuron(n, 2))
    assert np.array_equal(a.top(slice(0, 6), 5), b.top([0, 1, 2, 3, 4, 5], 5))
    assert not b.top([2], 3).any()  # no counted patch: zeros
    # the images layout holds each needed image once, decoded once, in ascending id order
    store = zarr.open_group(str(images_out), mode="r")
    needed = np.unique(image_id[image_id >= 0])
    assert store["images"].shape == (len(needed), SIZE, SIZE, 3) and "patches" not in store
    assert np.array_equal(store["images"][3], position_image(int(needed[3])))
    assert sorted(calls) == needed.tolist()
    assert np.array_equal(read_neuron_patches(images_out, 1), a.neuron(1))


def test_auto_layout_takes_the_one_of_fewer_raw_bytes(tmp_path):
    # 4 neurons of conv5_3: 30 patches of 196 px (3.5 MB) against 40 images of 224 px (6 MB)
    assert choose_layout(np.array([9, 4, 0, 9]), 196, 40, SIZE) == "patches"
    assert choose_layout(np.array([100] * 512), 196, 288, SIZE) == "images"
    assert choose_layout(np.array([100] * 64), 3, 288, SIZE) == "patches"
    write_inputs(tmp_path, "conv5_3", k=9, n_counted=[9])  # 512 neurons x 9 patches: images win
    out, _ = build(tmp_path, "conv5_3", layout="auto")
    assert PatchReader(out).layout == "images"
    with pytest.raises(ValueError, match="layout must be"):
        build(tmp_path, "conv5_3", layout="tiles")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_grouped_decoding_gives_the_same_store(tmp_path, layout):
    write_inputs(tmp_path, "conv3_1", k=9, n_counted=[9, 3])
    whole, calls_whole = build(tmp_path, "conv3_1", layout=layout)
    grouped = tmp_path / "grouped.zarr"
    calls: list[int] = []

    def load(i: int) -> np.ndarray:
        calls.append(i)
        return position_image(i)

    # room for 3 decoded images at a time: 40 images in 14 groups
    build_patches(
        tmp_path / "topk.zarr", tmp_path / "layers.csv", tmp_path / "images.csv", "conv3_1", grouped,
        image_size=SIZE, resize=256, load_image=load, cache_bytes=3 * SIZE * SIZE * 3, layout=layout,
    )
    a, b = zarr.open_group(str(whole), mode="r"), zarr.open_group(str(grouped), mode="r")
    arrays = ("patches",) if layout == "patches" else ("images", "image_index")
    for name in (*arrays, "n_counted", "image_id", "top_left"):
        assert np.array_equal(a[name][:], b[name][:]), name
    assert sorted(calls) == sorted(calls_whole) and len(calls) == len(set(calls))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".patches-scratch")]


def test_store_attributes_and_errors(tmp_path):
    write_inputs(tmp_path, "conv1_1", k=9, n_counted=[2])
    out, _ = build(tmp_path, "conv1_1")
    attrs = dict(zarr.open_group(str(out), mode="r").attrs)
    assert attrs["rf"] == 3 and attrs["k"] == 9 and attrs["fill_rgb"] == list(MEAN_GREY)
    assert "dataset_digest" in attrs and "neurofacets_version" in attrs
    with pytest.raises(ValueError, match="expected uint8"):
        build_patches(
            tmp_path / "topk.zarr", tmp_path / "layers.csv", tmp_path / "images.csv", "conv1_1", tmp_path / "bad.zarr",
            image_size=SIZE, resize=256, load_image=lambda i: np.zeros((32, 32, 3), np.uint8),
        )
    assert not (tmp_path / "bad.zarr").exists()
    with pytest.raises(KeyError, match="conv9_9"):
        build(tmp_path, "conv9_9")
    table = pd.read_csv(tmp_path / "layers.csv")
    table["height"] = table["width"] = 112  # a layers.csv that does not fit the top-k store
    table.to_csv(tmp_path / "layers.csv", index=False)
    with pytest.raises(ValueError, match="map size"):
        build(tmp_path, "conv1_1")


def test_image_loader_refuses_a_file_changed_since_extraction(tmp_path):
    """The content key recorded at extraction must still match the file: else no patch of another picture."""
    import pandas as pd
    from PIL import Image

    from neurofacets.images import content_key
    from neurofacets.patches import image_loader

    path = tmp_path / "a.png"
    Image.fromarray(np.full((20, 20, 3), 7, np.uint8)).save(path)
    pd.DataFrame({"image_id": [0], "path": [str(path)]}).to_csv(tmp_path / "images.csv", index=False)
    key = content_key(path.read_bytes())
    assert image_loader(tmp_path / "images.csv", 16, 16, {0: key})(0).shape == (16, 16, 3)
    Image.fromarray(np.full((20, 20, 3), 9, np.uint8)).save(path)  # overwritten after extraction
    with pytest.raises(ValueError, match=r"image 0 \(.*a.png\) has changed since the activations were extracted"):
        image_loader(tmp_path / "images.csv", 16, 16, {0: key})(0)
