"""Provenance attributes carried by every store and table the pipeline writes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__


def config_digest(config: Mapping[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of a configuration, independent of key order."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path: str | Path) -> str:
    """SHA-256 (first 16 hex digits) of a file's bytes, e.g. the dataset's images.csv."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def code_digest(*modules: str) -> str:
    """Digest of the source of package modules (names relative to ``neurofacets``).

    Snakemake reruns a ``script:`` rule when its script changes, not when the package it
    calls changes; rules put this digest into their ``params:`` so that a change of the
    code they depend on triggers a rerun.
    """
    root = Path(__file__).parent
    h = hashlib.sha256(__version__.encode())
    for name in sorted(modules):
        path = root.joinpath(*name.split(".")).with_suffix(".py")
        if not path.exists():
            path = root.joinpath(*name.split("."), "__init__.py")
        h.update(name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def provenance_attrs(
    config: Mapping[str, Any] | None = None,
    *,
    dataset_digest: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Attributes to attach to a store: config digest, model, weights, versions, time.

    Parameters
    ----------
    config
        The run's configuration (the whole Snakemake config); its digest and the model
        architecture and weights source are recorded.
    dataset_digest
        Digest of the dataset table (``file_digest(images.csv)``).
    **extra
        Further JSON-serialisable attributes (e.g. ``layer="conv1_1"``).
    """
    attrs: dict[str, Any] = {
        "neurofacets_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if config is not None:
        attrs["config_digest"] = config_digest(config)
        model = config.get("model", {})
        attrs["model"] = model.get("arch")
        attrs["weights"] = model.get("weights")
    if dataset_digest is not None:
        attrs["dataset_digest"] = dataset_digest
    attrs.update(extra)
    return json.loads(json.dumps(attrs, default=str))
