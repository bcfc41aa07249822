"""Results analysis: one vocabulary for the app, the CLI and ``bench/`` (pure functions, no I/O).

Method names, seed aggregation, Pearson r, Wilson intervals of per-class accuracies and the
verdicts that compare two methods. A verdict ("DRoP helped", "pruning hurt class X") is stated
only when the data can tell:

* The test is a **paired t-test over seeds** (two-sided, 5%): the two methods are paired by
  seed, and the t-test is the common paired test that can decide with the usual 3 seeds (the
  exact sign test's smallest two-sided p with 3 seeds is 2 / 2**3 = 0.25, so it could never
  reach 5%). It assumes the per-seed differences are roughly normal; with 3 seeds that cannot
  be checked, so the text always names the test, the seeds and p.
* Fewer than :data:`MIN_SEEDS` paired seeds never give a verdict: the text gives the
  difference in test images (difference x the class's test count) and asks for more seeds.
  With 2 seeds the per-seed differences are multiples of one test image and often equal, which
  makes the t statistic infinite for a one-image gain.
* A difference under one test image is never a verdict, whatever p says.

Every seed is tested on the same test images, so the seed test measures training noise on
this test set; the per-class Wilson intervals show the test set's own sampling noise.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from drop_core.errors import DropError

FULL_DATA = "full data"
ALPHA = 0.05
MIN_SEEDS = 3
TEST_NAME = "paired t-test over seeds"

QUOTER_SUFFIX: dict[str, str] = {       # how a quota rule shows in a method's name: random + drop -> random+DRoP
    "none": "",
    "uniform": "+uniform",
    "drop": "+DRoP",
    "drop_authors": "+DRoP (authors' code)",
}
CORRECTION_NAMES: dict[str, str] = {    # a run that corrects instead of pruning is named by its correction
    "logit_adjust": "logit adj.",
    "cdbw": "CDB-W",
}


# --- method names ------------------------------------------------------------------------

def method_name(scorer: str, quoter: str, density: float, selection: str = "top",
                correction: str = "none") -> str:
    """The name a run's method has everywhere: "full data", "el2n", "random+DRoP", "logit adj.", ..."""
    if correction not in (None, "none"):
        return CORRECTION_NAMES.get(correction, correction)
    if density >= 1.0:
        return FULL_DATA
    name = f"{scorer}{QUOTER_SUFFIX.get(quoter, f'+{quoter}')}"
    return name if selection == "top" else f"{name} ({selection} selection)"


def config_method_name(config: Mapping) -> str:
    """:func:`method_name` of a run config dict (missing optional fields take their defaults)."""
    return method_name(config["scorer"], config["quoter"], float(config["density"]),
                       config.get("selection") or "top", config.get("correction") or "none")


def method_order(methods: Iterable[str]) -> list[str]:
    """Methods in a stable display order: full data first, then alphabetical."""
    unique = sorted(set(methods))
    return ([FULL_DATA] if FULL_DATA in unique else []) + [m for m in unique if m != FULL_DATA]


def drop_pairs(methods: Iterable[str]) -> list[tuple[str, str]]:
    """``(base, base+DRoP)`` for every DRoP method whose plain base method is also present."""
    present = set(methods)
    return [(m.split("+")[0], m) for m in method_order(present) if "+DRoP" in m and m.split("+")[0] in present]


# --- seed aggregation and correlation ----------------------------------------------------

