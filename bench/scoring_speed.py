"""Scoring speed: GraNd (ghost norms, torch.func) and CoreSet (numpy) against straightforward loops.

    python bench/scoring_speed.py                 # 50,000 samples; minutes on an idle 2-core CPU,
                                                  # much longer when other jobs share the cores
    python bench/scoring_speed.py --device cuda   # GraNd on a GPU

GraNd: per-sample gradient norms of a small CIFAR-shaped CNN over N random 3x32x32 inputs:
``per_sample_grad_norms`` with ghost norms (one batched backward per chunk, measured on all N)
and with torch.func per-sample gradients, against one backward pass per sample, and the ghost
norms' largest relative difference from the loop on a sample. Also timed: the floor, a batched
forward + backward with no norms at all, which bounds what any exact batched method can reach.
CoreSet: greedy k-center picks on N x 512 random embeddings, ``greedy_k_center`` against
(a) the authors' structure (scipy ``distance_matrix`` + ``vstack`` + ``min`` per pick) and
(b) a pure Python loop over samples per pick. The loop baselines (and torch.func) are timed on
a subset (fewer samples or fewer picks) and extrapolated linearly to the full size; every
extrapolated figure is labelled so. Each measurement follows one burn-in call.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import distance_matrix
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drop_core.scoring.coreset import greedy_k_center  # noqa: E402
from drop_core.train.device import CHANNELS_LAST_DEVICES  # noqa: E402
from drop_core.train.grad_norms import per_sample_grad_norms  # noqa: E402
from drop_core.train.outputs import GRAD_BATCH  # noqa: E402


def small_cnn() -> nn.Module:
    """A 3x32x32 -> 10 CNN (~40k parameters) with BatchNorm, like the project's CPU nets."""
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.MaxPool2d(2)]
    return nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 64), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(64, 10))


def timed(fn, sync) -> float:
    """Seconds of one call of ``fn`` (after the caller's burn-in), synchronising the device."""
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def bench_grand(n: int, loop_n: int, func_n: int, batch: int, device: str) -> tuple[float, float, float, float]:
    """(ghost seconds for n samples, loop and torch.func seconds extrapolated from loop_n / func_n to n, floor).

    The floor is one batched forward and one backward of the summed loss to the first layer's
    output (what the ghost norms start from), without any norm: no exact batched method is
    faster, so ``loop / floor`` bounds the speed-up any of them can reach on this device.

    The ghost norms run as ``final_outputs`` runs them (the project's layout: channels_last where
    ``CHANNELS_LAST_DEVICES`` names the device); the loop is timed in NCHW and in channels_last and
    the faster one is the baseline.
    """
    torch.manual_seed(0)
    model = small_cnn().to(device).eval()
    x = torch.randn(n, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    layouts = {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}
    ours = "channels_last" if torch.device(device).type in CHANNELS_LAST_DEVICES else "NCHW"

    def use(layout: str) -> torch.Tensor:
        model.to(memory_format=layouts[layout])
        return x.contiguous(memory_format=layouts[layout])

    def chunks(xs: torch.Tensor, count: int, method: str) -> torch.Tensor:
        return torch.cat([per_sample_grad_norms(model, xs[s:min(s + batch, count)], y[s:min(s + batch, count)],
                                                method=method, batch_size=batch) for s in range(0, count, batch)])

    def loop(xs: torch.Tensor, count: int) -> torch.Tensor:
        out = torch.empty(count, device=device)
        for i in range(count):
            model.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(xs[i:i + 1]), y[i:i + 1]).backward()
            out[i] = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
        return out

    def floor(xs: torch.Tensor, count: int) -> None:
        for s in range(0, count, batch):
            first = model[0](xs[s:s + batch])
            loss = nn.functional.cross_entropy(model[1:](first), y[s:s + batch], reduction="sum")
            torch.autograd.grad(loss, first)

    t_loop = {}
    for layout in layouts:
        xs = use(layout)
        loop(xs, 8)                                                               # burn-in
        t_loop[layout] = timed(lambda xs=xs: loop(xs, loop_n), sync) * n / loop_n
    base = min(t_loop, key=t_loop.get)
    xs = use(ours)
    chunks(xs, batch, "ghost"), chunks(xs, 8, "func")                             # burn-in
    check = min(n, 256)
    want = loop(xs, check)
    err = ((chunks(xs, check, "ghost") - want).abs() / want).max().item()
    t_ghost = timed(lambda: chunks(xs, n, "ghost"), sync)
    t_func = timed(lambda: chunks(xs, func_n, "func"), sync) * n / func_n
    floor(xs, batch)                                                              # burn-in
    t_floor = timed(lambda: floor(xs, n), sync)
    for layout, t in t_loop.items():
        print(f"GraNd  loop (one backward per sample, {layout}) on {n} samples: {t:8.3f} s "
              f"EXTRAPOLATED from {loop_n} samples x {n / loop_n:.0f}" + ("  <- baseline" if layout == base else ""))
    print(f"GraNd  torch.func per-sample grads ({ours}, chunks of {batch}) on {n} samples: {t_func:8.3f} s "
          f"EXTRAPOLATED from {func_n} samples x {n / func_n:.0f}")
    print(f"GraNd  ghost norms ({ours}, chunks of {batch}) on {n} samples: {t_ghost:8.3f} s measured")
    print(f"GraNd  floor: batched forward + backward to the first layer's output, no norms ({ours}), "
          f"on {n} samples: {t_floor:8.3f} s measured")
    print(f"GraNd  ghost norms vs the loop on {check} samples: max relative difference {err:.1e}")
    return t_ghost, t_loop[base], t_func, t_floor


