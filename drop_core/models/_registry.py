"""The model registry and the shape checks its builders share; ``drop_core.models`` re-exports it."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from drop_core.errors import DropError
from drop_core.registry import Registry

#: A builder takes ``(input_shape, num_classes)``; input_shape is (C, H, W) for images, (D,) for tabular data.
Builder = Callable[[tuple[int, ...], int], nn.Module]

MODELS: Registry[Builder] = Registry("model")


def image_shape(model: str, input_shape: tuple[int, ...], min_side: int = 1) -> tuple[int, int, int]:
    """``input_shape`` as (C, H, W), or a DropError if ``model`` cannot take it."""
    if len(input_shape) != 3:
        raise DropError(
            f"Model {model!r} needs image input (C, H, W); got input shape {tuple(input_shape)}. "
            f"Use 'mlp' for tabular data."
        )
    c, h, w = input_shape
    if min(h, w) < min_side:
        raise DropError(f"Model {model!r} needs images of at least {min_side}x{min_side} pixels; got {h}x{w}.")
    return c, h, w