def summarize_seeds(per_seed: Sequence[Mapping]) -> dict:
    """Across seeds: ``{key: {"mean", "min", "max"}}`` for every numeric key.

    Scalars give floats; arrays (e.g. ``class_accuracy``) give element-wise arrays. Every
    seed must report the same keys. Min/max are the error bands of the paper's figures.
    """
    if len(per_seed) == 0:
        raise DropError("Cannot summarise across seeds: no seed results were given.")
    keys = list(per_seed[0])
    for i, result in enumerate(per_seed):
        if list(result) != keys:
            raise DropError(f"Seed result {i} has keys {sorted(result)}, but seed result 0 has "
                            f"{sorted(keys)}; every seed must report the same metrics.")
    out = {}
    for key in keys:
        values = np.asarray([result[key] for result in per_seed], dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise DropError(f"Metric {key!r} is not finite for some seed; cannot summarise it.")
        stats = {"mean": values.mean(axis=0), "min": values.min(axis=0), "max": values.max(axis=0)}
        out[key] = {k: (float(v) if values.ndim == 1 else v) for k, v in stats.items()}
    return out


def pearson_r(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation; NaN where undefined (fewer than two points, or one side constant)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise DropError(f"pearson_r needs two 1-D sequences of one length. Got shapes {a.shape} and {b.shape}.")
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


# --- intervals ---------------------------------------------------------------------------

def wilson_interval(correct, n, z: float = 1.96):
    """Wilson score interval ``(lo, hi)`` of the proportion ``correct / n`` (95% for z = 1.96).

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0 and n correct,
    where small per-class test sets often are. ``correct`` may be fractional (a mean over seeds
    times ``n``). Scalars give floats, arrays element-wise arrays.
    """
    k, m = np.asarray(correct, dtype=np.float64), np.asarray(n, dtype=np.float64)
    if np.any(~np.isfinite(m)) or np.any(m <= 0):
        raise DropError(f"The 'n' parameter of wilson_interval must be positive test counts. Got {n!r} instead.")
    if np.any(~np.isfinite(k)) or np.any(k < 0) or np.any(k > m * (1 + 1e-12)):
        raise DropError(f"The 'correct' parameter of wilson_interval must lie in [0, n]. Got {correct!r} "
                        f"for n = {n!r} instead.")
    p = np.minimum(k / m, 1.0)
    denom = 1.0 + z * z / m
    centre = (p + z * z / (2 * m)) / denom
    half = z * np.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / denom
    lo, hi = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
    return (float(lo), float(hi)) if lo.ndim == 0 else (lo, hi)


def known_intervals(accuracy, n) -> tuple[np.ndarray, np.ndarray]:
    """Element-wise Wilson ``(lo, hi)`` arrays of accuracies with test counts ``n``; NaN where either
    is unknown (NaN), e.g. for runs stored before test counts were."""
    acc, m = np.asarray(accuracy, dtype=np.float64), np.asarray(n, dtype=np.float64)
    lo, hi = np.full(acc.shape, np.nan), np.full(acc.shape, np.nan)
    known = np.isfinite(acc) & np.isfinite(m)
    if known.any():
        lo[known], hi[known] = wilson_interval(acc[known] * m[known], m[known])
    return lo, hi


def class_intervals(class_accuracy: Mapping[str, float], test_counts: Mapping[str, int],
                    z: float = 1.96) -> dict[str, list[float]]:
    """``class -> [lo, hi]``: the Wilson interval of each class's test accuracy from its test count."""
    missing = sorted(set(class_accuracy) - set(test_counts))
    if missing:
        raise DropError(f"No test count for class(es) {missing}; class_intervals needs one per class.")
    return {c: list(wilson_interval(acc * test_counts[c], test_counts[c], z)) for c, acc in class_accuracy.items()}


# --- verdicts ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """``new`` against ``old`` on one metric, over the seeds both have.

    ``outcome``: ``better``, ``worse``, ``unclear`` (tested, not significant or under one test
    image) or ``too few seeds`` (fewer than :data:`MIN_SEEDS`, untested).
    """

    new: str
    old: str
    metric: str
    outcome: str
    old_value: float            # mean over the paired seeds
    new_value: float
    seeds: int
    n_test: int | None          # test images behind the metric (None: unknown)
    p_value: float = float("nan")

    @property
    def difference(self) -> float:
        return self.new_value - self.old_value

    @property
    def images(self) -> float | None:
        """The difference in test images (NaN-free only when ``n_test`` is known)."""
        return None if self.n_test is None else self.difference * self.n_test


def paired_t_test(new: Sequence[float], old: Sequence[float]) -> float:
    """Two-sided p of the paired t-test of ``new - old`` (equal to ``scipy.stats.ttest_rel``).

    Differences that are all equal give p = 0 when non-zero and 1 when zero (the limits).
    """
    d = np.asarray(new, dtype=np.float64) - np.asarray(old, dtype=np.float64)
    if d.ndim != 1 or len(d) < 2:
        raise DropError(f"A paired t-test needs at least 2 paired values. Got {len(np.atleast_1d(d))}.")
    from scipy.special import stdtr  # here, not at import: scipy.special costs seconds to load on a busy CPU

    sd = d.std(ddof=1)
    if sd <= 1e-12 * max(1.0, float(np.abs(d).max())):
        return 0.0 if abs(d.mean()) > 1e-12 else 1.0
    t = d.mean() / (sd / math.sqrt(len(d)))
    return float(2 * stdtr(len(d) - 1, -abs(t)))


def compare(new: Mapping[int, float], old: Mapping[int, float], *, new_name: str, old_name: str,
            metric: str, n_test: int | None = None, alpha: float = ALPHA) -> Verdict:
    """Compare two methods' per-seed values (seed -> value), paired by seed.

    ``n_test`` is the number of test images behind the metric (the class's test count), so a
    difference can be said in images; each value is then a multiple of ``1 / n_test`` and the
    differences are rounded to whole images before the test.
    """
    seeds = sorted(set(new) & set(old))
    if not seeds:
        raise DropError(f"Cannot compare {new_name} with {old_name}: they share no seed. Run both with the "
                        f"same seeds.")
    a = np.array([old[s] for s in seeds], dtype=np.float64)
    b = np.array([new[s] for s in seeds], dtype=np.float64)
    args = dict(new=new_name, old=old_name, metric=metric, old_value=float(a.mean()), new_value=float(b.mean()),
                seeds=len(seeds), n_test=None if n_test is None else int(n_test))
    if len(seeds) < MIN_SEEDS:
        return Verdict(outcome="too few seeds", **args)
    scale = float(n_test) if n_test else 1.0
    p = paired_t_test(np.round(b * scale, 6), np.round(a * scale, 6))
    big_enough = n_test is None or abs(b.mean() - a.mean()) * n_test >= 1.0 - 1e-9
    outcome = "unclear" if p >= alpha or not big_enough else ("better" if b.mean() > a.mean() else "worse")
    return Verdict(outcome=outcome, p_value=p, **args)


def verdict_text(v: Verdict) -> str:
    """The one wording of a verdict, shared by the app, the CLI and ``bench/`` (Markdown-free)."""
    change = (f"{v.old_value:.1%} → {v.new_value:.1%} ({100 * v.difference:+.1f} points"
              + ("" if v.n_test is None else f", {v.images:+.1f} of {v.n_test} test images") + ")")
    seeds = f"{v.seeds} seed{'s' if v.seeds != 1 else ''}"
    if v.outcome == "too few seeds":
        k = None if v.images is None else round(abs(v.images))
        size = ("the test count is unknown" if k is None
                else f"the difference is within {k} test image{'' if k == 1 else 's'}")
        return (f"{v.new} vs {v.old}, {v.metric}: {change} from {seeds}; {size}, which "
                f"{'one seed' if v.seeds == 1 else 'so few seeds'} cannot tell from training noise: "
                f"run {MIN_SEEDS} or more seeds for a {TEST_NAME}.")
    test = f"{TEST_NAME} ({seeds}), " + ("p < 0.001" if v.p_value < 0.001 else f"p = {v.p_value:.3f}")
    if v.outcome == "better":
        return f"{v.new} beats {v.old} on {v.metric}: {change}; {test}."
    if v.outcome == "worse":
        return f"{v.new} is below {v.old} on {v.metric}: {change}; {test}."
    reason = ("under one test image" if v.images is not None and abs(v.images) < 1 - 1e-9
              else f"not significant at {ALPHA:.0%}")
    return f"No clear difference between {v.new} and {v.old} on {v.metric}: {change}; {test}, {reason}."


def seed_summary_lines(results: Sequence[Mapping]) -> list[str]:
    """The CLI's summary of one config over seeds: mean [min, max] of the headline metrics, and how
    many test images one image of the worst class is worth (``results``: ``RunResult.to_dict()``s)."""
    s = summarize_seeds([{k: r[k] for k in ("average_accuracy", "worst_class_accuracy")} for r in results])
    lines = [f"over {len(results)} seeds (mean [min, max]):"]
    for key, v in s.items():
        lines.append(f"  {key.replace('_', ' '):<21}{v['mean']:.4f} [{v['min']:.4f}, {v['max']:.4f}]")
    counts = [(r.get("test_counts") or {}).get(r.get("worst_class")) for r in results]
    if all(counts):
        n = min(counts)
        spread = (s["worst_class_accuracy"]["max"] - s["worst_class_accuracy"]["min"]) * n
        lines.append(f"  one test image of the worst class is {100 / n:.1f} points ({n} test images); "
                     f"the seeds' worst-class accuracies span {spread:.0f} images")
    return lines
