"""Layer names of torchvision classification models, without importing torch.

Parsing the workflow needs the names of the configured layers (one job per layer), and
nothing else from the model. Building the model for that imports torch, about 0.9 GB of
resident memory in every Snakemake process; on a cluster each job runs two of them (the
submitting one and the one inside the job). So the names of every convolution of every
torchvision classification model are kept in ``layer_names.json`` beside this module,
made from the models themselves by `build_table` (``python -m
neurofacets.layer_table``) and checked against them by the tests. An architecture the table
does not hold, or a torchvision other than the one it was made with, falls back to
building the model on the meta device (`neurofacets.models.layer_names`), which is
right but imports torch.

The table also holds, for every layer, the input sizes (``extraction.image_size``, from
the schema's minimum to its maximum) at which the layer has a map
(`neurofacets.models.input_size_ranges`), so a configuration whose input is too small
for a chosen layer, or not the one size a network is built for (ViT), is refused when the
workflow is parsed (`image_size_problem`) instead of failing inside torch in the
``layers`` and ``extract`` jobs.

This module imports nothing heavy: keep it that way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from .model_spec import canonical_arch
from .models.selection import LAYER_KEYWORDS, is_layer_pattern, pick_layers  # noqa: F401 (re-exported)
from .models.torchvision import torchvision_version
from .pathlike import PathLike

TABLE_PATH = Path(__file__).with_name("layer_names.json")
# Package data this module reads; provenance.script_code_digest hashes it.
PACKAGE_DATA = ("layer_names.json",)


_KIND_GROUP = {"conv": "conv", "channels_last": "mlp", "tokens": "mlp"}


@lru_cache(maxsize=1)
def load_table(path: PathLike = TABLE_PATH) -> dict[str, Any]:
    """The stored table: ``{"torchvision": version, "image_sizes": [low, high], "layers": {arch:
    [name, ...]}, "modules": {arch: [path, ...]}, "kinds": {arch: [kind, ...]}, "input_sizes":
    {arch: [[[first, last], ...], ...]}}``, every analysable layer of every torchvision model."""
    with open(path) as f:
        table = json.load(f)
    keys = ("torchvision", "layers", "modules", "kinds", "image_sizes", "input_sizes")
    if not all(key in table for key in keys) or not isinstance(table["layers"], dict):
        raise ValueError(f"{path} is not a layer table (keys {', '.join(keys)}): python -m neurofacets.layer_table")
    return table


def _table_applies(table: dict[str, Any], arch: str) -> bool:
    """The table holds ``arch`` (a torchvision model, the canonical plain name) for this torchvision."""
    return arch in table["layers"] and table["torchvision"] == torchvision_version()


def in_layer_table(arch: str) -> bool:
    """Whether ``arch``'s layers come from the stored table (a torchvision model of this
    torchvision): parsing then imports no torch."""
    return _table_applies(load_table(), canonical_arch(arch))


def _table_pick(table: dict[str, Any], arch: str, spec: str | Sequence[str]) -> list[str]:
    return pick_layers(table["layers"][arch], arch, spec, modules=table["modules"][arch],
                       groups=[_KIND_GROUP[k] for k in table["kinds"][arch]])


def configured_layer_names(arch: str, spec: str | Sequence[str]) -> list[str]:
    """Names of the configured layers in network order, from the table when it applies.

    Parameters
    ----------
    arch
        ``model.arch`` (any family: `neurofacets.model_spec`; only torchvision models are
        in the table, the others are built on the meta device, which imports torch).
    spec
        ``model.layers`` (`pick_layers`).
    """
    arch = canonical_arch(arch)
    table = load_table()
    if _table_applies(table, arch):
        return _table_pick(table, arch, spec)
    from .models import layer_names  # not in the table: build the model (imports torch)

    return layer_names(arch, spec)


def _sizes_text(ranges: Sequence[Sequence[int]]) -> str:
    """``[(16, 31), (64, 1024)]`` -> ``16 to 31 or 64 to 1024``; one size as itself."""
    return " or ".join(str(a) if a == b else f"{a} to {b}" for a, b in ranges)


def _intersect(first: Sequence[Sequence[int]], second: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """The sizes in both lists of inclusive ranges, as ranges."""
    out = []
    for a, b in first:
        for c, d in second:
            lo, hi = max(a, c), min(b, d)
            if lo <= hi:
                out.append((lo, hi))
    return sorted(out)


def image_size_problem(arch: str, layers: Sequence[str], image_size: int) -> str | None:
    """Why ``image_size`` does not work for the chosen ``layers`` of ``arch``, or None.

    A layer works at a size when the network, fed a square input of that size, reaches it
    and gives it a non-empty map (what the ``layers`` and ``extract`` jobs need). The sizes
    come from the stored table (no torch) when it applies, else from the network built on
    the meta device (`neurofacets.models.layers_with_a_map`).

    Parameters
    ----------
    arch
        ``model.arch``.
    layers
        The configured layer names (`configured_layer_names`).
    image_size
        ``extraction.image_size``.

    Returns
    -------
    str or None
        One line starting with the key to change (``extraction.image_size`` or
        ``model.layers``) and saying which sizes work; None when every layer works.
    """
    arch = canonical_arch(arch)
    table = load_table()
    low, high = table["image_sizes"]
    if _table_applies(table, arch):
        by_name = dict(zip(table["layers"][arch], table["input_sizes"][arch]))
        ranges = {name: [tuple(r) for r in by_name[name]] for name in layers}
        if all(any(a <= image_size <= b for a, b in ranges[name]) for name in layers):
            return None
    else:
        from .models import input_size_ranges, layers_with_a_map, meta_model, select_layers

        model = meta_model(arch).to("meta").eval()
        if layers_with_a_map(model, select_layers(model, arch, list(layers)), image_size) == set(layers):
            return None
        ranges = input_size_ranges(arch, low, high, list(layers))
    never = [name for name in layers if not ranges[name]]
    if never:
        return (f"model.layers: {arch}'s {', '.join(never)} get no map at any extraction.image_size from "
                f"{low} to {high} (the network refuses every such input before them, or does not run them "
                "in eval mode, e.g. an auxiliary classifier); choose other layers")
    failing = [name for name in layers if not any(a <= image_size <= b for a, b in ranges[name])]
    which = f"{arch}'s {failing[0]}" + (f" (and {len(failing) - 1} more of the chosen layers)" if len(failing) > 1 else "")
    allowed = [(low, high)]
    for name in layers:
        allowed = _intersect(allowed, ranges[name])
    if not allowed:
        return (f"extraction.image_size: no size from {low} to {high} gives every chosen layer of {arch} a map "
                f"({'; '.join(f'{name}: {_sizes_text(ranges[name])}' for name in layers)}); choose other layers")
    if len(allowed) == 1 and allowed[0][1] == high and image_size < allowed[0][0]:
        return (f"extraction.image_size: {image_size} is too small for {which}: the network's maps shrink to "
                f"0 x 0 before or at it; the smallest size is {allowed[0][0]}")
    if len(allowed) == 1 and allowed[0][0] == allowed[0][1]:
        return (f"extraction.image_size: {image_size} does not fit {which}: {arch} runs it only at image_size "
                f"{allowed[0][0]} (the size the network is built for); set extraction.image_size: {allowed[0][0]}")
    return (f"extraction.image_size: {image_size} does not fit {which}: {arch} runs it only at image_size "
            f"{_sizes_text(allowed)} (the sizes the network is built for); set extraction.image_size to one of them")


def build_table() -> dict[str, Any]:
    """Every analysable layer (name, module path, kind) of every installed torchvision
    classification model (each checked by `neurofacets.models.checks.planning_problem`:
    parsing with the table runs no network), and the input sizes at which each has a map, from the schema's
    minimum to its maximum of ``extraction.image_size`` (stored as ``image_sizes``).
    """
    import torchvision

    from .config import image_size_bounds
    from .models import input_size_ranges, layer_records

    archs = sorted(torchvision.models.list_models(module=torchvision.models))
    low, high = image_size_bounds()
    records = {arch: layer_records(arch) for arch in archs}
    from .models.checks import planning_problem, token_prefixes
    from .models import meta_model, model_source

    for arch in archs:  # what check_config checks for the networks outside the table
        problem = planning_problem(arch, tuple(r[0] for r in records[arch]),
                                   model_source(arch).default_input_size(meta_model(arch)))
        if problem:
            raise RuntimeError(f"the layer table cannot hold {arch}: {problem}")
        tokens = tuple(path for _, path, kind in records[arch] if kind == "tokens")
        if tokens:  # the jobs take the prefix tokens of a table network from its attributes
            declared = model_source(arch).prefix_tokens(meta_model(arch))
            found = token_prefixes(arch, tokens, declared)
            if set(found.values()) != {declared}:
                raise RuntimeError(f"the layer table cannot hold {arch}: its token layouts {found} are not "
                                   f"the {declared} prefix tokens its attributes say")
    sizes = {}
    for arch in archs:
        ranges = input_size_ranges(arch, low, high, "all")
        sizes[arch] = [[list(r) for r in ranges[name]] for name, _, _ in records[arch]]
    return {"torchvision": torchvision_version(), "image_sizes": [low, high],
            "layers": {arch: [r[0] for r in rec] for arch, rec in records.items()},
            "modules": {arch: [r[1] for r in rec] for arch, rec in records.items()},
            "kinds": {arch: [r[2] for r in rec] for arch, rec in records.items()},
            "input_sizes": sizes}


def write_table(path: PathLike = TABLE_PATH) -> None:
    """Write `build_table` to ``path`` (one architecture per line)."""
    table = build_table()

    def block(key: str, separators: tuple[str, str] = (", ", ": ")) -> str:
        lines = [f"  {json.dumps(arch)}: {json.dumps(value, separators=separators)}"
                 for arch, value in table[key].items()]
        return f'"{key}": {{\n' + ",\n".join(lines) + "\n}"

    text = (
        "{\n"
        f'"torchvision": {json.dumps(table["torchvision"])},\n'
        f'"image_sizes": {json.dumps(table["image_sizes"])},\n'
        + block("layers") + ",\n" + block("modules") + ",\n" + block("kinds") + ",\n"
        + block("input_sizes", (",", ":")) + "\n}\n"
    )
    Path(path).write_text(text)


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore", FutureWarning)  # googlenet/inception init notices
    write_table()
    print(f"wrote {TABLE_PATH}")
