"""What the analysis assumes of a network, checked on the network itself (any family).

Three probes, each on any ``nn.Module`` with its list of `Layer`:

- `forward_probe`: one forward pass on the meta device (shapes only, no memory) that
  counts how often each analysed module is called and finds the first convolution the image
  meets. A module called more than once per forward pass (a weight-tied or recurrent block, a
  stem applied twice) has no one map to analyse; `planning_problem` refuses it, naming
  the module and the count, as it refuses a first convolution that does not take 3 (RGB)
  channels.
- `detect_token_layouts`: where the patch tokens of each token layer really are. One
  image and four copies that differ from it in one corner pixel each go through the network
  (random weights, CPU, float32); the token that changes most for the top-left corner is the
  first patch token, the one for the top-right corner the last of the first row, and the two
  bottom corners confirm the square grid. Tokens before the first patch are prefix tokens,
  tokens after the last are refused (the rule reads class / register tokens only before
  the patches), and a layout the four corners do not agree on is refused too.
- `required_state_keys`: every parameter and buffer of every module entered before
  the last analysed layer has given its map (BatchNorm and LayerNorm statistics included,
  ``num_batches_tracked`` left out: it changes nothing in eval mode), grouped by module:
  what a checkpoint must hold for the analysed layers to be the checkpoint's
  (`checkpoint_gaps`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from .network import Layer

logger = logging.getLogger(__name__)

#: State-dict entries that change nothing in eval mode: not required from a checkpoint.
OPTIONAL_STATE_SUFFIXES = ("num_batches_tracked",)
#: Seed of the random weights the token-layout probe runs with (the layout does not depend on them).
PROBE_SEED = 0
#: What the probe adds to one corner pixel (in every channel) of a random image.
PROBE_STEP = 4.0


class _Stop(Exception):
    """Raised by a forward hook once every wanted module has run."""


def _layer_modules(layers: Sequence[Layer]) -> set[str]:
    return {layer.hook_path for layer in layers} | {layer.module for layer in layers}


# ------------------------------------------------------------------ calls and the first conv

@dataclass(frozen=True)
class ForwardProbe:
    """What one meta-device forward pass saw.

    ``calls``: each analysed layer's number of calls (the most of its module's and its hooked
    module's); ``first_conv``: the path and input channels of the first convolution run, or
    None; ``error``: the exception text where the pass failed (the counts then cover the part
    that ran).
    """

    calls: dict[str, int]
    first_conv: tuple[str, int] | None
    error: str | None


def forward_probe(model: nn.Module, layers: Sequence[Layer], size: int) -> ForwardProbe:
    """Count the calls of every analysed module in one whole forward pass of a (1, 3, ``size``,
    ``size``) input on the meta device; ``model`` has every parameter on the meta device."""
    modules = dict(model.named_modules())
    counts: Counter[str] = Counter()
    first: list[tuple[str, int]] = []
    handles = []
    for path in _layer_modules(layers):
        handles.append(modules[path].register_forward_pre_hook(
            lambda _m, _i, path=path: counts.update([path])))
    for path, module in modules.items():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_pre_hook(
                lambda m, _i, path=path: first.append((path, m.in_channels)) if not first else None))
    error = None
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device="meta"))
    except Exception as exc:  # noqa: BLE001 (any failure: the counts cover what ran)
        error = f"{type(exc).__name__}: {exc}"
    finally:
        for handle in handles:
            handle.remove()
    calls = {layer.name: max(counts[layer.module], counts[layer.hook_path]) for layer in layers}
    return ForwardProbe(calls, first[0] if first else None, error)


@lru_cache(maxsize=32)
def planning_problem(arch: str, layer_names: tuple[str, ...], image_size: int) -> str | None:
    """Why the chosen layers of ``arch`` cannot be analysed as the network runs, or None.

    Refused: a first convolution that does not take 3 input channels (the images are RGB),
    and an analysed module called more than once per forward pass. One forward pass on the
    meta device at ``image_size`` (`forward_probe`); cached: the runs of a ``runs:``
    config are checked before their modules check them again.
    """
    from .network import meta_model, select_layers

    model = meta_model(arch).to("meta").eval()
    layers = select_layers(model, arch, list(layer_names))
    probe = forward_probe(model, layers, image_size)
    if probe.first_conv is not None and probe.first_conv[1] != 3:
        path, channels = probe.first_conv
        return (f"model.arch: {arch}'s first convolution {path} takes {channels} input channel"
                f"{'s' if channels != 1 else ''}, not 3: neurofacets feeds RGB images (B, 3, S, S); "
                "give the network a first convolution with in_channels=3 (or a python: factory that "
                "wraps it, e.g. turning RGB into what it takes)")
    many = {name: n for name, n in probe.calls.items() if n > 1}
    if many:
        by_name = {layer.name: layer for layer in layers}
        shown = ", ".join(f"{name} ({by_name[name].module}): {n} calls" for name, n in many.items())
        return (f"model.layers: {arch} calls {len(many)} of the chosen layers more than once per forward pass "
                f"({shown}); a module run several times (weight-tied or recurrent blocks, a stem applied "
                "twice) has no single map to analyse: choose other layers")
    return None


# ---------------------------------------------------------------------------- token layouts

@dataclass(frozen=True)
class TokenLayout:
    """Where a token layer's patch tokens are: ``prefix`` tokens, a ``grid`` x ``grid``
    row-major grid of patch tokens, then ``suffix`` tokens."""

    prefix: int
    grid: int
    suffix: int


def _layout_from_corners(n_tokens: int, top_left: int, top_right: int, bottom_left: int,
                         bottom_right: int) -> TokenLayout | None:
    prefix = top_left
    grid = top_right - top_left + 1
    if grid < 1 or bottom_left != prefix + grid * (grid - 1) or bottom_right != prefix + grid * grid - 1:
        return None
    suffix = n_tokens - prefix - grid * grid
    return TokenLayout(prefix, grid, suffix) if suffix >= 0 else None


def detect_token_layouts(model: nn.Module, paths: Iterable[str], size: int) -> dict[str, TokenLayout | None]:
    """The `TokenLayout` of the (B, T, D) output of each module at ``paths``, or None
    where the four corners do not describe one square grid.

    ``model`` is a network with real (random) weights on the CPU, in eval mode; the probe
    runs ``size`` x ``size`` inputs: a seeded random image and four copies, each with one
    corner pixel raised by `PROBE_STEP`. For each corner the token whose output changes
    most (summed over channels) is that corner's patch token.
    """
    paths = list(paths)
    modules = dict(model.named_modules())
    outputs: dict[str, torch.Tensor] = {}

    def record(path: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            outputs.setdefault(path, output.detach().float())
            if len(outputs) == len(paths):
                raise _Stop

        return hook

    generator = torch.Generator().manual_seed(PROBE_SEED)
    base = torch.randn(1, 3, size, size, generator=generator)
    images = base.repeat(5, 1, 1, 1)
    for i, (row, col) in enumerate(((0, 0), (0, size - 1), (size - 1, 0), (size - 1, size - 1)), start=1):
        images[i, :, row, col] += PROBE_STEP
    handles = [modules[path].register_forward_hook(record(path)) for path in paths]
    try:
        with torch.no_grad():
            model(images)
    except _Stop:
        pass
    finally:
        for handle in handles:
            handle.remove()
    layouts: dict[str, TokenLayout | None] = {}
    for path in paths:
        out = outputs.get(path)
        if out is None or out.ndim != 3:
            layouts[path] = None
            continue
        change = (out[1:] - out[:1]).abs().sum(dim=2)  # (4 corners, tokens)
        if not bool((change.amax(dim=1) > 0).all()):
            layouts[path] = None
            continue
        corners = [int(i) for i in change.argmax(dim=1)]
        layouts[path] = _layout_from_corners(out.shape[1], *corners)
    return layouts


@lru_cache(maxsize=32)
def token_prefixes(arch: str, paths: tuple[str, ...], declared: int) -> dict[str, int | str]:
    """The prefix tokens of each token layer of ``arch`` (module ``paths``), as the network
    places them (`detect_token_layouts` on a CPU copy with seeded random weights, at its
    own input size), or for a layer whose layout cannot be used, why (a message starting with
    ``model.prefix_tokens``: tokens after the patch grid, e.g. a class token appended, or a
    layout the probe cannot read). ``declared``: what the network's attributes say
    (``num_prefix_tokens``, a ``cls_token``); a detected count that differs is used, with a
    warning.
    """
    from .network import model_source

    source = model_source(arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PROBE_SEED)
        model = source.build("cpu").float().eval()
    size = source.default_input_size(model)
    layouts = detect_token_layouts(model, paths, size)
    prefixes: dict[str, int | str] = {}
    for path, layout in layouts.items():
        if layout is None:
            prefixes[path] = (
                f"model.prefix_tokens: cannot tell where the patch tokens of {arch}'s {path} are: changing one "
                f"corner pixel of a {size} px image does not change the tokens of one square grid of patches "
                "(corner patches in row-major order); neurofacets needs the class / register tokens first, then "
                "the patch tokens row by row: choose other layers")
            continue
        if layout.suffix:
            prefixes[path] = (
                f"model.prefix_tokens: {arch}'s {path} has {layout.suffix} token(s) after its {layout.grid} x "
                f"{layout.grid} patch tokens (e.g. a class token appended after the patches; found by changing one "
                "image corner and seeing which token follows); model.prefix_tokens reads class / register tokens "
                "only before the patches: put them first (torch.cat([cls, patches], dim=1)) or choose other layers")
            continue
        if layout.prefix != declared:
            logger.warning("%s's %s: %d token(s) precede the %d x %d patch tokens (found by changing one image "
                           "corner), not the %d that its attributes say (num_prefix_tokens, cls_token): the %d are "
                           "used", arch, path, layout.prefix, layout.grid, layout.grid, declared, layout.prefix)
        prefixes[path] = layout.prefix
    return prefixes


# ------------------------------------------------------------------------ what a checkpoint needs

def required_state_keys(model: nn.Module, layers: Sequence[Layer], size: int) -> dict[str, list[str]]:
    """``{module path: [state-dict keys]}``: the parameters and buffers of every module entered
    before the last analysed layer has given its map, in the order the modules run.

    One forward pass on the meta device (``model``'s parameters on the meta device) of a
    (1, 3, ``size``, ``size``) input, stopped after the last layer; the root module's own
    tensors (a class token, position embeddings) count when it runs. ``num_batches_tracked``
    is left out (`OPTIONAL_STATE_SUFFIXES`), as are non-persistent buffers.
    """
    modules = dict(model.named_modules())
    entered: dict[str, None] = {}  # an ordered set
    wanted = _layer_modules(layers)
    done: set[str] = set()
    handles = []
    for path, module in modules.items():
        handles.append(module.register_forward_pre_hook(
            lambda _m, _i, path=path: entered.setdefault(path)))

    def finished(path: str):
        def hook(_module: nn.Module, _inputs: Any, _output: Any) -> None:
            done.add(path)
            if done >= wanted:
                raise _Stop

        return hook

    handles += [modules[path].register_forward_hook(finished(path)) for path in wanted]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device="meta"))
    except _Stop:
        pass
    finally:
        for handle in handles:
            handle.remove()
    persistent = set(model.state_dict(keep_vars=True))
    required: dict[str, list[str]] = {}
    for path in entered:
        module = modules[path]
        own = [name for name, _ in (*module.named_parameters(recurse=False), *module.named_buffers(recurse=False))]
        keys = [f"{path}.{name}" if path else name for name in own]
        keys = [k for k in keys if k in persistent and not k.endswith(OPTIONAL_STATE_SUFFIXES)]
        if keys:
            required[path] = keys
    return required


def checkpoint_gaps(required: Mapping[str, Sequence[str]], keys: Iterable[str]) -> dict[str, list[str]]:
    """The ``required`` keys (`required_state_keys`) a state dict with ``keys`` lacks, by module."""
    present = set(keys)
    gaps = {path: [k for k in wanted if k not in present] for path, wanted in required.items()}
    return {path: missing for path, missing in gaps.items() if missing}


def describe_gaps(model: nn.Module, gaps: Mapping[str, Sequence[str]], limit: int = 12) -> str:
    """``features.1 (BatchNorm2d): running_mean, running_var; ...`` (the first ``limit`` modules)."""
    modules = dict(model.named_modules())
    parts = []
    for path, keys in list(gaps.items())[:limit]:
        names = ", ".join(k[len(path) + 1:] if path else k for k in keys)
        parts.append(f"{path or '(root)'} ({type(modules[path]).__name__}): {names}")
    more = f"; and {len(gaps) - limit} more modules" if len(gaps) > limit else ""
    return "; ".join(parts) + more


def checkpoint_fit_problem(arch: str, layer_spec: str | Sequence[str], image_size: int, keys: Iterable[str],
                           origin: str) -> str | None:
    """Why a state dict with ``keys`` does not cover what the chosen layers of ``arch`` depend on, or None."""
    from .network import meta_model, select_layers

    model = meta_model(arch).to("meta").eval()
    layers = select_layers(model, arch, layer_spec)
    gaps = checkpoint_gaps(required_state_keys(model, layers, image_size), keys)
    if not gaps:
        return None
    n = sum(len(v) for v in gaps.values())
    return (f"model.weights: {origin} lacks {n} tensor(s) that the analysed layers "
            f"({layers[0].name} .. {layers[-1].name}) depend on, by module: {describe_gaps(model, gaps)}. "
            "Save the whole network's state_dict() (BatchNorm statistics are buffers: named_parameters() "
            "leaves them out), or set model.partial_weights: seed:<n> to fill what is missing from that seed, "
            "the same in every job")
