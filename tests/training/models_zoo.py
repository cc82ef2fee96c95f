"""User-style custom models for the tests: one good, and one for each thing we must refuse."""

from __future__ import annotations

import torch
from torch import nn


class Good(nn.Module):
    def __init__(self, n_num: int = 4, card: int = 5) -> None:
        super().__init__()
        self.emb = nn.Embedding(card, 3)
        self.l1 = nn.Linear(n_num + 3, 8)
        self.norm = nn.LayerNorm(8)
        self.l2 = nn.Linear(8, 1)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm(self.l1(torch.cat([x_num, self.emb(x_cat[:, 0])], dim=1))))
        return self.l2(h).squeeze(-1)


class CopiesIntoBuffer(nn.Module):
    def __init__(self, n_num: int = 4, card: int = 5) -> None:
        super().__init__()
        self.l = nn.Linear(n_num, 1)
        self.register_buffer("memory", torch.zeros(n_num))

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        self.memory.copy_(x_num[0])
        return self.l(x_num).squeeze(-1)


class CopiesIntoParameter(nn.Module):
    def __init__(self, n_num: int = 4, card: int = 5) -> None:
        super().__init__()
        self.l = nn.Linear(n_num, 1)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.l.bias.copy_(x_num[0, :1])
        return self.l(x_num).squeeze(-1)


class MixesBatch(nn.Module):
    def __init__(self, n_num: int = 4, card: int = 5) -> None:
        super().__init__()
        self.l = nn.Linear(n_num, 1)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.l(x_num - x_num.mean(0, keepdim=True)).squeeze(-1)


class UsesBatchNorm(nn.Module):
    def __init__(self, n_num: int = 4, card: int = 5) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(n_num)
        self.l = nn.Linear(n_num, 1)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.l(self.bn(x_num)).squeeze(-1)


def build_model(n_numeric: int, cardinalities: list[int]) -> nn.Module:
    """The builder a job's model.py exposes (used by the sandboxed e2e test)."""
    return Good(n_numeric, cardinalities[0])
