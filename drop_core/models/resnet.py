"""ResNet-18 with the CIFAR stem (3x3 conv, stride 1, no max-pool), as the DRoP code uses even on 64x64 inputs.

BasicBlocks 64-128-256-512 (two per stage), 1x1 stride-2 projection shortcuts with BN,
global average pooling, ``Linear(512, K)``; Xavier-normal (gain sqrt 2) initialisation.
"""
from __future__ import annotations

import torch
from torch import nn

from drop_core.models._registry import MODELS, image_shape
from drop_core.models.base import Classifier, authors_init

STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))   # (width, stride of the first block)
BLOCKS_PER_STAGE = 2


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(c_in, c_out, 3, stride)
        self.conv2 = conv_bn(c_out, c_out, 3, 1)
        self.shortcut = conv_bn(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.conv1(x))
        return torch.relu(self.conv2(out) + self.shortcut(x))


@MODELS.register("resnet18", "ResNet-18 with CIFAR stem (3x3, stride 1, no max-pool); any image size")
def build_resnet18(input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    c, _, _ = image_shape("resnet18", input_shape)
    layers: list[nn.Module] = [conv_bn(c, 64, 3, 1), nn.ReLU(inplace=True)]
    width = 64
    for out, stride in STAGES:
        for i in range(BLOCKS_PER_STAGE):
            layers.append(BasicBlock(width, out, stride if i == 0 else 1))
            width = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return authors_init(Classifier(nn.Sequential(*layers), width, num_classes))
