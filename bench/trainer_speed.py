"""Our trainer against an authors'-style training loop, side by side, same model and data (bounded prefix).

A  reference ("their style", written here from the description of the DRoP authors' trainer,
   not copied): a torchvision-style dataset over an in-memory uint8 HWC array
   (``Image.fromarray`` per item), PIL RandomHorizontalFlip + RandomAffine(translate=0.15)
   + ToTensor + Normalize, Subset + index wrapper, DataLoader(batch 128, shuffle,
   num_workers=0), fp32 NCHW, mini-batch logits kept for the epoch's train metrics, and
   val + test evaluated through DataLoaders with one sklearn call per class.
B  ours, faithful: ``drop_core.train.train`` in fp32 with augmentation (device-resident
   uint8 data, batched flip + translate, channels_last), then the test split evaluated by
   ``evaluate``.
C  ours, fast: B with ``precision="auto"`` (bf16 autocast on CUDA and on CPUs with native
   bf16).

All three start from the same initial ``state_dict`` and do the same bounded prefix: ONE
epoch over the same random subset of density ``--density`` (default 0.1: 5,000 CIFAR-10
images, 40 steps of 128: a bounded CPU prefix, extrapolated) plus ONE val + test evaluation.
The data are decoded once into a uint8 array shared by all three (no per-epoch JPEG
decode). Each configuration gets a short untimed warm-up, then ``--reps`` timed
repetitions; medians of wall time and of process CPU time are reported (CPU time is the
steadier figure on a shared machine). Printed last: training img/s and the speed-ups,
for the same work and, extrapolated, per epoch with C's evaluation policy (a final model
evaluates val + test once at the end of its run instead of every epoch). Also printed: where C's time goes
(its epoch + evaluation once more, stage by stage), and the convolution/matmul GFLOP/s that A, B and C
achieve next to this machine's own fp32 and bf16 matmul peak (one big ``torch.matmul``, same threads).
All three run in one process with the trainer's CPU allocator setting (glibc keeps freed buffers), and
their timed repetitions are interleaved, so a change in the machine's load hits all three alike.

    python bench/trainer_speed.py [--data /tmp/cifar10] [--density 0.1] [--reps 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from torch import nn
from torch.utils.data import DataLoader, Subset
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drop_core.data.base import Dataset  # noqa: E402
from drop_core.models import build_model  # noqa: E402
from drop_core.train import TrainConfig, train  # noqa: E402
from drop_core.train.augment import Normalizer, augment  # noqa: E402
from drop_core.train.device import CPU_BF16_FLAGS, keep_freed_memory, resolve_runtime  # noqa: E402
from drop_core.train.evaluate import evaluate  # noqa: E402
from drop_core.train.trainer import _batch_bounds, make_optimizer  # noqa: E402

LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4     # SGD as in the authors' trainer (lr per model; 0.1 for VGG/CIFAR)
TRANSLATE = 0.15                                 # RandomAffine(translate=(0.15, 0.15)): up to 5 px on 32 px
GEN_TRAIN, GEN_TEST = 50_000, 10_000             # generated CIFAR-shaped data when no --data is given


# ---- data ---------------------------------------------------------------------------------------------------

def generated_cifar(seed: int = 0) -> Dataset:
    """Random 32x32 RGB uint8 images with 10 labels, CIFAR-10's sizes and normalisation (speed only)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (GEN_TRAIN + GEN_TEST, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (GEN_TRAIN + GEN_TEST,), generator=g)
    half = GEN_TRAIN + GEN_TEST // 2
    return Dataset("generated-cifar", [f"c{i}" for i in range(10)], x[:GEN_TRAIN], y[:GEN_TRAIN],
                   x[GEN_TRAIN:half], y[GEN_TRAIN:half], x[half:], y[half:],
                   mean=torch.tensor([0.4914, 0.4822, 0.4465]), std=torch.tensor([0.2470, 0.2435, 0.2616]),
                   is_image=True, flip=True, max_shift=5, source="generated")


