"""Model families shared by the built-in tasks."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from tuneladder.tasks._base import DataInfo

__all__ = ["ConvNet", "MLP", "mlp_or_cnn"]


def mlp_or_cnn(hp: Mapping[str, Any], info: DataInfo) -> nn.Module:
    """``arch`` picks the family; ``channels`` is read by the CNN only."""
    common = {
        "width": int(hp["width"]),
        "num_layers": int(hp["num_layers"]),
        "dropout": float(hp["dropout"]),
    }
    if hp["arch"] == "mlp":
        return MLP(info.input_shape, info.n_outputs, **common)
    if hp["arch"] == "cnn":
        return ConvNet(info.input_shape, info.n_outputs, channels=int(hp["channels"]), **common)
    raise ValueError(f"arch must be mlp or cnn, got {hp['arch']!r}")


class MLP(nn.Sequential):
    """``num_layers`` hidden layers of ``width`` units, ReLU and dropout between them."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        out_features: int,
        *,
        width: int,
        num_layers: int,
        dropout: float,
    ) -> None:
        if width < 1 or num_layers < 0:
            raise ValueError(
                f"width must be >= 1 and num_layers >= 0, got {width=}, {num_layers=}"
            )
        layers: list[nn.Module] = [nn.Flatten()]
        features = math.prod(in_shape)
        for _ in range(num_layers):
            layers += [nn.Linear(features, width), nn.ReLU(), nn.Dropout(dropout)]
            features = width
        layers.append(nn.Linear(features, out_features))
        super().__init__(*layers)


class ConvNet(nn.Sequential):
    """3x3 conv blocks with batch norm; channels double and the map halves every two blocks."""

    def __init__(
        self,
        in_shape: tuple[int, ...],
        out_features: int,
        *,
        channels: int,
        num_layers: int,
        width: int,
        dropout: float,
    ) -> None:
        if len(in_shape) != 3:
            raise ValueError(f"cnn needs (channels, height, width) inputs, got {in_shape}")
        if channels < 1 or num_layers < 1:
            raise ValueError(
                f"channels and num_layers must be >= 1, got {channels=}, {num_layers=}"
            )
        c_in, height, breadth = in_shape
        layers: list[nn.Module] = []
        c_out = channels
        for i in range(num_layers):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
            c_in = c_out
            if i % 2 == 1 and min(height, breadth) >= 4:
                layers.append(nn.MaxPool2d(2))
                height, breadth, c_out = height // 2, breadth // 2, c_out * 2
        layers += [
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c_in * height * breadth, width),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(width, out_features),
        ]
        super().__init__(*layers)
