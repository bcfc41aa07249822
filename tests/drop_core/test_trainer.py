"""The trainer and its parts: learning, determinism, records, cancel, augmentation, metrics, device choice."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import accuracy_score, recall_score
from sklearn.metrics import confusion_matrix as sk_confusion
from torch import nn

from drop_core.data.base import Dataset
from drop_core.errors import DropError
from drop_core.train import Stopped, TrainConfig, predict, train
from drop_core.train.augment import Normalizer, augment, flip_translate, random_flip_translate
from drop_core.train.device import cpu_has_native_bf16, resolve_device, resolve_precision, resolve_runtime
from drop_core.train.evaluate import class_mean, class_recall, confusion_matrix, evaluate
from drop_core.train.outputs import final_outputs
from drop_core.train.schedules import SCHEDULES
from drop_core.train.trainer import Diverged, _batch_bounds

torch.set_num_threads(1)
CPU = torch.device("cpu")


# ---- tiny models with the registry's features/head contract -------------------------------------------------

class TinyMLP(nn.Module):
    def __init__(self, dim: int, k: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(dim, 32), nn.BatchNorm1d(32), nn.ReLU())
        self.fc = nn.Linear(32, k)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(f)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class TinyCNN(TinyMLP):
    def __init__(self, channels: int, k: int) -> None:
        nn.Module.__init__(self)
        self.body = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.fc = nn.Linear(32, k)


# ---- tiny datasets --------------------------------------------------------------------------------------------

def blobs(n_per_class: int = 60, k: int = 3, dim: int = 5, seed: int = 0) -> Dataset:
    """Well-separated Gaussian blobs (tabular, float32)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (k, dim))

    def split(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = np.repeat(np.arange(k), m)
        x = centres[y] + rng.normal(0, 1, (len(y), dim)) + 10.0
        return torch.tensor(x, dtype=torch.float32), torch.tensor(y)

    (xt, yt), (xv, yv), (xs, ys) = split(n_per_class), split(20), split(20)
    return Dataset("blobs", [f"c{i}" for i in range(k)], xt, yt, xv, yv, xs, ys,
                   mean=xt.mean(0), std=xt.std(0), is_image=False)


def bands(n_per_class: int = 60, seed: int = 0) -> Dataset:
    """8x8 uint8 images: class 0 bright top rows, class 1 bright bottom rows, class 2 dark (flip/shift-invariant)."""
    rng = np.random.default_rng(seed)

    def split(m: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = np.repeat(np.arange(3), m)
        x = rng.integers(0, 60, (len(y), 2, 8, 8))
        x[y == 0, :, :3] += 180
        x[y == 1, :, 5:] += 180
        return torch.tensor(x, dtype=torch.uint8), torch.tensor(y)

    (xt, yt), (xv, yv), (xs, ys) = split(n_per_class), split(20), split(20)
    return Dataset("bands", ["top", "bottom", "dark"], xt, yt, xv, yv, xs, ys,
                   mean=torch.tensor([0.3, 0.3]), std=torch.tensor([0.3, 0.3]), is_image=True,
                   flip=True, max_shift=1)


def make_model(data: Dataset, seed: int = 0) -> TinyMLP:
    torch.manual_seed(seed)
    if data.is_image:
        return TinyCNN(data.input_shape[0], data.num_classes)
    return TinyMLP(data.input_shape[0], data.num_classes)


# ---- learning -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make_data, augment_on", [(blobs, False), (bands, True)])
def test_trainer_learns_a_separable_problem(make_data, augment_on):
    data = make_data()
    cfg = TrainConfig(epochs=8, batch_size=32, lr=0.05, augment=augment_on, precision="fp32")
    result = train(make_model(data), data, None, cfg)
    assert result.val_accuracy >= 0.95
    assert result.val_recall.shape == (3,) and np.all(result.val_recall >= 0.85)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    test_pred = predict(result.model, data.x_test, data, precision="fp32").argmax(1)
    assert (test_pred == data.y_test).float().mean() >= 0.95


def test_bf16_autocast_trains_too():
    data = blobs()
    cfg = TrainConfig(epochs=6, batch_size=32, lr=0.05, augment=False, precision="bf16")
    assert train(make_model(data), data, None, cfg).val_accuracy >= 0.95


def test_label_smoothing_sets_a_loss_floor():
    data = blobs()
    cfg = TrainConfig(epochs=6, batch_size=32, lr=0.05, augment=False, precision="fp32")
    plain = train(make_model(data), data, None, cfg).history[-1]["loss"]
    smooth = train(make_model(data), data, None, TrainConfig(**{**cfg.__dict__, "label_smoothing": 0.2}))
    floor = -(0.8 + 0.2 / 3) * np.log(0.8 + 0.2 / 3) - 2 * (0.2 / 3) * np.log(0.2 / 3)   # entropy of the target
    assert plain < 0.3 < floor <= smooth.history[-1]["loss"]
    assert smooth.val_accuracy >= 0.95


# ---- determinism ----------------------------------------------------------------------------------------------

def test_same_seed_same_result_other_seed_differs():
    data = bands()
    model = make_model(data)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, augment=True, precision="fp32", record=frozenset({"p_true"}))
    a = train(copy.deepcopy(model), data, None, cfg)
    b = train(copy.deepcopy(model), data, None, cfg)
    c = train(copy.deepcopy(model), data, None, TrainConfig(**{**cfg.__dict__, "seed": 1}))
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(pa, pb), name
    np.testing.assert_array_equal(a.per_epoch["p_true"], b.per_epoch["p_true"])
    assert not np.array_equal(a.per_epoch["p_true"], c.per_epoch["p_true"])


# ---- per-epoch records ----------------------------------------------------------------------------------------

def _train_mode_outputs(model: nn.Module, data: Dataset, idx: np.ndarray) -> torch.Tensor:
    x = Normalizer(data, CPU)(data.x_train[idx])
    model.train()
    with torch.no_grad():
        return model(x)


def test_records_are_pre_step_train_mode_outputs_in_subset_order():
    data = blobs()
    idx = np.random.default_rng(3).choice(data.x_train.shape[0], 50, replace=False)
    model = make_model(data)
    cfg = TrainConfig(epochs=2, batch_size=len(idx), lr=0.1, schedule="constant", augment=False,
                      precision="fp32", record=frozenset({"correct", "p_true", "margin"}))
    after_one = train(copy.deepcopy(model), data, idx, TrainConfig(**{**cfg.__dict__, "epochs": 1})).model
    result = train(copy.deepcopy(model), data, idx, cfg)
    rec = result.per_epoch
    assert set(rec) == {"correct", "p_true", "margin"}
    assert rec["correct"].shape == (2, 50) and rec["correct"].dtype == np.bool_
    assert rec["p_true"].dtype == np.float32 and rec["margin"].dtype == np.float32
    y = data.y_train[idx]
    for epoch, net in enumerate([model, after_one]):   # epoch e is recorded from the weights before its step
        logits = _train_mode_outputs(copy.deepcopy(net), data, idx)
        p_true = logits.softmax(1)[torch.arange(50), y].numpy()
        np.testing.assert_allclose(rec["p_true"][epoch], p_true, rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(rec["correct"][epoch], (logits.argmax(1) == y).numpy())
        others = logits.clone()
        others[torch.arange(50), y] = -np.inf
        margin = (logits[torch.arange(50), y] - others.max(1).values).numpy()
        np.testing.assert_allclose(rec["margin"][epoch], margin, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(rec["correct"], rec["margin"] > 0)


def test_no_records_unless_asked():
    data = blobs(n_per_class=10)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.05, augment=False)
    assert train(make_model(data), data, None, cfg).per_epoch == {}


# ---- validation policy, progress, cancel --------------------------------------------------------------------

def test_val_every_epoch_keeps_best_epoch_recall():
    data = blobs(n_per_class=20, seed=2)
    data.x_train += 3 * torch.randn(data.x_train.shape, generator=torch.Generator().manual_seed(2))  # noisy labels
    model = make_model(data)
    cfg = TrainConfig(epochs=5, batch_size=16, lr=0.5, schedule="constant", augment=False, precision="fp32",
                      eval_val_every_epoch=True)
    result = train(copy.deepcopy(model), data, None, cfg)
    accs = [h["val_acc"] for h in result.history]
    assert len(accs) == 5
    assert result.best_epoch == int(np.argmax(accs)) < 4 and accs[-1] < max(accs)   # earliest best, not the last
    assert result.val_accuracy == accs[result.best_epoch]
    # a run stopped after the best epoch (same seed, constant lr: the same prefix) has that epoch's recall
    prefix = train(copy.deepcopy(model), data, None, TrainConfig(**{**cfg.__dict__, "epochs": result.best_epoch + 1}))
    np.testing.assert_array_equal(result.val_recall, prefix.val_recall)
    np.testing.assert_array_equal(result.val_recall, evaluate(
        prefix.model, data.x_val, data.y_val, Normalizer(data, CPU), resolve_runtime("cpu", "fp32"), 3).recall)


def test_val_once_at_the_end_by_default():
    data = blobs(n_per_class=20)
    result = train(make_model(data), data, None, TrainConfig(epochs=3, batch_size=16, lr=0.05, augment=False))
    assert ["val_acc" in h for h in result.history] == [False, False, True]
    assert result.best_epoch == 2 and result.val_accuracy == result.history[-1]["val_acc"]


def test_progress_events_per_step_and_epoch():
    data = blobs(n_per_class=17)   # 51 samples, batch 16 -> 3 full batches + a 3-sample partial batch
    events: list[dict] = []
    train(make_model(data), data, None, TrainConfig(epochs=2, batch_size=16, lr=0.05, augment=False),
          progress=events.append)
    steps = [e for e in events if e["event"] == "step"]
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [(e["epoch"], e["step"]) for e in steps] == [(ep, s) for ep in range(2) for s in range(1, 5)]
    assert all(e["steps"] == 4 and e["epochs"] == 2 and e["loss"] is None for e in steps)
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert all(isinstance(e["loss"], float) and 0 <= e["train_acc"] <= 1 for e in epochs)
    assert epochs[0]["val_acc"] is None and 0 <= epochs[1]["val_acc"] <= 1
    assert epochs[1]["seconds"] >= epochs[0]["seconds"] > 0


def test_should_stop_raises_stopped_between_steps():
    data = blobs(n_per_class=20)
    calls: list[int] = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) == 3

    steps: list[dict] = []
    with pytest.raises(Stopped):
        train(make_model(data), data, None, TrainConfig(epochs=5, batch_size=8, lr=0.05), should_stop=stop,
              progress=steps.append)
    assert len(steps) == 2


def test_partial_last_batch_kept_but_never_a_single_sample():
    assert _batch_bounds(40, 16) == [(0, 16), (16, 32), (32, 40)]
    assert _batch_bounds(33, 16) == [(0, 16), (16, 33)]
    assert _batch_bounds(5, 16) == [(0, 5)]


# ---- input checks ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("schedule", "cosine", "The 'schedule' parameter of TrainConfig must be one of multistep, onecycle, constant. "
                           "Got 'cosine' instead."),
    ("epochs", 0, "The 'epochs' parameter of TrainConfig must be an int >= 1. Got 0 instead."),
    ("record", frozenset({"loss"}), "The 'record' parameter of TrainConfig must be a subset of "
                                    "{correct, p_true, margin}. Got ['loss'] instead."),
    ("milestones", (0.75, 0.5), "The 'milestones' parameter of TrainConfig must be increasing fractions in the "
                                "range (0.0, 1.0). Got (0.75, 0.5) instead."),
    ("lr", float("inf"), "The 'lr' parameter of TrainConfig must be a finite float > 0. Got inf instead."),
    ("lr", float("nan"), "The 'lr' parameter of TrainConfig must be a finite float > 0. Got nan instead."),
    ("weight_decay", float("inf"), "The 'weight_decay' parameter of TrainConfig must be a finite float >= 0. "
                                   "Got inf instead."),
])
def test_bad_config_is_a_drop_error(field, value, message):
    data = blobs(n_per_class=5)
    cfg = TrainConfig(**{**TrainConfig(epochs=1, batch_size=8, lr=0.1).__dict__, field: value})
    with pytest.raises(DropError) as err:
        train(make_model(data), data, None, cfg)
    assert str(err.value) == message