def authors_style_k_center(x: np.ndarray, first: int, picks: int) -> list[int]:
    """The authors' per-pick structure: distance_matrix to the last centre, vstack, min."""
    chosen = [first]
    min_dist = distance_matrix(x[first][None, :], x)
    for _ in range(picks - 1):
        dist = distance_matrix(x[chosen[-1]][None, :], x)
        min_dist = np.min(np.vstack((min_dist, dist)), axis=0)[None, :]
        min_dist[0, chosen] = -1.0
        chosen.append(int(np.argmax(min_dist)))
    return chosen


def python_loop_k_center(x: np.ndarray, first: int, picks: int) -> list[int]:
    """A straightforward loop: every pick walks over all samples, one norm at a time."""
    chosen = [first]
    min_dist = [float("inf")] * len(x)
    for _ in range(picks - 1):
        centre = x[chosen[-1]]
        for i in range(len(x)):
            d = float(np.linalg.norm(x[i] - centre))
            if d < min_dist[i]:
                min_dist[i] = d
        for c in chosen:
            min_dist[c] = -1.0
        chosen.append(int(np.argmax(min_dist)))
    return chosen


def bench_coreset(n: int, dim: int, picks: int, authors_picks: int,
                  loop_picks: int) -> tuple[float, float, float]:
    """(vectorised, authors-style extrapolated, python-loop extrapolated) seconds for ``picks``."""
    x = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    greedy_k_center(x, 3, np.random.default_rng(0))                      # burn-in
    t_vec = timed(lambda: greedy_k_center(x, picks, np.random.default_rng(0)), lambda: None)
    first = int(greedy_k_center(x, 1, np.random.default_rng(0))[0])
    t_auth = timed(lambda: authors_style_k_center(x, first, authors_picks), lambda: None)
    t_auth *= picks / authors_picks
    t_loop = timed(lambda: python_loop_k_center(x, first, loop_picks + 1), lambda: None)
    t_loop *= picks / loop_picks
    same = greedy_k_center(x, 10, np.random.default_rng(0)).tolist() == \
        authors_style_k_center(x, first, 10)
    print(f"CoreSet vectorised on {n} x {dim}, {picks} picks:                 {t_vec:8.3f} s measured")
    print(f"CoreSet authors-style (distance_matrix per pick), {picks} picks: {t_auth:8.3f} s "
          f"EXTRAPOLATED from {authors_picks} picks")
    print(f"CoreSet Python loop over samples, {picks} picks:                {t_loop:8.3f} s "
          f"EXTRAPOLATED from {loop_picks} picks")
    print(f"CoreSet first 10 picks equal the authors-style picks: {same}")
    return t_vec, t_auth, t_loop


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50_000, help="samples (default 50,000)")
    p.add_argument("--device", default="cpu", help="device for GraNd: cpu or cuda")
    p.add_argument("--grand-batch", type=int, default=GRAD_BATCH, help="GraNd chunk size (final_outputs' default)")
    p.add_argument("--grand-loop-n", type=int, default=500, help="samples timed for the GraNd loop, per layout")
    p.add_argument("--grand-func-n", type=int, default=2000, help="samples timed for GraNd via torch.func")
    p.add_argument("--dim", type=int, default=512, help="CoreSet embedding width")
    p.add_argument("--picks", type=int, default=500, help="CoreSet picks timed (vectorised)")
    p.add_argument("--authors-picks", type=int, default=50, help="picks timed, authors-style")
    p.add_argument("--loop-picks", type=int, default=2, help="picks timed, Python loop")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for every timed run (default 1: a shared 2-core machine; 0 = torch default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# scoring_speed: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, "
          f"device {args.device}"
          + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else ""))
    print("# one burn-in call, then one timed run of each; loop baselines extrapolated linearly")
    g_ghost, g_loop, g_func, g_floor = bench_grand(args.n, args.grand_loop_n, args.grand_func_n, args.grand_batch,
                                          args.device)
    c_vec, c_auth, c_loop = bench_coreset(args.n, args.dim, args.picks, args.authors_picks,
                                          args.loop_picks)
    print("# speed-ups (baseline seconds / vectorised seconds)")
    print(f"CoreSet vectorised vs authors-style per pick:  {c_auth / c_vec:8.1f}x")
    print(f"CoreSet vectorised vs Python loop per sample:  {c_loop / c_vec:8.1f}x")
    print(f"GraNd   torch.func vs one backward per sample: {g_loop / g_func:8.1f}x")
    print(f"GraNd   floor (batched fwd + bwd, no norms) vs one backward per sample: {g_loop / g_floor:8.1f}x "
          f"(no exact batched method beats this here; ghost norms reach {g_floor / g_ghost:.0%} of it)")
    print(f"GraNd   ghost norms vs one backward per sample: {g_loop / g_ghost:8.1f}x")


if __name__ == "__main__":
    main()
