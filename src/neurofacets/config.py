"""Configuration checks that a JSON schema cannot express.

The Snakefile validates ``config/config.yaml`` against ``config/schema.yaml`` (types,
allowed values, unknown keys) and then calls :func:`check_config` for the rules that tie
several keys together. Both stop the run at parse time with a message naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


def labels_path(labels: str | Path, root: str | Path | None) -> Path:
    """A relative ``dataset.labels`` path that does not exist as given is looked up in ``root``."""
    labels = Path(labels)
    if not labels.is_absolute() and not labels.exists() and root is not None:
        return Path(root) / labels
    return labels


def check_config(config: Mapping[str, Any]) -> None:
    """Check relations between configuration keys; raise :class:`ConfigError` if one fails."""
    dataset = config["dataset"]
    fmt = dataset["format"]
    if fmt in ("folder", "csv") and not dataset.get("root"):
        raise ConfigError(f"dataset.root: required when dataset.format is {fmt!r}")
    if fmt == "csv" and not dataset.get("labels"):
        raise ConfigError("dataset.labels: required when dataset.format is 'csv' (a CSV path,label[,class_name])")
    for key in ("root", "labels", "coarse_labels"):
        value = dataset.get(key)
        if value and key == "labels":
            value = str(labels_path(value, dataset.get("root")))
        if value and not Path(value).exists():
            raise ConfigError(f"dataset.{key}: {value!r} does not exist")
    if config.get("analysis", {}).get("level") == "coarse" and not dataset.get("coarse_labels"):
        raise ConfigError("analysis.level: 'coarse' needs dataset.coarse_labels (a CSV class_name,coarse)")
    ex = config["extraction"]
    if ex["resize"] < ex["image_size"]:
        raise ConfigError(
            f"extraction.resize: {ex['resize']} is smaller than extraction.image_size {ex['image_size']}"
        )
    weights = config["model"]["weights"]
    if weights.endswith((".pth", ".pt")) and not Path(weights).exists():
        raise ConfigError(f"model.weights: the file {weights!r} does not exist")