@pytest.mark.parametrize("make_data", [blobs, bands])
def test_a_diverging_run_raises_diverged_at_its_first_bad_epoch(make_data):
    data = make_data()
    cfg = TrainConfig(epochs=3, batch_size=16, lr=1e6, augment=False)
    events: list[dict] = []
    with pytest.raises(Diverged) as err:
        train(make_model(data), data, None, cfg, progress=events.append)
    assert str(err.value) == "training diverged at epoch 1 (loss nan); lower --lr"
    assert isinstance(err.value, DropError)
    assert not [e for e in events if e["event"] == "epoch"]          # stopped before reporting the epoch


def test_bad_subset_is_a_drop_error():
    data = blobs(n_per_class=5)
    cfg = TrainConfig(epochs=1, batch_size=8, lr=0.1)
    with pytest.raises(DropError, match=r"train_idx must lie in \[0, 14\]. Got values in \[0, 99\]."):
        train(make_model(data), data, np.array([0, 99]), cfg)


# ---- schedules ------------------------------------------------------------------------------------------------

def test_multistep_drops_by_five_at_milestones():
    fn = SCHEDULES.get("multistep")
    per_epoch = [fn(e * 3, 3, 4, (0.5, 0.75)) for e in range(4)]
    np.testing.assert_allclose(per_epoch, [1.0, 1.0, 0.2, 0.04])
    assert fn(5, 3, 4, (0.5, 0.75)) == 1.0   # last step of epoch 1


