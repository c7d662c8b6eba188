"""A lab's own network, for ``model.arch: python:labnet:make_labnet`` (config/examples/own-model.yaml).

A tiny vision transformer: an 8 x 8 patch embedding (a conv), a class token, one block whose
MLP hidden units (``block.mlp.act``, GELU) are token neurons, and a linear head. It says how
many class tokens precede the patch tokens by ``num_prefix_tokens``, and the input recipe the
``auto`` keys of ``extraction`` take by ``PREPROCESSING`` (else ImageNet's: 224 of 256). The
tests run it too (tests/test_model_families.py, tests/test_model_seam.py).
"""

import torch
from torch import nn

#: The input recipe: a 64 px centre crop of a 72 px resize (shorter side), bilinear, then
#: (x / 255 - mean) / std per channel.
PREPROCESSING = {"image_size": 64, "resize": 72, "interpolation": "bilinear",
                 "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, 2, batch_first=True)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        return x + self.mlp(self.norm(x))


class LabNet(nn.Module):
    num_prefix_tokens = 1

    def __init__(self, dim: int = 16, hidden: int = 24, patch: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.block = Block(dim, hidden)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1)
        x = self.block(x)
        return self.head(x[:, 0])


def make_labnet() -> nn.Module:
    return LabNet()


def not_a_module():
    return "a string"


def failing():
    raise RuntimeError("the lab's GPU cluster is down")