def load(path: str | None, eval_n: int | None) -> Dataset:
    """The benchmark data: an image folder or generated data; val and test cut to a random ``eval_n`` each."""
    if path is None:
        data = generated_cifar()
    else:
        from drop_core.data import load_dataset
        data = load_dataset(f"imagefolder:{path}")
        data.flip, data.max_shift = True, round(TRANSLATE * data.input_shape[-1])   # the authors' CIFAR augmentation
    if eval_n is not None:
        rng = np.random.default_rng(0)
        keep_val = torch.as_tensor(np.sort(rng.permutation(data.x_val.shape[0])[:eval_n]))
        keep_test = torch.as_tensor(np.sort(rng.permutation(data.x_test.shape[0])[:eval_n]))
        data.x_val, data.y_val = data.x_val[keep_val], data.y_val[keep_val]
        data.x_test, data.y_test = data.x_test[keep_test], data.y_test[keep_test]
    return data


# ---- A: the authors'-style loop -----------------------------------------------------------------------------

class ArrayImages(torch.utils.data.Dataset):
    """Like torchvision.datasets.CIFAR10: an HWC uint8 array, one PIL image per item."""

    def __init__(self, images: np.ndarray, targets: np.ndarray, transform) -> None:
        self.data, self.targets, self.transform = images, targets.tolist(), transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


class WithIndex(torch.utils.data.Dataset):
    """The index wrapper the authors put around a Subset (returns the sample's index too)."""

    def __init__(self, inner: torch.utils.data.Dataset) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int):
        x, y = self.inner[i]
        return x, y, i


def classwise_metrics(y_true: np.ndarray, y_pred: np.ndarray, losses: np.ndarray, k: int) -> dict:
    """Per-class precision/recall/F1/loss with one sklearn call per class, plus overall accuracy and loss."""
    per_class = {}
    for c in range(k):
        mask = y_true == c
        p, r, f, _ = precision_recall_fscore_support(mask, y_pred == c, average="binary", zero_division=0)
        per_class[c] = {"precision": p, "recall": r, "f1": f,
                        "loss": float(losses[mask].mean()) if mask.any() else float("nan")}
    return {"accuracy": accuracy_score(y_true, y_pred), "loss": float(losses.mean()), "classes": per_class}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def now() -> np.ndarray:
    """(wall clock, this process's CPU time) in seconds; CPU time is the steadier figure on a shared machine."""
    return np.array([time.perf_counter(), time.process_time()])


def reference_epoch(model: nn.Module, data: Dataset, idx: np.ndarray, batch: int,
                    device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """A: one epoch over the subset ``idx``, then its train/val/test metrics; returns (train, eval)
    (wall s, CPU s) pairs."""
    mean, std = data.mean.tolist(), data.std.tolist()
    shift = data.max_shift / data.input_shape[-1]
    train_tf = transforms.Compose([transforms.RandomHorizontalFlip(),
                                   transforms.RandomAffine(degrees=0, translate=(shift, shift)),
                                   transforms.ToTensor(), transforms.Normalize(mean, std)])
    plain_tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    hwc = lambda x: np.ascontiguousarray(x.permute(0, 2, 3, 1).squeeze(-1).numpy())   # noqa: E731
    train_set = WithIndex(Subset(ArrayImages(hwc(data.x_train), data.y_train.numpy(), train_tf),
                                 idx))
    loader = DataLoader(train_set, batch_size=batch, shuffle=True, num_workers=0)
    eval_loaders = {split: DataLoader(ArrayImages(hwc(x), y.numpy(), plain_tf), batch_size=batch, shuffle=False,
                                      num_workers=0)
                    for split, x, y in (("val", data.x_val, data.y_val), ("test", data.x_test, data.y_test))}
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[80, 120], gamma=0.2)
    k = data.num_classes

    sync(device)
    t0 = now()
    model.train()
    outs, targets = [], []
    for x, y, _ in loader:
        x, y = x.to(device), y.to(device)
        opt.zero_grad()
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        opt.step()
        outs.append(logits.detach().cpu())
        targets.append(y.cpu())
    sched.step()
    sync(device)
    t1 = now()

    logits = torch.cat(outs)
    y_tr = torch.cat(targets)
    # per-epoch train/val/test metrics, kept as the authors' trainer keeps them (they save them to JSON)
    metrics = {"train": classwise_metrics(y_tr.numpy(), logits.argmax(1).numpy(),
                                          F.cross_entropy(logits, y_tr, reduction="none").numpy(), k)}
    model.eval()
    for split, eval_loader in eval_loaders.items():
        preds, losses, ys = [], [], []
        with torch.no_grad():
            for x, y in eval_loader:
                out = model(x.to(device))
                preds.append(out.argmax(1).cpu())
                losses.append(F.cross_entropy(out, y.to(device), reduction="none").cpu())
                ys.append(y)
        metrics[split] = classwise_metrics(torch.cat(ys).numpy(), torch.cat(preds).numpy(),
                                           torch.cat(losses).numpy(), k)
    sync(device)
    return t1 - t0, now() - t1


