"""Extraction: hooked max/argmax against a brute-force forward pass, shards, bad images."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import Normalize

from neurofacets.extract import MaxArgmaxHooks, iterate_activations, make_loader
from neurofacets.images import MEAN_RGB, STD_RGB, preprocess_uint8
from neurofacets.models import Layer, build_model, select_layers
from neurofacets.store import read_layer


def brute_force(model: nn.Module, arch: str, layer_names: list[str], x: torch.Tensor):
    """Full post-ReLU maps from an untouched forward pass, reduced with numpy."""
    layers = select_layers(model, arch, layer_names)
    modules = dict(model.named_modules())
    maps = {}
    handles = [modules[layer.hook_path].register_forward_hook(
        lambda _m, _i, out, name=layer.name: maps.__setitem__(name, torch.relu(out).clone()))
        for layer in layers]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    result = {}
    for name, fmap in maps.items():
        flat = fmap.flatten(2).numpy()
        mx = flat.max(axis=2)
        am = np.argmax(flat, axis=2)  # numpy: first occurrence of the maximum
        result[name] = (mx, am)
    return result


def _write_images(folder: Path, n: int, size: int = 40, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 256, size=(size, size + 7 * i % 13, 3), dtype=np.uint8)
        if i == 1:
            arr[:] = 128  # a constant image: ties everywhere in the interior
        path = folder / f"{i:03d}.png"
        Image.fromarray(arr).save(path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("arch,names", [
    ("vgg16", ["conv1_1", "conv2_2", "conv3_3", "conv5_3"]),
    ("vgg11_bn", ["conv1_1", "conv4_2"]),
    ("resnet18", ["conv1", "layer2-0-downsample-0"]),
])
def test_hooked_max_argmax_equal_brute_force(tmp_path, arch, names):
    paths = _write_images(tmp_path, 5)
    model = build_model(arch, seed=1)
    layers = select_layers(model, arch, names)
    loader = make_loader(range(5), paths, image_size=32, resize=36, batch_size=2, workers=0)
    got = {name: ([], []) for name in names}
    ids = []
    for batch_ids, values, skipped, *_ in iterate_activations(model, layers, loader, torch.device("cpu"),
                                                          progress=False):
        assert skipped == []
        ids.extend(batch_ids)
        for name in names:
            got[name][0].append(values[name][0])
            got[name][1].append(values[name][1])
    assert ids == list(range(5))
    x = torch.stack([torch.from_numpy(preprocess_uint8(p, 32, 36)).permute(2, 0, 1) for p in paths])
    normalize = Normalize(MEAN_RGB, STD_RGB)  # torchvision's reference: ToTensor's x / 255, then Normalize
    expected = brute_force(build_model(arch, seed=1), arch, names, normalize(x.float() / 255))
    for name in names:
        mx, am = np.concatenate(got[name][0]), np.concatenate(got[name][1])
        assert mx.dtype == np.float32 and am.dtype == np.int32
        np.testing.assert_allclose(mx, expected[name][0], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(am, expected[name][1])


def test_ties_and_silent_channels_give_first_position():
    # one conv whose three channels see: a constant map (ties), a map with two equal
    # maxima, and an all-negative map (silent after ReLU)
    conv = nn.Conv2d(1, 3, kernel_size=1, bias=True)
    with torch.no_grad():
        conv.weight[:] = torch.tensor([0.0, 1.0, 1.0]).view(3, 1, 1, 1)
        conv.bias[:] = torch.tensor([2.0, 0.0, -10.0])
    model = nn.Sequential(conv)
    hooks = MaxArgmaxHooks(model, [Layer("c", "0", "0")])
    x = torch.tensor([[0.0, 5.0, 1.0], [5.0, 0.0, -1.0]]).view(1, 1, 2, 3)
    with torch.inference_mode():
        mx, am = hooks.run(model, x)["c"]
    assert mx.tolist() == [[2.0, 5.0, 0.0]]
    assert am.tolist() == [[0, 1, 0]]  # constant -> 0; tie at 1 and 3 -> 1; silent -> 0


def test_last_layer_stops_the_forward_pass():
    model = build_model("vgg11", seed=0)
    layers = select_layers(model, "vgg11", ["conv1_1"])
    called = []
    model.classifier.register_forward_hook(lambda *a: called.append(1))
    hooks = MaxArgmaxHooks(model, layers)
    with torch.inference_mode():
        hooks.run(model, torch.zeros(1, 3, 32, 32))
    assert called == []


def _prepared_random_weights(tmp_path):
    from neurofacets.weights import prepare_weights

    path = tmp_path / "weights.pt"
    prepare_weights("random:0", "vgg16", path)
    return path


def test_shard_skips_bad_images_and_holds_every_good_image_once(tmp_path):
    from neurofacets.config import with_defaults
    from neurofacets.datasets import list_folder, write_dataset
    from neurofacets.extract import extract_shard
    from neurofacets.store import open_shard, write_skipped_table

    root = tmp_path / "data"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (20 + i, 24), (40 * i, 0, 0)).save(root / c / f"{i}.png")
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "a" / "1.png")
    good = (root / "a" / "1.png").read_bytes()
    (root / "a" / "1.png").write_bytes(good[: len(good) // 2])  # truncated: fails only on decode
    Image.new("CMYK", (30, 30)).save(root / "b" / "cmyk.jpg")
    Image.fromarray(np.full((9, 9), 40000, dtype=np.uint16)).save(root / "b" / "deep.png")
    tables = tmp_path / "dataset"
    images = write_dataset(list_folder(root), tables / "images.csv", tables / "classes.csv",
                           tables / "skipped.csv", images_per_class=None, shards=2)
    config = {"run": "t", "model": {"arch": "vgg16", "weights": "random:0", "layers": ["conv1_1", "conv2_1"]},
              "extraction": {"image_size": 32, "resize": 32, "batch_size": 3, "shards": 2,
                             "device": "cpu", "precision": "fp32", "workers": 0}}
    weights = _prepared_random_weights(tmp_path)
    shards = [tmp_path / f"shard-{s:03d}.zarr" for s in range(2)]
    for s, path in enumerate(shards):
        extract_shard(with_defaults(config), tables / "images.csv", s, weights, path)
    skipped = write_skipped_table(shards, tmp_path / "skipped.csv")
    assert skipped["path"].str.endswith("a/1.png").tolist() == [True]
    assert "unreadable" in skipped["reason"].iloc[0]
    layer = read_layer(shards, "conv2_1")
    expected_ids = sorted(set(images["image_id"]) - set(skipped["image_id"]))
    assert layer.image_id.tolist() == expected_ids  # every good image exactly once
    assert layer.max.shape == (len(expected_ids), 128) and (layer.height, layer.width) == (16, 16)
    assert np.isfinite(layer.max).all() and (layer.argmax >= 0).all()
    attrs = open_shard(shards[0]).attrs
    assert attrs["weights"] == "random:0" and attrs["layers"] == ["conv1_1", "conv2_1"]
    assert {"config_digest", "dataset_digest", "neurofacets_version", "created"} <= set(attrs)


def test_real_photos_extract_like_brute_force(tmp_path):
    """24 ImageNet photos of varied sizes (some greyscale) through the dataset and extraction."""
    from conftest import shared_data

    from neurofacets.config import with_defaults
    from neurofacets.datasets import list_csv, write_dataset
    from neurofacets.extract import extract_shard

    sample = shared_data("imagenet-sample")
    table = pd.read_csv(sample / "images.csv").iloc[::42].head(24)
    labels = tmp_path / "labels.csv"
    table.rename(columns={"class_index": "label"})[["path", "label", "class_name"]].to_csv(labels, index=False)
    tables = tmp_path / "dataset"
    images = write_dataset(list_csv(labels, sample), tables / "images.csv", tables / "classes.csv",
                           tables / "skipped.csv", images_per_class=None, shards=1)
    assert len(images) == 24 and pd.read_csv(tables / "skipped.csv").empty
    config = {"run": "t", "model": {"arch": "vgg16", "weights": "random:0", "layers": ["conv1_2", "conv3_1"]},
              "extraction": {"image_size": 64, "resize": 72, "batch_size": 8, "shards": 1,
                             "device": "cpu", "precision": "fp32", "workers": 1,
                             "decode": "pil"}}  # the reference below decodes with PIL
    extract_shard(with_defaults(config), tables / "images.csv", 0, _prepared_random_weights(tmp_path), tmp_path / "s.zarr")
    layer = read_layer([tmp_path / "s.zarr"], "conv3_1")
    assert layer.image_id.tolist() == list(range(24))
    x = torch.stack([torch.from_numpy(preprocess_uint8(p, 64, 72)).permute(2, 0, 1) for p in images["path"]])
    normalize = Normalize(MEAN_RGB, STD_RGB)  # torchvision's reference: ToTensor's x / 255, then Normalize
    ref = brute_force(build_model("vgg16", seed=0), "vgg16", ["conv3_1"], normalize(x.float() / 255))
    np.testing.assert_allclose(layer.max, ref["conv3_1"][0], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(layer.argmax, ref["conv3_1"][1])


def test_job_killed_midway_leaves_no_shard(tmp_path):
    """SIGKILL during extraction: the shard path never appears; a rerun writes it whole."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from neurofacets.datasets import list_folder, write_dataset
    from neurofacets.probes import write_probe_dataset

    write_probe_dataset(tmp_path / "probes", images_per_class=20, size=48, seed=0)
    write_dataset(list_folder(tmp_path / "probes"), tmp_path / "images.csv", tmp_path / "classes.csv",
                  tmp_path / "skipped.csv", images_per_class=None, shards=1)
    weights = _prepared_random_weights(tmp_path)
    out = tmp_path / "shard-000.zarr"
    code = (
        "import sys; from neurofacets.config import with_defaults; from neurofacets.extract import extract_shard\n"
        "cfg = {'run': 't', 'model': {'arch': 'vgg16', 'weights': 'random:0', 'layers': 'conv'},\n"
        "       'extraction': {'image_size': 48, 'resize': 48, 'batch_size': 1, 'shards': 1,\n"
        "                      'device': 'cpu', 'precision': 'fp32', 'workers': 0}}\n"
        f"extract_shard(with_defaults(cfg), {str(tmp_path / 'images.csv')!r}, 0, {str(weights)!r}, {str(out)!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".shard-000.zarr.tmp-*")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the 240 images
    assert proc.poll() is None, "extraction finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert read_layer([out], "conv1_1").image_id.tolist() == list(range(240))
    assert not list(tmp_path.glob(".shard-000.zarr.tmp-*"))  # the stale temporary was cleared


def test_bf16_autocast_approximates_fp32(tmp_path):
    """precision: bf16 runs the model under autocast; values stay close to fp32."""
    paths = _write_images(tmp_path, 4)
    model = build_model("vgg11", seed=2)
    layers = select_layers(model, "vgg11", ["conv2_1", "conv4_2"])
    loader = make_loader(range(4), paths, image_size=32, resize=32, batch_size=4, workers=0)
    runs = {}
    for precision in ("fp32", "bf16"):
        ((_, values, *_),) = list(iterate_activations(model, layers, loader, torch.device("cpu"),
                                                     precision=precision, progress=False))
        runs[precision] = values
    for name in ("conv2_1", "conv4_2"):
        fp32, bf16 = runs["fp32"][name][0], runs["bf16"][name][0]
        assert bf16.dtype == np.float32
        scale = np.abs(fp32).max()
        assert np.max(np.abs(fp32 - bf16)) < 0.05 * scale
    with pytest.raises(ValueError, match="precision"):
        next(iterate_activations(model, layers, loader, torch.device("cpu"), precision="fp8"))


@pytest.mark.parametrize("autotune", [False, True])
def test_shard_passes_cudnn_autotune_to_the_forward_loop(tmp_path, monkeypatch, autotune):
    """extraction.cudnn_autotune reaches iterate_activations (default off); the CPU ignores it."""
    import neurofacets.extract as extract
    from neurofacets.config import with_defaults
    from neurofacets.datasets import list_folder, write_dataset

    root = tmp_path / "data"
    for c in ("a", "b"):  # two classes: the dataset stage refuses a single one
        (root / c).mkdir(parents=True)
        _write_images(root / c, 1, size=20)
    tables = tmp_path / "dataset"
    write_dataset(list_folder(root), tables / "images.csv", tables / "classes.csv",
                  tables / "skipped.csv", images_per_class=None, shards=1)
    seen = []
    real = extract.iterate_activations

    def recording(*args, **kwargs):
        seen.append(kwargs.get("autotune"))
        return real(*args, **kwargs)

    monkeypatch.setattr(extract, "iterate_activations", recording)
    ex = {"image_size": 16, "resize": 16, "batch_size": 2, "shards": 1, "device": "cpu", "workers": 0}
    if autotune:
        ex["cudnn_autotune"] = True
    config = with_defaults({"run": "t", "model": {"arch": "vgg16", "weights": "random:0",
                                                  "layers": ["conv1_1"]}, "extraction": ex})
    extract.extract_shard(config, tables / "images.csv", 0, _prepared_random_weights(tmp_path),
                          tmp_path / "s.zarr")
    assert seen == [autotune]
    assert read_layer([tmp_path / "s.zarr"], "conv1_1").image_id.tolist() == [0, 1]
