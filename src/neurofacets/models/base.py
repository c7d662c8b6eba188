"""The interface of a model family: what one module of `neurofacets.models` states.

A family (``model.arch: <family>:<name>``) is one module of this package holding one
`ModelSource` subclass, its ``SOURCE``. The source says everything that differs
between families and nothing else does:

- the spelling of ``model.arch`` (`ModelSource.arch_form`, `ModelSource.parse_name`);
- how the network is built (`ModelSource.factory`), on the meta device with no memory
  (`ModelSource.build`);
- the weight sources of its own (`ModelSource.weights_forms`,
  `ModelSource.load_weights`, `ModelSource.adapt_state_dict`); files and
  ``random:<seed>`` are common to every family (`neurofacets.weights`);
- the layer vocabulary: which modules are MLP hidden activations
  (`ModelSource.is_activation`, `ModelSource.mlp_activations`) and which are
  channel gates (`ModelSource.gate_classes`), the readable names of convolutions
  (`ModelSource.conv_name`);
- the token layout (`ModelSource.prefix_tokens`) and the input sizes the network is
  made for (`ModelSource.default_input_size`, `ModelSource.own_input_sizes`);
- the preprocessing its weights expect (`ModelSource.preprocessing`, a
  `neurofacets.preprocessing.Recipe` from the weights' own metadata).

The layer kinds (``conv``, ``channels_last``, ``tokens``) and the receptive-field geometry
are measured on the built network by `neurofacets.models.network`, the same for every
family. This module imports no torch at import time: parsing ``model.arch`` reads it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from ..pathlike import PathLike

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..model_spec import ModelSpec
    from ..preprocessing import Recipe

logger = logging.getLogger(__name__)

#: Names of a leaf module that make it an activation when it follows an ``nn.Linear``.
ACTIVATION_NAMES = ("act", "act_fn", "activation", "activation_fn", "intermediate_act_fn")
#: torchvision's own channel gate (squeeze-excitation): its convolutions act on a 1 x 1 map.
GATE_CLASSES = ("SqueezeExcitation",)


class ModelSource:
    """One family of ``model.arch``: builds the network and describes it.

    Subclasses set `family`, `arch_form` and implement `parse_name`,
    `factory` and `preprocessing`; the rest has defaults that fit most networks.
    """

    #: The prefix of ``model.arch`` (``<family>:<name>``).
    family: ClassVar[str] = ""
    #: The family a name without prefix belongs to (one family only).
    plain_names: ClassVar[bool] = False
    #: The installed distribution whose version fixes every architecture of this family (its
    #: layers and their receptive fields), or None when the architecture comes from elsewhere
    #: (a checkpoint's config, a lab's own code): `neurofacets.layer_geometry_cache` keeps a
    #: measured layer table only for a family with one.
    architecture_distribution: ClassVar[str | None] = None
    #: How ``model.arch`` is written for this family, for error messages.
    arch_form: ClassVar[str] = ""
    #: The ``model.weights`` forms only this family takes (``prefix:argument``), with a short text each.
    weights_forms: ClassVar[Mapping[str, str]] = {}
    #: The argument each of those forms takes (regular expression), by its prefix.
    weights_patterns: ClassVar[Mapping[str, str]] = {}
    #: Class names (regular expression) of channel gates: their convolutions are no layers and
    #: the receptive-field measurement leaves them out.
    gate_classes: ClassVar[tuple[str, ...]] = GATE_CLASSES
    #: Python module prefixes whose classes are activation modules (besides torch's own).
    activation_modules: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    # ------------------------------------------------------------------ model.arch

    @classmethod
    def parse_name(cls, rest: str) -> str | None:
        """The model name of ``model.arch``'s part after ``<family>:`` (or the plain name), or
        None when it is not one of this family's spellings."""
        raise NotImplementedError

    @property
    def arch(self) -> str:
        """The canonical ``model.arch``."""
        return self.spec.canonical

    # ------------------------------------------------------------------ building

    def factory(self) -> nn.Module:
        """A freshly initialised network (on the current default device)."""
        raise NotImplementedError

    def build(self, device: str | torch.device = "cpu") -> nn.Module:
        """The network, randomly initialised (seed it first); ``device="meta"``: shapes only.

        On the meta device the factory runs inside ``with torch.device("meta")``, which puts
        every tensor it makes there (no memory, no initialisation) and changes nothing outside
        this call. A constructor that computes with its tensors (RegNet's block widths) cannot
        run there: it is built on the CPU and moved, which costs its memory once.
        """
        import torch
        from torch import nn

        if str(device) == "meta":
            try:
                with torch.device("meta"):
                    model = self.factory()
            except (NotImplementedError, RuntimeError) as error:
                logger.debug("%s cannot be built on the meta device (%s): built on the CPU", self.arch, error)
                model = self.factory().to("meta")
        else:
            with torch.device(device):
                model = self.factory()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model.arch: {self.arch} gave a {type(model).__name__}, not a torch.nn.Module")
        return model

    # ------------------------------------------------------------------ weights

    def load_weights(self, kind: str, argument: str, cache_dir: PathLike) -> tuple[str, dict[str, torch.Tensor]]:
        """``(weights_id, state_dict)`` of a ``model.weights`` form of `weights_forms`
        (``cache_dir``: where a download is kept between runs)."""
        raise ValueError(f"model.weights: {kind}:{argument} is not a weights source of {self.arch}")

    def adapt_state_dict(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A checkpoint's state dict in the keys of the network `build` makes (default: as it is)."""
        return state

    # ------------------------------------------------------------------ layers

    def conv_name(self, path: str, block: int, index: int) -> str:
        """The readable name of the convolution at ``path`` (``block``: poolings seen + 1,
        ``index``: its number in the block)."""
        return path.replace(".", "-")

    def is_activation(self, name: str, module: nn.Module) -> bool:
        """Whether ``module`` (registered as ``name`` in its parent) is an activation."""
        from torch import nn

        torch_activations = (nn.GELU, nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Mish, nn.LeakyReLU, nn.ELU,
                             nn.Tanh, nn.Sigmoid, nn.Softplus, nn.SELU, nn.CELU, nn.Hardsigmoid)
        if isinstance(module, torch_activations):
            return True
        if self.activation_modules and type(module).__module__.startswith(self.activation_modules):
            return not list(module.children())
        return name in ACTIVATION_NAMES and not list(module.children())

    def mlp_activations(self, model: nn.Module) -> list[str]:
        """Paths of the MLP hidden activations: activation modules registered right after an
        ``nn.Linear`` in the same parent."""
        import itertools

        from torch import nn

        found = []
        for parent_path, parent in model.named_modules():
            children = list(parent.named_children())
            for (_, before), (name, module) in itertools.pairwise(children):
                if isinstance(before, nn.Linear) and self.is_activation(name, module):
                    found.append(f"{parent_path}.{name}" if parent_path else name)
        return found

    def gate_paths(self, model: nn.Module) -> list[str]:
        """Paths of the channel gates of ``model`` (`gate_classes`)."""
        pattern = re.compile("|".join(self.gate_classes))
        return [path for path, module in model.named_modules() if path and pattern.search(type(module).__name__)]

    def is_gate(self, module: nn.Module) -> bool:
        """Whether ``module`` is a channel gate (`gate_classes`)."""
        return bool(re.search("|".join(self.gate_classes), type(module).__name__))

    def prefix_tokens(self, model: nn.Module) -> int:
        """Class / register / distillation tokens before the patch tokens of a token layer."""
        import torch

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
        """Input sizes the network's weights are made for (samples of
        `neurofacets.models.network.input_size_ranges`)."""
        return {224, self.default_input_size(self.build("meta"))}

    # ------------------------------------------------------------------ preprocessing

    def preprocessing(self, weights: str) -> Recipe:
        """The input recipe the weights ``weights`` (``model.weights``) expect, from their metadata."""
        raise NotImplementedError

    def weights_files(self) -> list[str]:
        """Files besides ``model.weights`` that decide the network or its recipe (a folder's
        ``config.json``): a change of them reruns the run."""
        return []