def test_onecycle_warms_up_then_decays():
    fn = SCHEDULES.get("onecycle")
    f = np.array([fn(t, 10, 4, ()) for t in range(40)])
    assert f[0] < 0.1 and f.max() == 1.0 and np.argmax(f) == 10 and f[-1] < 0.05
    assert np.all(np.diff(f[:11]) > 0) and np.all(np.diff(f[10:]) < 0)


# ---- augmentation ---------------------------------------------------------------------------------------------

def test_translate_moves_content_and_fills_zeros():
    x = torch.zeros(2, 1, 6, 6, dtype=torch.uint8)
    x[:, 0, 2, 3] = 200
    out = flip_translate(x, torch.tensor([False, False]), torch.tensor([1, -2]), torch.tensor([-2, 2]), 2)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert out[0, 0, 3, 1] == 200 and out[1, 0, 0, 5] == 200
    assert int((out > 0).sum()) == 2


def test_flip_translate_is_a_mirror_flip_then_a_zero_filled_shift():
    x = torch.randint(1, 256, (6, 2, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    flip = torch.tensor([True, False, True, False, True, True])
    dy, dx = torch.tensor([0, 2, -2, 1, -1, 2]), torch.tensor([0, -2, 1, 2, 2, -1])
    out = flip_translate(x, flip, dy, dx, 2)
    for i in range(len(x)):
        m = x[i].flip(2) if flip[i] else x[i]
        want = torch.zeros_like(m)
        for r in range(5):
            for c in range(7):
                if 0 <= r - dy[i] < 5 and 0 <= c - dx[i] < 7:
                    want[:, r, c] = m[:, r - dy[i], c - dx[i]]
        assert torch.equal(out[i], want)


def test_random_translate_bounds_zero_fill_and_uniform_histogram():
    s, n = 3, 7000
    x = torch.full((n, 1, 10, 10), 255, dtype=torch.uint8)
    out = random_flip_translate(x, False, s, torch.Generator().manual_seed(0))
    filled = out == 0
    zero_rows = filled.all(3)[:, 0]                  # (n, H)
    zero_cols = filled.all(2)[:, 0]                  # (n, W)
    dy = zero_rows[:, :s].sum(1) - zero_rows[:, -s:].sum(1)   # zeros on top -> moved down
    dx = zero_cols[:, :s].sum(1) - zero_cols[:, -s:].sum(1)
    # everything not in a filled border row/column keeps its value: the fill is exactly the uncovered strip
    border = zero_rows[:, :, None] | zero_cols[:, None, :]
    assert torch.equal(filled[:, 0], border)
    for d in (dy, dx):
        assert int(d.abs().max()) == s
        counts = np.bincount((d + s).numpy(), minlength=2 * s + 1)
        assert stats.chisquare(counts).pvalue > 1e-3
    assert abs(float(np.corrcoef(dy.numpy(), dx.numpy())[0, 1])) < 0.05


def test_random_flip_flips_about_half():
    x = torch.arange(4, dtype=torch.uint8).view(1, 1, 1, 4).expand(4000, 2, 3, 4).contiguous()
    out = random_flip_translate(x, True, 0, torch.Generator().manual_seed(1))
    flipped = (out == x.flip(3)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert torch.all(flipped ^ kept)
    assert abs(flipped.float().mean().item() - 0.5) < 4 * 0.5 / np.sqrt(4000)


def test_augment_follows_the_dataset_and_leaves_tabular_data_alone():
    gen = torch.Generator().manual_seed(0)
    tab = blobs(n_per_class=4)
    assert augment(tab.x_train, tab, gen) is tab.x_train
    img = bands(n_per_class=4)
    img.flip, img.max_shift = False, 0
    assert torch.equal(augment(img.x_train, img, gen), img.x_train)


def test_normalizer_maps_raw_pixels_with_unit_mean_std():
    data = bands(n_per_class=1)
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    out = Normalizer(data, CPU)(x)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), [(0 - 0.3) / 0.3, (1 - 0.3) / 0.3], rtol=1e-6)


# ---- evaluation -----------------------------------------------------------------------------------------------

def test_confusion_recall_and_class_loss_match_sklearn_and_numpy():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 6, 700), rng.integers(0, 6, 700)
    cm = confusion_matrix(torch.tensor(y_true), torch.tensor(y_pred), 6)
    np.testing.assert_array_equal(cm.numpy(), sk_confusion(y_true, y_pred, labels=range(6)))
    np.testing.assert_allclose(class_recall(cm).numpy(), recall_score(y_true, y_pred, average=None))
    assert float(cm.diagonal().sum() / cm.sum()) == pytest.approx(accuracy_score(y_true, y_pred))
    losses = rng.random(700)
    expected = [losses[y_true == k].mean() for k in range(6)]
    np.testing.assert_allclose(class_mean(torch.tensor(losses), torch.tensor(y_true), 6).numpy(), expected)


