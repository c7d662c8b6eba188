"""``model.layers`` matched against a network's layers: keywords, names and name patterns.

Shared by the stored layer table (`neurofacets.layer_table`, no torch) and the built
network (`neurofacets.models.network`); it imports neither.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fnmatch import fnmatchcase

#: ``model.layers`` keywords and the layer groups they select.
LAYER_KEYWORDS = {"conv": ("conv",), "mlp": ("mlp",), "all": ("conv", "mlp")}
_PATTERN = re.compile(r"[*?\[]")


def is_layer_pattern(item: str) -> bool:
    """Whether a ``model.layers`` entry is a name pattern (holds ``*``, ``?`` or ``[``)."""
    return bool(_PATTERN.search(item))


def pick_layers(names: Sequence[str], arch: str, spec: str | Sequence[str], *,
                modules: Sequence[str] | None = None, groups: Sequence[str] | None = None) -> list[str]:
    """The layers the config selects, in network order.

    Parameters
    ----------
    names
        Every layer name of ``arch`` in network order.
    arch
        Architecture name, for the error message.
    spec
        ``model.layers``: ``"conv"`` (every convolution), ``"mlp"`` (every MLP hidden
        activation), ``"all"``, a name pattern, or a list of layer names and patterns.
        A pattern (``fnmatch``: ``*``, ``?``, ``[...]``) matches a layer's name or its module
        path (``blocks.*.mlp.act`` or ``blocks-*-mlp-act``).
    modules, groups
        Each layer's module path and group (``conv`` / ``mlp``); default: the names, ``conv``.

    Raises
    ------
    ValueError
        Naming the entries that select nothing, and the layers ``arch`` has.
    """
    modules = list(names) if modules is None else list(modules)
    groups = ["conv"] * len(names) if groups is None else list(groups)
    if isinstance(spec, str):
        if spec not in LAYER_KEYWORDS and not is_layer_pattern(spec):
            raise ValueError(f"model.layers: {spec!r} is neither 'conv', 'mlp', 'all', a name pattern "
                             "(with * ? or [) nor a list of layer names")
        items = [spec]
    else:
        items = list(spec)
    chosen: set[str] = set()
    unknown = []
    for item in items:
        if isinstance(spec, str) and item in LAYER_KEYWORDS:
            hit = [n for n, g in zip(names, groups) if g in LAYER_KEYWORDS[item]]
            if not hit:
                have = sorted(set(groups))
                raise ValueError(f"model.layers: {arch} has no {item} layers (it has {', '.join(have) or 'none'}; "
                                 "mlp = the hidden units of transformer / ConvNeXt MLP blocks)")
        elif is_layer_pattern(item):
            hit = [n for n, m in zip(names, modules) if fnmatchcase(n, item) or fnmatchcase(m, item)]
            if not hit:
                raise ValueError(f"model.layers: the pattern {item!r} matches no layer of {arch} (matched against "
                                 f"names and module paths, e.g. {', '.join(_examples(names, modules))})")
        elif item in names:
            hit = [item]
        else:
            unknown.append(item)
            hit = []
        chosen.update(hit)
    if unknown:
        raise ValueError(f"model.layers: {unknown} are not layers of {arch}; it has {list(names)}")
    return [name for name in names if name in chosen]


def _examples(names: Sequence[str], modules: Sequence[str]) -> list[str]:
    picks = sorted({0, len(names) // 2, len(names) - 1}) if names else []
    return [f"{names[i]} ({modules[i]})" if names[i] != modules[i] else names[i] for i in picks]
