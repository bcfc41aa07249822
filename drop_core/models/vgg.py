"""VGG-16/19 with batch norm as in the DRoP code: conv-only features, one Linear head, BN momentum 0.01.

13 (VGG-16) or 16 (VGG-19) bias-free 3x3 convs with BN and ReLU, 5 max-pools, flatten, then a
single ``Linear(512 * (H/32) * (W/32), K)`` with no hidden FC layers and no dropout (docs/drop-method.md,
"Training recipe"). Xavier-normal (gain sqrt 2) initialisation.
"""
from __future__ import annotations

from torch import nn

from drop_core.models._registry import MODELS, image_shape
from drop_core.models.base import Classifier, authors_init

BN_MOMENTUM = 0.01
CONFIGS = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def build_vgg(name: str, input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    c, h, w = image_shape(name, input_shape, min_side=32)
    layers: list[nn.Module] = []
    for item in CONFIGS[name]:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, item, 3, padding=1, bias=False), nn.BatchNorm2d(item, momentum=BN_MOMENTUM),
                       nn.ReLU(inplace=True)]
            c = item
    layers.append(nn.Flatten())
    return authors_init(Classifier(nn.Sequential(*layers), 512 * (h // 32) * (w // 32), num_classes))


@MODELS.register("vgg16", "VGG-16 with BN (authors' variant: conv-only, single Linear head); images >= 32x32")
def build_vgg16(input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    return build_vgg("vgg16", input_shape, num_classes)


@MODELS.register("vgg19", "VGG-19 with BN (authors' variant: conv-only, single Linear head); images >= 32x32")
def build_vgg19(input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    return build_vgg("vgg19", input_shape, num_classes)
