"""Layer names of torchvision classification models, without importing torch.

Parsing the workflow needs the names of the configured layers (one job per layer), and
nothing else from the model. Building the model for that imports torch, about 0.9 GB of
resident memory in every Snakemake process; on a cluster each job runs two of them (the
submitting one and the one inside the job). So the names of every convolution of every
torchvision classification model are kept in ``layer_names.json`` beside this module,
made from the models themselves by :func:`build_table` (``python -m
neurofacets.layer_table``) and checked against them by the tests. An architecture the table
does not hold, or a torchvision other than the one it was made with, falls back to
building the model on the meta device (:func:`neurofacets.models.layer_names`), which is
right but imports torch.

This module imports nothing heavy: keep it that way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

TABLE_PATH = Path(__file__).with_name("layer_names.json")
# Package data this module reads; provenance.script_code_digest hashes it.
PACKAGE_DATA = ("layer_names.json",)


def pick_layers(names: Sequence[str], arch: str, spec: str | Sequence[str]) -> list[str]:
    """The layers the config selects, in network order (``"conv"`` = all of them).

    Parameters
    ----------
    names
        Every layer name of ``arch`` in network order.
    arch
        Architecture name, for the error message.
    spec
        ``model.layers``: ``"conv"`` or a list of layer names.

    Raises
    ------
    ValueError
        Naming the layers ``arch`` does not have, and the ones it has.
    """
    if isinstance(spec, str):
        if spec != "conv":
            raise ValueError(f"model.layers: {spec!r} is neither 'conv' nor a list of layer names")
        return list(names)
    unknown = [name for name in spec if name not in names]
    if unknown:
        raise ValueError(f"model.layers: {unknown} are not layers of {arch}; it has {list(names)}")
    wanted = set(spec)
    return [name for name in names if name in wanted]


def _torchvision_version() -> str | None:
    try:
        return version("torchvision")
    except PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def load_table(path: str | Path = TABLE_PATH) -> dict[str, Any]:
    """The stored table: ``{"torchvision": version, "layers": {arch: [name, ...]}}``."""
    with open(path) as f:
        table = json.load(f)
    if not isinstance(table.get("layers"), dict) or "torchvision" not in table:
        raise ValueError(f"{path} is not a layer table (keys 'torchvision' and 'layers')")
    return table


def configured_layer_names(arch: str, spec: str | Sequence[str]) -> list[str]:
    """Names of the configured layers in network order, from the table when it applies.

    Parameters
    ----------
    arch
        ``model.arch`` (a torchvision classification model name).
    spec
        ``model.layers``: ``"conv"`` or a list of layer names.
    """
    table = load_table()
    if arch in table["layers"] and table["torchvision"] == _torchvision_version():
        return pick_layers(table["layers"][arch], arch, spec)
    from .models import layer_names  # not in the table: build the model (imports torch)

    return layer_names(arch, spec)


def build_table() -> dict[str, Any]:
    """Every conv layer name of every installed torchvision classification model."""
    import torchvision

    from .models import layer_names

    archs = sorted(torchvision.models.list_models(module=torchvision.models))
    return {
        "torchvision": _torchvision_version(),
        "layers": {arch: layer_names(arch, "conv") for arch in archs},
    }


def write_table(path: str | Path = TABLE_PATH) -> None:
    """Write :func:`build_table` to ``path`` (one architecture per line)."""
    table = build_table()
    lines = [f"  {json.dumps(arch)}: {json.dumps(names)}" for arch, names in table["layers"].items()]
    text = (
        "{\n"
        f'"torchvision": {json.dumps(table["torchvision"])},\n'
        '"layers": {\n' + ",\n".join(lines) + "\n}\n}\n"
    )
    Path(path).write_text(text)


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore", FutureWarning)  # googlenet/inception init notices
    write_table()
    print(f"wrote {TABLE_PATH}")
