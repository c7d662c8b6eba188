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
    hierarchy = config.get("semantics", {}).get("hierarchy", "wordnet")
    if hierarchy not in ("wordnet", "none") and not Path(hierarchy).is_file():
        raise ConfigError(f"semantics.hierarchy: {hierarchy!r} is neither wordnet, none nor an existing CSV file")


RUNS_KEYS = ("runs", "runs_build")


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, nested mappings key by key (override wins)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def run_configs(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The configuration of each run listed in ``runs`` (several runs in one call).

    Each entry of ``runs`` holds a run name and what differs from the rest of the
    configuration (e.g. ``model``); it is merged into that rest, section by section. Every
    run's ``compare_runs`` is emptied: the call compares the runs itself.

    Returns
    -------
    dict
        ``{run name: its complete configuration}`` in the order of ``runs``.
    """
    runs = config.get("runs") or []
    base = {key: value for key, value in config.items() if key not in RUNS_KEYS}
    out: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(runs):
        if not isinstance(entry, Mapping) or not entry.get("run"):
            raise ConfigError(f"runs[{i}]: each run needs a name (run: <name>) and what differs, e.g. model")
        nested = [key for key in entry if key in RUNS_KEYS]
        if nested:
            raise ConfigError(f"runs[{i}] ({entry['run']}): {nested} belong at the top level, not in a run")
        name = str(entry["run"])
        if name in out:
            raise ConfigError(f"runs[{i}]: the run name {name!r} is listed twice")
        if name == config.get("run"):
            raise ConfigError(
                f"runs[{i}]: {name!r} is also the top-level run, whose folder holds the comparison; rename one"
            )
        out[name] = {**_merged(base, entry), "compare_runs": []}
    return out