# ---- B / C: ours --------------------------------------------------------------------------------------------

def ours_epoch(model: nn.Module, data: Dataset, idx: np.ndarray, batch: int, device: torch.device,
               precision: str) -> tuple[np.ndarray, np.ndarray]:
    """B/C: one epoch over the subset ``idx`` with val evaluated by the trainer, then test evaluated once;
    returns (train, eval) (wall s, CPU s) pairs. The end of training is stamped (after a device sync)
    by the progress callback at the last step."""
    cfg = TrainConfig(epochs=1, batch_size=batch, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
                      augment=True, precision=precision, eval_val_every_epoch=True)
    stamps: list[np.ndarray] = []

    def on_event(event: dict) -> None:
        if event["event"] == "step" and event["step"] == event["steps"]:
            sync(device)
            stamps.append(now())

    sync(device)
    t0 = now()
    result = train(model, data, idx, cfg, device=device, progress=on_event)    # steps + the val evaluation
    rt = resolve_runtime(device, precision)
    evaluate(result.model, data.x_test, data.y_test, Normalizer(data, rt.device), rt, data.num_classes)  # synced
    return stamps[0] - t0, now() - stamps[0]


# ---- where the time goes, and how far from the machine's limit ----------------------------------------------

STAGES = ("augmentation", "forward", "backward", "optimizer step", "metrics", "host syncs", "evaluation")


