"""A small airbench-style CNN (a shrunken airbench93, KellerJordan/cifar10-airbench) that trains fast on a CPU.

Stem: 2x2 conv (no padding, 24 channels) + ReLU, as airbench's whitening layer (here with the
default initialisation). Then three conv groups of widths 32-64-64, each
``conv3x3 -> max-pool 2 -> BN -> ReLU -> conv3x3 -> BN -> ReLU``; a group skips its pooling
once the feature map is down to 1 px, so 8x8 digits work as well as 32x32 images. A global
max-pool gives the 64-d embedding. ReLU instead of airbench's GELU: GELU cost ~11 % of a
training step on this CPU. Throughput (1 thread, bf16 autocast, batch 256, SGD step, 32x32):
~1,450 img/s per CPU-second in channels_last, ~0.6x that in NCHW, so train it channels_last.
"""
from __future__ import annotations

from torch import nn

from drop_core.models._registry import MODELS, image_shape
from drop_core.models.base import Classifier

STEM_WIDTH = 24
WIDTHS = (32, 64, 64)


def conv_group(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.MaxPool2d(2) if pool else nn.Identity(),
        nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


@MODELS.register("cnn", "small airbench-style CNN (24-32-64-64), fast on CPU; any image of at least 2x2")
def build_cnn(input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    c, h, w = image_shape("cnn", input_shape, min_side=2)
    layers: list[nn.Module] = [nn.Conv2d(c, STEM_WIDTH, 2), nn.ReLU(inplace=True)]
    side, width = min(h, w) - 1, STEM_WIDTH
    for out in WIDTHS:
        pool = side >= 2
        layers.append(conv_group(width, out, pool))
        side, width = (side // 2 if pool else side), out
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
    return Classifier(nn.Sequential(*layers), width, num_classes)
