"""Heads map backbone features to the task's outputs. Configs are `_partial_`: the widths are
known only once the backbone and the data are built."""

from __future__ import annotations

from torch import nn

from ftlab.errors import require

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class LinearHead(nn.Sequential):
    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0) -> None:
        require(0 <= dropout < 1, "model.head.dropout", "in [0, 1)", dropout)
        super().__init__(nn.Dropout(dropout), nn.Linear(in_features, out_features))


class MLPHead(nn.Sequential):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_sizes: list[int] = (256,),  # type: ignore[assignment]
        dropout: float = 0.1,
        activation: str = "gelu",
    ) -> None:
        require(
            activation in _ACTIVATIONS,
            "model.head.activation",
            f"one of {', '.join(_ACTIVATIONS)}",
            activation,
        )
        require(0 <= dropout < 1, "model.head.dropout", "in [0, 1)", dropout)
        require(
            all(int(h) > 0 for h in hidden_sizes),
            "model.head.hidden_sizes",
            "positive widths",
            list(hidden_sizes),
        )
        layers: list[nn.Module] = []
        width = in_features
        for hidden in hidden_sizes:
            layers += [nn.Dropout(dropout), nn.Linear(width, hidden), _ACTIVATIONS[activation]()]
            width = hidden
        layers += [nn.Dropout(dropout), nn.Linear(width, out_features)]
        super().__init__(*layers)
