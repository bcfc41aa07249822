"""Per-sample gradient norms (GraNd): the ghost identities and the torch.func path against one backward per sample."""
import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from drop_core.errors import DropError
from drop_core.models import MODELS, build_model
from drop_core.train.grad_norms import ghost_unsupported, per_sample_grad_norms

SHAPES = [(10,), (1, 12, 12), (3, 8, 8), (3, 32, 32)]
SLOW_PAIRS = {("resnet18", (3, 32, 32)), ("vgg16", (3, 32, 32)), ("vgg19", (3, 32, 32))}


def _model_shape_pairs() -> list:
    """Every (model, input shape) the registry's builders accept, heavy ones marked slow."""
    pairs = []
    for name in MODELS.names():
        for shape in SHAPES:
            try:
                build_model(name, shape, 3)
            except DropError:
                continue
            marks = [pytest.mark.slow] if (name, shape) in SLOW_PAIRS else []
            pairs.append(pytest.param(name, shape, marks=marks, id=f"{name}-{'x'.join(map(str, shape))}"))
    return pairs


def loop_grad_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reference: one backward per sample in eval mode, the norm over every parameter's .grad."""
    model.eval()
    out = []
    for i in range(len(x)):
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        out.append(torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters() if p.grad is not None)))
    model.zero_grad(set_to_none=True)
    return torch.stack(out)


def with_running_stats(model: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """``model`` after two train-mode forwards, so BatchNorm's running statistics are not 0 and 1."""
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, *shape) * 2 + 0.5)
    return model


@pytest.mark.parametrize(("name", "shape"), _model_shape_pairs())
def test_ghost_norms_equal_the_loop_for_every_model(name, shape):
    torch.manual_seed(0)
    model = with_running_stats(build_model(name, shape, 3), shape)
    x, y = torch.randn(3, *shape), torch.tensor([0, 1, 2])
    assert ghost_unsupported(model) is None
    got = per_sample_grad_norms(model, x, y, method="ghost")
    assert model.training                                    # mode restored
    assert all(p.grad is None for p in model.parameters())   # no .grad written
    torch.testing.assert_close(got, loop_grad_norms(model, x, y), rtol=1e-4, atol=1e-6)


def test_ghost_norms_in_channels_last_under_no_grad_and_autocast():
    torch.manual_seed(0)
    model = with_running_stats(build_model("cnn", (3, 16, 16), 4), (3, 16, 16))
    x, y = torch.randn(5, 3, 16, 16), torch.randint(0, 4, (5,))
    want = loop_grad_norms(model, x, y)
    model = model.to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = per_sample_grad_norms(model, x, y, method="ghost", batch_size=2, max_bytes=1)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


