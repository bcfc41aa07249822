"""LeNet-5 (the authors' code has LeNets for MNIST): two 5x5 convs with max-pooling, then FC 120-84."""
from __future__ import annotations

from torch import nn

from drop_core.models._registry import MODELS, image_shape
from drop_core.models.base import Classifier, authors_init, flat_dim


@MODELS.register("lenet", "LeNet-5 (conv 6-16, FC 120-84, ReLU, max-pool); images of at least 12x12, e.g. MNIST")
def build_lenet(input_shape: tuple[int, ...], num_classes: int) -> Classifier:
    c, h, w = image_shape("lenet", input_shape, min_side=12)
    convs = nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(),
    )
    width = flat_dim(convs, (c, h, w))
    features = nn.Sequential(
        convs, nn.Linear(width, 120), nn.ReLU(inplace=True), nn.Linear(120, 84), nn.ReLU(inplace=True)
    )
    return authors_init(Classifier(features, 84, num_classes))