def test_a_class_without_samples_is_nan_not_zero():
    cm = confusion_matrix(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 1]), 3)
    recall = class_recall(cm).numpy()
    np.testing.assert_array_equal(recall[:2], [0.5, 1.0])
    assert np.isnan(recall[2])


def test_evaluate_agrees_with_predict():
    data = blobs(n_per_class=10)
    model = make_model(data)
    ev = evaluate(model, data.x_test, data.y_test, Normalizer(data, CPU), resolve_runtime("cpu", "fp32"), 3,
                  batch_size=7)
    pred = predict(model, data.x_test, data, precision="fp32").argmax(1).numpy()
    assert ev.accuracy == pytest.approx(accuracy_score(data.y_test.numpy(), pred))
    np.testing.assert_allclose(ev.recall, recall_score(data.y_test.numpy(), pred, average=None))


# ---- final outputs --------------------------------------------------------------------------------------------

def test_final_outputs_logits_and_embeddings():
    data = bands(n_per_class=10)
    model = make_model(data)
    out = final_outputs(model, data, {"logits", "embeddings"}, precision="fp32", batch_size=7)
    assert out["logits"].shape == (30, 3) and out["embeddings"].shape == (30, 32)
    np.testing.assert_allclose(out["logits"], predict(model, data.x_train, data, precision="fp32").numpy(),
                               rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        head = model.head(torch.tensor(out["embeddings"])).numpy()
    np.testing.assert_allclose(head, out["logits"], rtol=1e-5, atol=1e-5)
    assert model.training   # mode restored


def test_final_outputs_grad_norms_match_one_backward_per_sample():
    data = bands(n_per_class=4)       # images: also runs the channels_last path through the ghost norms
    model = make_model(data)
    norms = final_outputs(model, data, {"grad_norms"}, precision="fp32")["grad_norms"]
    x = Normalizer(data, CPU)(data.x_train)
    model.eval()
    expected = []
    for i in range(x.shape[0]):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i:i + 1]), data.y_train[i:i + 1]).backward()
        expected.append(torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters())).item())
    np.testing.assert_allclose(norms, expected, rtol=1e-4)


