"""Which run of a multi-run call is another run's untrained control (docs/controls.md).

A run's *control* is the run of the same call that differs from it only in its weights, and
whose weights are ``random:<seed>``: the same architecture, layers, photos and settings,
untrained. Its numbers beside the run's say what of each number training made
(`neurofacets.beside_control`).

The pairing is automatic: a trained run's control is the one ``random:<seed>`` run of the call
with the same ``model.arch``, if the two differ only where a number cannot move
(`MAY_DIFFER`; otherwise a warning names the keys and the run has no control). A run entry
may name its control instead (``control: <run name>``: needed when two untrained runs of that
architecture are listed) or opt out (``control: none``); a named control that differs
elsewhere is refused, naming the runs and the keys, as are an ambiguous pairing and a control
that is not ``random:<seed>``.

This module is imported while Snakemake parses the workflow: plain Python only.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

from .config import ConfigError

#: The key of a ``runs:`` entry that names its control (or ``none``).
CONTROL_KEY = "control"
#: ``control: none``: the run has no control, even when the call lists an untrained twin.
NO_CONTROL = "none"
#: Config keys (dotted) in which a run and its control may differ: the name, the weights, and
#: what only draws (figures, patches and ICA pictures) or compares.
MAY_DIFFER = ("run", "model.weights", "compare_runs", "figures", "visualize")

_RANDOM = re.compile(r"^random:[0-9]+$")


def is_untrained(run_config: Mapping[str, Any]) -> bool:
    """Whether a run's weights are ``random:<seed>`` (an untrained network)."""
    return bool(_RANDOM.match(str(run_config["model"]["weights"])))


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf of a nested mapping."""
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def differing_keys(run_config: Mapping[str, Any], control_config: Mapping[str, Any]) -> list[str]:
    """The dotted config keys in which two runs differ, less `MAY_DIFFER` (and below them)."""
    a, b = dict(_leaves(run_config)), dict(_leaves(control_config))
    differ = sorted(key for key in a.keys() | b.keys() if a.get(key, KeyError) != b.get(key, KeyError))
    return [key for key in differ if not any(key == d or key.startswith(d + ".") for d in MAY_DIFFER)]


def control_pairs(entries: list[Mapping[str, Any]], runs: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``{run: its control}`` for every run of the call that has one, in the order of ``runs``.

    Parameters
    ----------
    entries
        The config's ``runs:`` list as written (for the ``control`` keys).
    runs
        ``{run name: its complete configuration}`` (`neurofacets.config.run_configs`).

    Raises
    ------
    ConfigError
        Naming the entry and the runs: a control that is not a run of the call, not
        ``random:<seed>`` or differing from the run in a key outside `MAY_DIFFER`; an
        untrained run given a control; two untrained candidates and
        no ``control:`` to choose between them.
    """
    named = {str(entry["run"]): (i, entry.get(CONTROL_KEY)) for i, entry in enumerate(entries)}
    pairs: dict[str, str] = {}
    for name, config in runs.items():
        i, chosen = named.get(name, (None, None))
        where = f"runs[{i}] ({name})"
        if chosen is not None and not isinstance(chosen, str):
            raise ConfigError(f"{where}: control must be a run name of this call or {NO_CONTROL!r}, got {chosen!r}")
        if is_untrained(config):
            if chosen not in (None, NO_CONTROL):
                raise ConfigError(f"{where}: its weights {config['model']['weights']} are untrained, so it is a "
                                  f"control itself and cannot have one (control: {chosen})")
            continue
        if chosen == NO_CONTROL:
            continue
        named_control = chosen is not None
        if chosen is None:
            arch = config["model"]["arch"]
            candidates = [other for other, c in runs.items() if is_untrained(c) and c["model"]["arch"] == arch]
            if not candidates:
                continue
            if len(candidates) > 1:
                raise ConfigError(
                    f"{where}: the untrained runs {candidates} all have its architecture {arch}; say which one is "
                    f"its control with `control: <run name>` in its entry (or `control: {NO_CONTROL}`)")
            chosen = candidates[0]
        elif chosen not in runs:
            raise ConfigError(f"{where}: control {chosen!r} is not a run of this call; the runs are {list(runs)}")
        elif not is_untrained(runs[chosen]):
            raise ConfigError(f"{where}: control {chosen!r} has weights {runs[chosen]['model']['weights']}; "
                              "a control's weights are random:<seed>")
        differ = differing_keys(config, runs[chosen])
        if differ and named_control:
            raise ConfigError(
                f"{where}: its control {chosen} differs from it in {differ}, not only in model.weights, so their "
                f"numbers would not compare; make them equal, or set `control: {NO_CONTROL}` in its entry")
        if differ:  # an untrained twin that is no control; a call that ran before keeps running
            warnings.warn(f"{where}: the untrained run {chosen} of its architecture differs from it in {differ}, "
                          "so it is not its control (nothing is shown beside it); make them equal, or name it "
                          "with `control:` to be told what else differs", stacklevel=2)
            continue
        pairs[name] = chosen
    return pairs


__all__ = ["CONTROL_KEY", "MAY_DIFFER", "NO_CONTROL", "control_pairs", "differing_keys", "is_untrained"]
