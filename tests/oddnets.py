"""Networks that break an assumption of the analysis, for ``model.arch: python:oddnets:<factory>``
(tests/test_odd_networks.py): where the class token sits, modules called twice, a grey-scale
first convolution, and a small BatchNorm CNN whose checkpoints the tests write.

The token networks are config/examples/labnet.py's tiny ViT (8 x 8 patches, one block, GELU MLP neurons
at ``block.mlp.act``) with the extra tokens placed differently.
"""

import torch
from labnet import Block
from torch import nn


class TokenNet(nn.Module):
    """A tiny ViT whose ``registers`` extra tokens (after a class token) go before or after the patches.

    ``cls``: whether a class token is added at all (the attribute exists either way);
    ``declare``: set ``num_prefix_tokens`` (else the count is left to the ``cls_token`` attribute).
    """

    def __init__(self, *, cls: bool = True, registers: int = 0, appended: bool = False,
                 dim: int = 16, hidden: int = 24, patch: int = 8) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.reg_token = nn.Parameter(torch.randn(1, registers, dim) * 0.02) if registers else None
        self.use_cls, self.appended = cls, appended
        self.block = Block(dim, hidden)
        self.head = nn.Linear(dim, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        extra = [self.cls_token.expand(len(x), -1, -1)] if self.use_cls else []
        if self.reg_token is not None:
            extra.append(self.reg_token.expand(len(x), -1, -1))
        parts = [x, *extra] if self.appended else [*extra, x]
        x = self.block(torch.cat(parts, dim=1))
        return self.head(x.mean(1))


def class_token_appended() -> nn.Module:
    return TokenNet(appended=True)


def no_class_token() -> nn.Module:
    """A ``cls_token`` attribute, but the tokens are the patches alone (global average pool)."""
    return TokenNet(cls=False)


def register_tokens() -> nn.Module:
    """A class token and 4 register tokens before the patches, no ``num_prefix_tokens``."""
    return TokenNet(registers=4)


class StemTwice(nn.Module):
    """A 3 -> 3 channel stem convolution applied twice (weight-tied), then a conv and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 3, padding=1)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(torch.relu(self.stem(torch.relu(self.stem(x))))))
        return self.head(x.mean((2, 3)))


def stem_twice() -> nn.Module:
    return StemTwice()


class Grey(nn.Module):
    """A network made for grey-scale images: its first convolution takes 1 channel."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


def grey() -> nn.Module:
    return Grey()


class BnNet(nn.Module):
    """conv-BN-ReLU twice, a pooling, a head: ``features.0`` .. ``features.4`` are the layers."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
            nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def bn_net() -> nn.Module:
    return BnNet()