class EveryLayer(nn.Module):
    """One of each layer with a ghost rule, in the shapes that pick each branch (Gram / materialised)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1d = nn.Conv1d(2, 4, 3, stride=2, padding=1)                   # bias, 1-d
        self.gn = nn.GroupNorm(2, 4)
        self.tokens = nn.Linear(4, 24)                                          # (B, T, d) input, materialised
        self.ln = nn.LayerNorm(24)
        self.wide = nn.Linear(24, 40)                                           # (B, T, d) input, Gram (T small)
        self.conv = nn.Conv2d(1, 6, 3, stride=2, dilation=2, padding=2)        # strided, dilated, bias
        self.grouped = nn.Conv2d(6, 6, 3, padding=1, groups=3, bias=False)     # materialised, groups
        self.bn = nn.BatchNorm2d(6)
        self.late = nn.Conv2d(6, 32, 3, groups=2)                               # few positions: Gram, groups
        self.bn1 = nn.BatchNorm1d(32)
        self.head = nn.Linear(40 * 8 + 32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = self.gn(self.conv1d(x.flatten(2)[:, :2, :16]))                     # (B, 4, 8)
        seq = self.wide(self.ln(torch.relu(self.tokens(seq.transpose(1, 2)))))  # (B, 8, 40)
        img = self.bn(self.grouped(torch.relu(self.conv(x[:, :1]))))           # (B, 6, 5, 5)
        img = self.bn1(self.late(img).amax((2, 3)))                             # (B, 32)
        return self.head(torch.cat([seq.flatten(1), img], 1))


def test_every_ghost_rule_and_both_branches_equal_the_loop():
    torch.manual_seed(0)
    model = with_running_stats(EveryLayer(), (2, 10, 10))
    for m in model.modules():                       # non-trivial affine parameters
        if isinstance(m, (nn.GroupNorm, nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.3)
            nn.init.normal_(m.bias, 0.0, 0.3)
    x, y = torch.randn(6, 2, 10, 10), torch.randint(0, 3, (6,))
    assert ghost_unsupported(model) is None
    want = loop_grad_norms(model, x, y)
    torch.testing.assert_close(per_sample_grad_norms(model, x, y, method="ghost"), want, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(per_sample_grad_norms(model, x, y, method="ghost", batch_size=4, max_bytes=1),
                               want, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(per_sample_grad_norms(model, x, y, method="func", batch_size=4), want,
                               rtol=1e-4, atol=1e-6)


class CalledTwice(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.lin(torch.relu(self.lin(x)))))


def _tied() -> nn.Module:
    model = nn.Sequential(nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU(), nn.Linear(5, 3))
    model[2].weight = model[0].weight
    return model


@pytest.mark.parametrize(("make", "reason"), [
    (lambda: nn.Sequential(nn.Linear(5, 4), nn.PReLU(), nn.Linear(4, 3)),
     "belongs to a PReLU, which has no ghost rule"),
    (_tied, "is the same tensor as 0.weight (tied weights)"),
    (lambda: nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4, track_running_stats=False), nn.Linear(4, 3)),
     "has no running statistics"),
    (lambda: nn.Sequential(nn.Unflatten(1, (1, 5)), nn.Conv1d(1, 2, 3, padding="same"), nn.Flatten(),
                           nn.Linear(10, 3)), "only numeric zero padding has a ghost rule"),
], ids=["unknown-layer", "tied", "batch-stats", "same-padding"])
def test_models_without_ghost_rules_fall_back_to_exact_torch_func(make, reason):
    torch.manual_seed(0)
    model = make()
    x, y = torch.randn(4, 5), torch.randint(0, 3, (4,))
    assert reason in ghost_unsupported(model)
    with pytest.raises(DropError, match="cannot handle this model"):
        per_sample_grad_norms(model, x, y, method="ghost")
    if not any(isinstance(m, nn.BatchNorm1d) for m in model.modules()):   # batch stats: no per-sample reference
        torch.testing.assert_close(per_sample_grad_norms(model, x, y), loop_grad_norms(model, x, y),
                                   rtol=1e-4, atol=1e-6)


def test_a_layer_called_twice_is_found_at_run_time_and_falls_back():
    torch.manual_seed(0)
    model = CalledTwice()
    x, y = torch.randn(4, 5), torch.randint(0, 3, (4,))
    assert ghost_unsupported(model) is None
    with pytest.raises(DropError, match="a Linear is called more than once per forward"):
        per_sample_grad_norms(model, x, y, method="ghost")
    torch.testing.assert_close(per_sample_grad_norms(model, x, y), loop_grad_norms(model, x, y), rtol=1e-4, atol=1e-6)


def test_unknown_method_is_a_drop_error():
    model = nn.Linear(3, 2)
    with pytest.raises(DropError, match=r"^The 'method' parameter of per_sample_grad_norms must be one of auto, "
                                        r"ghost, func. Got 'loop' instead.$"):
        per_sample_grad_norms(model, torch.zeros(1, 3), torch.zeros(1, dtype=torch.long), method="loop")


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_train_never_imports_scoring():
    train = Path(__file__).resolve().parents[2] / "drop_core" / "train"
    files = sorted(train.rglob("*.py"))
    assert files
    offenders = {f.name: sorted(m for m in _imported_modules(f) if m == "drop_core.scoring"
                                or m.startswith("drop_core.scoring."))
                 for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}
