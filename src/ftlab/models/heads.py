"""Heads map backbone features to the task's outputs. Configs are `_partial_`: the widths are
known only once the backbone and the data are built."""

from __future__ import annotations

from torch import nn

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class LinearHead(nn.Sequential):
    def __init__(self, in_features: int, out_features: int, dropout: float = 0.0) -> None:
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
        if activation not in _ACTIVATIONS:
            from ftlab.errors import FtlabError

            raise FtlabError(
                f"model.head.activation must be one of {', '.join(_ACTIVATIONS)} (got {activation})"
            )
        layers: list[nn.Module] = []
        width = in_features
        for hidden in hidden_sizes:
            layers += [nn.Dropout(dropout), nn.Linear(width, hidden), _ACTIVATIONS[activation]()]
            width = hidden
        layers += [nn.Dropout(dropout), nn.Linear(width, out_features)]
        super().__init__(*layers)