def matmul_peak(dtype: torch.dtype, device: torch.device) -> float:
    """GFLOP/s of one big square ``torch.matmul`` in ``dtype`` with this process's threads: the best of up to
    30 calls within about 2 s, at least 5 unless they take over 10 s (an emulated bf16 matmul runs at ~1 GFLOP/s)
    (the best call is the one least disturbed by other load on the machine)."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    torch.matmul(a, b)
    best, start = float("inf"), time.perf_counter()
    for i in range(30):
        elapsed = time.perf_counter() - start
        if (i >= 5 and elapsed > 2.0) or elapsed > 10.0:
            break
        sync(device)
        t = time.perf_counter()
        torch.matmul(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def image_flops(base: nn.Module, data: Dataset, batch: int, precision: str,
                device: torch.device) -> tuple[float, float]:
    """Convolution and matmul FLOPs per image (FlopCounterMode) of a training step (forward + backward)
    and of an eval forward; elementwise, BatchNorm and pooling work is not counted."""
    rt = resolve_runtime(device, precision)
    model = rt.place(copy.deepcopy(base), data.is_image).train()
    x = rt.layout(Normalizer(data, rt.device)(data.x_train[:batch].to(rt.device)))
    with FlopCounterMode(display=False) as fwd, rt.autocast():
        loss = F.cross_entropy(model(x), data.y_train[:batch].to(rt.device))
    with FlopCounterMode(display=False) as bwd:
        loss.backward()
    return (fwd.get_total_flops() + bwd.get_total_flops()) / batch, fwd.get_total_flops() / batch


def stage_times(model: nn.Module, data: Dataset, idx: np.ndarray, batch: int, device: torch.device,
                precision: str) -> dict[str, np.ndarray]:
    """One of C's epochs plus its val + test evaluation, taken apart: the trainer's own step, built from
    its own pieces, with a device sync and a (wall s, CPU s) stamp at every stage boundary."""
    rt = resolve_runtime(device, precision)
    dev = rt.device
    rt.place(model, data.is_image).train()
    x_all, y_all, sub = data.x_train.to(dev), data.y_train.to(dev), torch.as_tensor(idx, device=dev)
    normalize, gen = Normalizer(data, dev), torch.Generator(device=dev).manual_seed(0)
    bounds = _batch_bounds(len(idx), batch)
    opt, sched = make_optimizer(model, TrainConfig(epochs=1, batch_size=batch, lr=LR, momentum=MOMENTUM,
                                                   weight_decay=WEIGHT_DECAY), len(bounds))
    spent = {stage: np.zeros(2) for stage in STAGES}
    clock = [now()]

    def lap(stage: str) -> None:
        sync(device)
        clock.append(now())
        spent[stage] += clock[-1] - clock[-2]

    order = torch.randperm(len(idx), generator=gen, device=dev)
    loss_sum, hits = torch.zeros((), device=dev), torch.zeros((), dtype=torch.long, device=dev)
    for lo, hi in bounds:
        pos = sub[order[lo:hi]]
        xb, yb = rt.layout(normalize(augment(x_all.index_select(0, pos), data, gen))), y_all[pos]
        lap("augmentation")
        with rt.autocast():
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
        lap("forward")
        opt.zero_grad(set_to_none=True)
        lap("optimizer step")
        loss.backward()
        lap("backward")
        opt.step()
        sched.step()
        lap("optimizer step")
        with torch.no_grad():
            loss_sum += loss.detach() * (hi - lo)
            hits += (logits.argmax(1) == yb).sum()
        lap("metrics")
    torch.stack([loss_sum, hits.float()]).tolist()
    lap("host syncs")
    for x, y in ((data.x_val, data.y_val), (data.x_test, data.y_test)):
        evaluate(model, x, y, normalize, rt, data.num_classes)
    lap("evaluation")
    return spent


# ---- driver -------------------------------------------------------------------------------------------------

def _reference_step(base: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[nn.Module, float]:
    """One plain fp32 SGD step, A's way, from ``base``'s weights; returns the model and the batch loss."""
    model = copy.deepcopy(base).to(x.device).train()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return model, loss.item()


def _max_gap(a: nn.Module, b: nn.Module) -> float:
    return max((p.float() - q.float()).abs().max().item()
               for p, q in zip(a.state_dict().values(), b.state_dict().values()) if p.is_floating_point())


def equivalence_check(base: nn.Module, data: Dataset, batch: int, device: torch.device) -> str:
    """One fp32 step without augmentation on the same batch from the same weights, A's way and ours
    (so the timings compare the same training): the batch losses must agree to float tolerance, the updates closely.
    The updates cannot agree to rounding: uint8 images give exact max-pool ties, and any float-level
    difference (PIL ToTensor vs our fused normaliser, channels_last kernels, batch order) breaks them
    differently. A's own sensitivity is shown beside it: A on PIL input vs A on our normalised input."""
    idx = np.random.default_rng(1).choice(data.x_train.shape[0], batch, replace=False)
    ours = copy.deepcopy(base)
    cfg = TrainConfig(epochs=1, batch_size=batch, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
                      schedule="constant", augment=False, precision="fp32")
    loss_ours = train(ours, data, idx, cfg, device=device).history[0]["loss"]

    plain = transforms.Compose([transforms.ToTensor(), transforms.Normalize(data.mean.tolist(), data.std.tolist())])
    hwc = data.x_train[idx].permute(0, 2, 3, 1).squeeze(-1).numpy()
    x_pil = torch.stack([plain(Image.fromarray(img)) for img in hwc]).to(device)
    x_ours = Normalizer(data, device)(data.x_train[idx].to(device))
    y = data.y_train[idx].to(device)
    ref, loss_ref = _reference_step(base, x_pil, y)
    ref_rounded, _ = _reference_step(base, x_ours, y)
    update = _max_gap(ref, base.to(device))
    rel, rel_self = _max_gap(ref, ours.to(device)) / update, _max_gap(ref, ref_rounded) / update
    verdict = "OK" if abs(loss_ref - loss_ours) < 1e-5 and rel < 0.05 else "MISMATCH"
    return (f"# equivalence ({verdict}): one fp32 step, no augmentation, same batch and initial weights: "
            f"loss A {loss_ref:.6f} vs ours {loss_ours:.6f}; weights differ by {rel:.1%} of the largest update "
            f"(A vs itself on our rounding of the input: {rel_self:.1%}; max-pool ties on uint8 images)")