# ---- device and precision -------------------------------------------------------------------------------------

def test_device_names():
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(DropError, match=r"The 'device' parameter must be one of auto, cpu, cuda \(or cuda:N\). "
                                        r"Got 'tpu' instead."):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_gpu_says_so():
    with pytest.raises(DropError, match="PyTorch sees no CUDA GPU on this machine"):
        resolve_device("cuda")


def test_channels_last_only_for_image_batches():
    rt = resolve_runtime("cpu", "fp32")
    assert rt.layout(torch.zeros(2, 3, 4, 4)).is_contiguous(memory_format=torch.channels_last) == rt.channels_last
    flat = torch.zeros(2, 5)
    assert rt.layout(flat) is flat


def test_precision_auto_follows_the_cpu_flags():
    assert cpu_has_native_bf16("flags\t\t: fpu sse avx512f avx512_bf16\n")
    assert cpu_has_native_bf16("flags : fpu amx_bf16 amx_tile")
    assert not cpu_has_native_bf16("flags : fpu avx2 avx512f")
    assert resolve_precision("auto", CPU, cpuinfo="flags : avx512_bf16") == torch.bfloat16
    assert resolve_precision("auto", CPU, cpuinfo="flags : avx2") == torch.float32
    assert resolve_precision("fp32", CPU, cpuinfo="flags : avx512_bf16") == torch.float32
    assert resolve_precision("bf16", CPU, cpuinfo="flags : avx2") == torch.bfloat16
    with pytest.raises(DropError, match="The 'precision' parameter must be one of auto, bf16, fp32. Got 'fp16'"):
        resolve_precision("fp16", CPU)
