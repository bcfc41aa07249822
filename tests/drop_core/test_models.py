"""Contract tests over the model registry: shapes, features/head consistency, forward + backward on CPU."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from drop_core.errors import DropError
from drop_core.models import MODELS, build_model

SHAPES = [(16,), (1, 8, 8), (1, 28, 28), (3, 32, 32)]
NUM_CLASSES = 5
BATCH = 2


def _build_or_refuse(name: str, shape: tuple[int, ...]) -> nn.Module | None:
    """The model, or None when it refuses the shape with a one-line DropError."""
    try:
        return build_model(name, shape, NUM_CLASSES)
    except DropError as err:
        assert str(err) and "\n" not in str(err)
        return None


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_supports_some_input(name):
    assert any(_build_or_refuse(name, shape) is not None for shape in SHAPES)


# Every (model, shape) pair the model accepts, generated from the registry (no skips).
PAIRS = [(name, shape) for name in MODELS.names() for shape in SHAPES if _build_or_refuse(name, shape) is not None]


@pytest.mark.parametrize("name, shape", PAIRS, ids=[f"{n}-{s}" for n, s in PAIRS])
def test_forward_features_head_and_backward(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, NUM_CLASSES)
    x = torch.randn(BATCH, *shape)

    model.eval()
    with torch.no_grad():
        logits = model(x)
        features = model.features(x)
        assert logits.shape == (BATCH, NUM_CLASSES)
        assert features.shape == (BATCH, model.feature_dim)
        torch.testing.assert_close(model.head(features), logits)

    model.train()
    loss = nn.functional.cross_entropy(model(x), torch.arange(BATCH) % NUM_CLASSES)
    loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname
    assert any(float(p.grad.abs().sum()) > 0 for p in model.parameters())


@pytest.mark.parametrize("name", MODELS.names())
def test_bf16_autocast_forward_on_cpu(name):
    shape = next(s for s in reversed(SHAPES) if _build_or_refuse(name, s) is not None)
    model = build_model(name, shape, NUM_CLASSES)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.randn(BATCH, *shape))
    assert logits.shape == (BATCH, NUM_CLASSES) and torch.isfinite(logits.float()).all()


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)], ids=str)
def test_cnn_takes_digits_and_cifar_sizes(shape):
    assert _build_or_refuse("cnn", shape) is not None


def test_image_models_refuse_tabular_input_by_name():
    with pytest.raises(DropError) as err:
        build_model("cnn", (16,), 10)
    assert str(err.value) == (
        "Model 'cnn' needs image input (C, H, W); got input shape (16,). Use 'mlp' for tabular data."
    )


def test_vgg_refuses_images_smaller_than_32():
    with pytest.raises(DropError) as err:
        build_model("vgg16", (1, 28, 28), 10)
    assert str(err.value) == "Model 'vgg16' needs images of at least 32x32 pixels; got 28x28."


def test_unknown_model_lists_valid_names():
    with pytest.raises(DropError) as err:
        build_model("alexnet", (3, 32, 32), 10)
    assert str(err.value) == f"Unknown model 'alexnet'. Valid models: {', '.join(sorted(MODELS.names()))}."


def test_num_classes_below_two_is_rejected():
    with pytest.raises(DropError) as err:
        build_model("mlp", (16,), 1)
    assert str(err.value) == ("A classifier needs at least two classes: the 'num_classes' parameter of build_model "
                              "must be an int in the range [2, inf). Got 1 instead.")


@pytest.mark.parametrize("name, convs", [("vgg16", 13), ("vgg19", 16)])
def test_vgg_is_the_authors_variant(name, convs):
    model = build_model(name, (3, 32, 32), 10)
    conv_layers = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(conv_layers) == convs and all(c.bias is None for c in conv_layers)
    assert linears == [model.head] and model.head.in_features == 512
    assert {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)} == {0.01}
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())


def test_resnet18_has_the_cifar_stem():
    model = build_model("resnet18", (3, 64, 64), 200)
    stem = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    assert model.feature_dim == 512
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 1 + 16 + 3   # stem, 8 blocks x 2, 3 shortcuts


def test_authors_init_zeroes_biases():
    model = build_model("lenet", (1, 28, 28), 10)
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in model.modules() if isinstance(m, nn.Linear))