def cpu_name() -> str:
    path = Path("/proc/cpuinfo")
    if path.exists():
        for line in path.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cpu_bf16_flags() -> str:
    """The native-bf16 flags of /proc/cpuinfo that this CPU has (AVX-512 BF16, AMX), comma-separated."""
    path = Path("/proc/cpuinfo")
    flags = set(path.read_text().split()) if path.exists() else set()
    return ", ".join(f for f in CPU_BF16_FLAGS if f in flags)


def epochs_at(density: float, full_epochs: int) -> int:
    """The authors' epoch scaling for a pruned run: int((0.5 + 0.5 d) E / d)."""
    return int((0.5 + 0.5 * density) * full_epochs / density)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="image-folder root (PATH/train, PATH/test); default: generated 32x32 data")
    ap.add_argument("--model", default="cnn", help="model registry name (default: cnn)")
    ap.add_argument("--density", type=float, default=0.1,
                    help="the timed prefix is one epoch over a random subset of this fraction (default 0.1)")
    ap.add_argument("--full-epochs", type=int, default=160, help="full-data epochs E of the recipe (default 160)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per configuration (median reported)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: one run per core)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--eval-n", type=int, default=None, help="random sample of val and of test (default: all)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    device = resolve_runtime(args.device, "fp32").device
    t_load = time.perf_counter()
    data = load(args.data, args.eval_n)
    t_load = time.perf_counter() - t_load
    torch.manual_seed(0)
    base = build_model(args.model, data.input_shape, data.num_classes)
    init = copy.deepcopy(base.state_dict())
    fast = resolve_runtime(device, "auto")
    n_train = data.x_train.shape[0]
    idx = np.random.default_rng(0).choice(n_train, int(args.density * n_train), replace=False)   # all classes
    warm_idx = idx[:5 * args.batch_size + 8]
    n_val, n_test = data.x_val.shape[0], data.x_test.shape[0]
    steps = -(-len(idx) // args.batch_size)
    run_epochs = epochs_at(args.density, args.full_epochs)

    print(f"# trainer_speed: torch {torch.__version__}, device {device} "
          f"({torch.cuda.get_device_name(device) if device.type == 'cuda' else cpu_name()}), "
          f"{torch.get_num_threads()} thread(s), {args.reps} timed reps + 1 short warm-up per configuration")
    print(f"# data: {data.name} ({data.source or 'generated'}), train {n_train}, val {n_val}, test {n_test}, "
          f"decoded once in {t_load:.1f} s; model {args.model}; C runs in {fast.dtype} "
          f"(channels_last={fast.channels_last}; CPU bf16 flags: {cpu_bf16_flags() or 'none'})")
    print(f"# bounded prefix: ONE epoch at density {args.density} ({len(idx)} images, {steps} steps of "
          f"{args.batch_size}, partial last batch kept) + one val+test evaluation ({n_val + n_test} images); "
          f"not a full run")

    print(equivalence_check(base, data, args.batch_size, device))
    allocator = keep_freed_memory()   # process-wide (the trainer sets it on CPU): A gets it too, from the start
    print(f"# glibc keeps freed step buffers (trainer's CPU allocator setting): {allocator}, for A, B and C alike")
    configs = {
        "A reference (PIL + DataLoader, fp32)": lambda m, i: reference_epoch(m, data, i, args.batch_size, device),
        "B ours faithful (fp32)": lambda m, i: ours_epoch(m, data, i, args.batch_size, device, "fp32"),
        f"C ours fast ({'bf16' if fast.dtype == torch.bfloat16 else 'fp32'})":
            lambda m, i: ours_epoch(m, data, i, args.batch_size, device, "auto"),
    }

    def fresh() -> nn.Module:
        model = copy.deepcopy(base)
        model.load_state_dict(init)
        return model.to(device)

    for run in configs.values():
        run(fresh(), warm_idx)                                                   # warm-up, untimed
    reps: dict[str, list[np.ndarray]] = {name: [] for name in configs}
    for _ in range(args.reps):            # interleaved, so a change in the machine's load hits all three alike
        for name, run in configs.items():
            reps[name].append(np.concatenate(run(fresh(), idx)))
    timings = {}
    for name, times in reps.items():
        med = np.median(np.array(times), axis=0)   # train wall, train cpu, eval wall, eval cpu
        timings[name] = med
        print(f"{name:38s} train {len(idx) / med[0]:6.0f} img/s ({len(idx) / med[1]:6.0f} per CPU-s) | "
              f"val+test eval {med[2]:6.2f} s ({med[3]:6.2f} CPU-s) | epoch + eval {med[0] + med[2]:6.2f} s")

    (a, b, c) = timings.values()
    per_epoch = lambda t, evals: t[[0, 1]] + t[[2, 3]] * evals   # noqa: E731  (wall, cpu) per epoch
    a_ep, b_ep, c_ep, c_pol = per_epoch(a, 1), per_epoch(b, 1), per_epoch(c, 1), per_epoch(c, 1 / run_epochs)
    print(f"# C's evaluation policy for a final model at d={args.density} ({run_epochs} epochs with the "
          f"(0.5+0.5d)/d scaling of E={args.full_epochs}): val+test once at the end instead of every epoch "
          f"-> {c_pol[0]:.2f} s per epoch (extrapolated from the timed parts)")

    flops_train, flops_eval = image_flops(base, data, args.batch_size, "auto", device)
    work = (len(idx) * flops_train + (n_val + n_test) * flops_eval) / 1e9          # GFLOP of the same work
    spent = stage_times(fresh(), data, idx, args.batch_size, device, "auto")
    peak = {dt: matmul_peak(dt, device) for dt in (torch.float32, torch.bfloat16)}
    total = sum(t[0] for t in spent.values())
    flops = {"forward": len(idx) * flops_eval, "backward": len(idx) * (flops_train - flops_eval),
             "evaluation": (n_val + n_test) * flops_eval}
    print(f"# where C's time goes (one more epoch + val/test eval, a device sync at every stage boundary; "
          f"conv/matmul FLOPs by FlopCounterMode: {flops_train / 1e6:.0f} M per training image, "
          f"{flops_eval / 1e6:.0f} M per eval image):")
    for stage, t in spent.items():
        rate = f", {flops[stage] / t[0] / 1e9:5.0f} GFLOP/s" if stage in flops else ""
        print(f"#   {stage:15s} {t[0]:6.3f} s ({t[1]:6.3f} CPU-s) {t[0] / total:6.1%}{rate}")
    print(f"#   sum {total:.2f} s; C's timed epoch + eval {c_ep[0]:.2f} s")

    print("# ratios: wall clock (CPU time in brackets; this machine is shared, CPU time is the steadier one)")
    print(f"training img/s: A {len(idx) / a[0]:.0f}, B {len(idx) / b[0]:.0f}, C {len(idx) / c[0]:.0f}; "
          f"training speed-up B {a[0] / b[0]:.2f}x ({a[1] / b[1]:.2f}x), C {a[0] / c[0]:.2f}x ({a[1] / c[1]:.2f}x)")
    c_dtype = "bf16" if fast.dtype == torch.bfloat16 else "fp32"
    print(f"achieved conv/matmul GFLOP/s on the same work ({work:.0f} GFLOP): A {work / a_ep[0]:.0f}, "
          f"B {work / b_ep[0]:.0f}, C {work / c_ep[0]:.0f} (C training alone "
          f"{len(idx) * flops_train / 1e9 / c[0]:.0f}); this machine's peak, one big torch.matmul with "
          f"{torch.get_num_threads()} thread(s): fp32 {peak[torch.float32]:.3g}, bf16 {peak[torch.bfloat16]:.3g} "
          f"GFLOP/s -> C at {work / c_ep[0] / peak[fast.dtype]:.0%} of the {c_dtype} peak")
    print(f"speed-up vs A, same work (one epoch + one val/test eval): B faithful {a_ep[0] / b_ep[0]:.2f}x "
          f"({a_ep[1] / b_ep[1]:.2f}x), C fast {a_ep[0] / c_ep[0]:.2f}x ({a_ep[1] / c_ep[1]:.2f}x)")
    print(f"speed-up vs A, per epoch with C's eval policy: C fast {a_ep[0] / c_pol[0]:.2f}x "
          f"({a_ep[1] / c_pol[1]:.2f}x)")

if __name__ == "__main__":
    main()
